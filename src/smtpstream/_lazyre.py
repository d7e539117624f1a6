"""Regular expressions compiled on first use.

The sender's modules hold about thirty patterns; compiled at import, they
and ``re`` itself (with ``enum`` and ``functools`` under it) were a good part
of ``import smtpstream.smtp``. A :class:`Pattern` costs nothing until a
method is first looked up: then it compiles and keeps the compiled
pattern's methods and attributes as its own, so later calls go straight to
them (about as fast as calling the compiled pattern's).
"""
from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: typing takes milliseconds to import
    from typing import Any

__all__ = ["Pattern"]

_KEPT = ("match", "fullmatch", "search", "sub", "subn", "split", "findall", "finditer",
         "pattern", "flags", "groups", "groupindex")


class Pattern:
    """``re.compile(pattern, flags)``, done the first time it is used."""

    # Empty slots until the first use: reading one raises AttributeError, which
    # calls __getattr__. Filled, they are read as fast as the compiled pattern's.
    __slots__ = ("_source", *_KEPT)

    def __init__(self, pattern: str, flags: int = 0) -> None:
        self._source = (pattern, flags)

    def __getattr__(self, name: str) -> Any:
        import re

        compiled = re.compile(*self._source)
        for attr in _KEPT:
            setattr(self, attr, getattr(compiled, attr))
        return getattr(compiled, name)

    def __repr__(self) -> str:
        return f"Pattern({self._source[0]!r})"
