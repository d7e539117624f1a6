"""smtpstream: e-mail with large attachments, streamed in constant memory.

LuaSocket's SMTP design in Python: LTN12 sources, filters, sinks and pumps
(:mod:`smtpstream.ltn12`), MIME filters that work chunk by chunk
(:mod:`smtpstream.mime`, built on :mod:`smtpstream.filters`).
"""
__version__ = "0.1.0"

__all__ = ["__version__"]

# Subpackages that ``import smtpstream.smtp`` used to load eagerly, and so
# were attributes of this package afterwards: imported on first use now.
_SUBMODULES = frozenset({"filters", "fused", "idn", "ltn12", "message"})

TYPE_CHECKING = False
if not TYPE_CHECKING:  # hidden from type checkers: they would take any name for a lazy one
    def __getattr__(name: str) -> object:
        if name not in _SUBMODULES:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        import sys

        __import__(f"{__name__}.{name}")  # importlib.import_module would import importlib first
        return sys.modules[f"{__name__}.{name}"]
