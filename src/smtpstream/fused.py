"""Chains of filters that one fused filter replaces, with the same bytes.

``ltn12.filter.chain`` asks :func:`fuse` for the shortest equivalent of the
filters it is given, so LuaSocket's idiom
``filter.chain(mime.encode("base64"), mime.wrap())`` runs as one
:class:`Base64Lines` (the fused ``Base64WrapEncoder``, its output marked as
:class:`~smtpstream.filters.CleanLines`), as ``attachment(path)`` does.

The rules, each on adjacent filters of the same twin (``smtpstream._filters``
or ``smtpstream._filters_py``), each in the state a fresh one has:

* ``Base64Encoder`` + ``LineWrapper(n)`` -> ``Base64Lines(n)``, any ``n``;
* ``EOLNormalizer(b"\\r\\n")`` + ``DotStuffer(2)`` -> ``NormalizeStuffer()``;
* ``Base64Lines`` + ``EOLNormalizer(b"\\r\\n")``, ``DotStuffer`` or
  ``NormalizeStuffer`` -> ``Base64Lines``: base64 lines have no ``.`` and
  only CRLF breaks, so those filters give them back unchanged.

A filter that was fed already (pending bytes, an open line or break, a flush)
is never fused: it stays as it is, where it is. The filters a rule replaces
are not called after that, so their own state stays that of a fresh filter.
"""
from __future__ import annotations

import sys

from .filters import CleanLines

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: typing takes milliseconds to import
    from typing import Any, Optional, Sequence

__all__ = ["Base64Lines", "fuse"]

_TWINS = ("smtpstream._filters", "smtpstream._filters_py")
CRLF = b"\r\n"


class Base64Lines:
    """Base64 in CRLF lines of ``length`` characters, each output chunk a CleanLines.

    A ``Base64WrapEncoder(length)`` of ``module`` (a twin; the selected one by
    default) whose non-empty outputs are :class:`CleanLines`: the sender may
    skip normalising and dot-stuffing them. Same bytes as ``Base64Encoder``
    followed by ``LineWrapper(length)``.
    """

    __slots__ = ("_encoder", "length")

    def __init__(self, length: int = 76, module: Any = None) -> None:
        if module is None:
            from . import filters as module
        self._encoder = module.Base64WrapEncoder(length)
        self.length = length

    @property
    def finished(self) -> bool:
        return self._encoder.finished

    @property
    def pending(self) -> bytes:
        return self._encoder.pending

    @property
    def left(self) -> int:
        return self._encoder.left

    def __call__(self, chunk: Any) -> bytes:
        out = self._encoder(chunk)
        return CleanLines(out) if out else out

    def __repr__(self) -> str:
        return f"<Base64Lines length={self.length} ({type(self._encoder).__module__})>"


def _twin(f: object) -> tuple[str, Any]:
    """``(class name, twin module)`` for a filter of either twin, else ``("", None)``."""
    cls = type(f)
    if cls.__module__ in _TWINS:
        return cls.__name__, sys.modules[cls.__module__]
    return "", None


def _is_fresh(name: str, f: Any) -> bool:
    if f.finished:
        return False
    if name == "Base64Encoder":
        return f.pending == b""
    if name == "LineWrapper":
        return f.left == f.length and 1 <= f.length < 1 << 62
    if name == "EOLNormalizer":
        return f.marker == CRLF and f.state not in (10, 13)
    if name == "DotStuffer":
        return f.state == 2
    if name == "NormalizeStuffer":
        return f.state == 2 and f.eol_state == 0
    return False


def _fused_pair(prev: Any, f: Any) -> Optional[Any]:
    """The one filter doing ``prev`` then ``f``, or None."""
    if type(prev) is Base64Lines:
        if prev.finished:
            return None
        name, _ = _twin(f)
        if name in ("EOLNormalizer", "DotStuffer", "NormalizeStuffer") and _is_fresh(name, f):
            return prev
        return None
    first, module = _twin(prev)
    name, other = _twin(f)
    if module is None or other is not module:
        return None
    if first == "Base64Encoder" and name == "LineWrapper":
        if _is_fresh(first, prev) and _is_fresh(name, f):
            return Base64Lines(f.length, module)
    elif first == "EOLNormalizer" and name == "DotStuffer":
        if _is_fresh(first, prev) and _is_fresh(name, f):
            return module.NormalizeStuffer()
    return None


def fuse(filters: Sequence[Any]) -> list[Any]:
    """The filters, in order, with every run the rules know replaced by its fused filter."""
    out: list[Any] = []
    for f in filters:
        fused = _fused_pair(out[-1], f) if out else None
        if fused is None:
            out.append(f)
        else:
            out[-1] = fused
    return out
