"""LuaSocket's ``mime`` module in Python: low-level functions and filter factories.

Low-level functions keep LuaSocket's arguments and results, with Lua's two
return values as a tuple:

* ``b64(C, D=None) -> (A, B)``, ``unb64``, ``qp(C, D=None, marker=CRLF)`` and
  ``unqp`` process ``C + D``; ``B`` is the unconsumed remainder to pass back as
  the next call's ``C``. ``D=None`` is the final call: the remainder is
  flushed (encoders) or dropped (decoders) and ``B`` is ``None``.
* ``wrp(left, B=None, length=76) -> (A, left)``, ``qpwrp`` (same),
  ``eol(ctx, B=None, marker=CRLF) -> (A, ctx)`` and ``dot(state, B=None) ->
  (A, state)`` carry a number as their context.

Every function takes three positional arguments, as in Lua, so that
``ltn12.filter.cycle(low, ctx, extra)`` (which always passes ``extra``) works
over each of them the way LuaSocket's own ``mime.lua`` uses them:
``cycle(b64, b"")``, ``cycle(qp, b"", marker)``, ``cycle(wrp, n, n)``,
``cycle(eol, 0, marker)``, ``cycle(dot, 2)``. A third argument that is
``None`` means the default (Lua's ``nil``); ``b64``, ``unb64``, ``unqp`` and
``dot`` have no third parameter in Lua and accept only ``None`` there.

One deliberate difference (LuaSocket spec 5.1 item 6, tagged *fix*): where
LuaSocket returns ``nil`` for an empty result, or for a result that starts with
a NUL byte, these return ``b""`` or the real bytes. ``A`` is ``None`` only when
``C`` is ``None``.

The factories (``encode``, ``decode``, ``wrap``, ``normalize``, ``stuff``)
return fresh filter objects from :mod:`smtpstream.filters`; ``encodet``,
``decodet`` and ``wrapt`` are the tables they choose from, open to new entries.
"""
from __future__ import annotations

from typing import Any, Callable, Union

from . import filters

__all__ = [
    "b64", "unb64", "qp", "unqp", "wrp", "qpwrp", "eol", "dot",
    "encode", "decode", "wrap", "normalize", "stuff",
    "encodet", "decodet", "wrapt",
]

CRLF = b"\r\n"
BytesLike = Union[bytes, bytearray, memoryview]
Pair = tuple[Union[bytes, None], Union[bytes, None]]


def _no_extra(name: str, extra: object) -> None:
    # Lua ignores a third argument these functions do not have; a value other
    # than nil/None is a mistake worth saying rather than dropping.
    if extra is not None:
        raise TypeError(f"mime.{name} takes no third argument (only None), got {type(extra).__name__}")


def _two_part(filter_obj: Any, C: BytesLike, D: BytesLike | None) -> Pair:
    out = filter_obj(C)
    if D is None:
        return out + filter_obj(None), None
    return out + filter_obj(D), filter_obj.pending


def b64(C: BytesLike | None, D: BytesLike | None = None, extra: None = None) -> Pair:
    """Base64-encode ``C + D``; return the encoding and the 0-2 leftover bytes."""
    _no_extra("b64", extra)
    if C is None:
        return None, None
    return _two_part(filters.Base64Encoder(), C, D)


def unb64(C: BytesLike | None, D: BytesLike | None = None, extra: None = None) -> Pair:
    """Base64-decode ``C + D``; return the bytes and the incomplete group."""
    _no_extra("unb64", extra)
    if C is None:
        return None, None
    return _two_part(filters.Base64Decoder(), C, D)


def qp(C: BytesLike | None, D: BytesLike | None = None, marker: BytesLike | None = None) -> Pair:
    """Quoted-printable-encode ``C + D`` with CRLF written as ``marker`` (default CRLF)."""
    if C is None:
        return None, None
    return _two_part(filters.QPEncoder(CRLF if marker is None else marker), C, D)


def unqp(C: BytesLike | None, D: BytesLike | None = None, extra: None = None) -> Pair:
    """Quoted-printable-decode ``C + D``; return the bytes and the unfinished escape."""
    _no_extra("unqp", extra)
    if C is None:
        return None, None
    return _two_part(filters.QPDecoder(), C, D)


def _wrap_call(wrapper: Any, B: BytesLike | None) -> tuple[bytes, int]:
    if B is None:
        return wrapper(None), wrapper.length
    return wrapper(B), wrapper.left


def wrp(left: int, B: BytesLike | None = None, length: int | None = None) -> tuple[bytes, int]:
    """Break ``B`` into CRLF lines of ``length`` (default 76); ``left`` columns are free now."""
    return _wrap_call(filters.LineWrapper(76 if length is None else length, left), B)


def qpwrp(left: int, B: BytesLike | None = None, length: int | None = None) -> tuple[bytes, int]:
    """Insert quoted-printable soft breaks into ``B``; ``left`` columns are free now."""
    return _wrap_call(filters.QPWrapper(76 if length is None else length, left), B)


def eol(ctx: int, B: BytesLike | None = None, marker: BytesLike | None = None) -> tuple[bytes, int]:
    """Normalise line breaks in ``B`` to ``marker`` (default CRLF); ``ctx`` is the open CR or LF."""
    normalizer = filters.EOLNormalizer(CRLF if marker is None else marker, ctx)
    if B is None:
        return normalizer(None), 0
    return normalizer(B), normalizer.state


def dot(state: int, B: BytesLike | None = None, extra: None = None) -> tuple[bytes, int]:
    """Dot-stuff ``B``; ``state`` is 2 at the start of a line, 1 after CR."""
    _no_extra("dot", extra)
    stuffer = filters.DotStuffer(state)
    if B is None:
        return stuffer(None), 2
    return stuffer(B), stuffer.state


# --------------------------------------------------------------------------
# High-level factories

Factory = Callable[..., Any]


def _qp_encoder(mode: str | None = None) -> Any:
    # LuaSocket matches "binary" exactly; anything else, None included, is text.
    return filters.QPEncoder(b"=0D=0A" if mode == "binary" else CRLF)


def _text_wrapper(length: int | None = None) -> Any:
    return filters.LineWrapper(76 if length is None else length)


def _qp_wrapper(length: int | None = None) -> Any:
    # LuaSocket ignores the length for quoted-printable (spec 5.1 item 3, keep):
    # RFC 2045 caps encoded lines at 76 characters.
    return filters.QPWrapper()


encodet: dict[str, Factory] = {
    "base64": lambda: filters.Base64Encoder(),
    "quoted-printable": _qp_encoder,
}
decodet: dict[str, Factory] = {
    "base64": lambda: filters.Base64Decoder(),
    "quoted-printable": lambda: filters.QPDecoder(),
}
wrapt: dict[str, Factory] = {
    "text": _text_wrapper,
    "base64": _text_wrapper,
    "quoted-printable": _qp_wrapper,
    "default": _text_wrapper,
}


def _choose(table: dict[str, Factory], what: str, name: Any, args: tuple) -> Any:
    if name is None or (isinstance(name, int) and not isinstance(name, bool)):
        # LuaSocket: a first argument that is not a name is the first option
        # of the "default" entry, so mime.wrap(59) wraps at 59.
        args = (name, *args) if name is not None else args
        name = "default"
    elif not isinstance(name, str):
        raise TypeError(f"{what} name must be a str, got {type(name).__name__}")
    try:
        factory = table[name]
    except KeyError:
        known = ", ".join(repr(k) for k in table)
        raise ValueError(f"unknown {what} {name!r}; known: {known}") from None
    return factory(*args)


def encode(name: Any = None, *args: Any) -> Any:
    """A fresh encoder: ``encode("base64")``, ``encode("quoted-printable"[, "binary"])``."""
    return _choose(encodet, "encoding", name, args)


def decode(name: Any = None, *args: Any) -> Any:
    """A fresh decoder: ``decode("base64")`` or ``decode("quoted-printable")``."""
    return _choose(decodet, "encoding", name, args)


def wrap(name: Any = None, *args: Any) -> Any:
    """A fresh line wrapper: ``wrap("text"|"base64"[, length])``, ``wrap("quoted-printable")``.

    ``wrap()`` and ``wrap(n)`` are ``wrap("text")`` and ``wrap("text", n)``.
    """
    return _choose(wrapt, "wrapping", name, args)


def normalize(marker: BytesLike | None = None) -> Any:
    """A fresh end-of-line normaliser; every CR, LF, CRLF or LFCR becomes ``marker``."""
    return filters.EOLNormalizer(CRLF if marker is None else marker)


def stuff() -> Any:
    """A fresh SMTP dot-stuffer, starting at the beginning of a line."""
    return filters.DotStuffer(2)
