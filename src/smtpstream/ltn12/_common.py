"""Pieces shared by the ltn12 modules: the block size, the exceptions, the type names."""
from __future__ import annotations

from collections.abc import Callable, Iterable

__all__ = [
    "BLOCKSIZE",
    "BYTES_LIKE",
    "Chunk",
    "Filter",
    "LTN12Error",
    "Sink",
    "SinkError",
    "Source",
    "SourceError",
    "as_exception",
    "check_blocksize",
    "filter_returned_none",
    "not_a_chunk",
]

#: Default chunk size of :func:`source.string` and :func:`source.file`.
#: LuaSocket uses 2048. Every chunk costs a few Python calls (source, each
#: filter, sink), which at 2 KiB dominate the cost of the byte work itself; at
#: 64 KiB they are lost in it, and memory stays bounded (a few blocks per
#: stage). Chunking never changes a filter's output (docs/filters.md), so this
#: only trades memory for speed.
BLOCKSIZE = 65536

# Written without typing (slow to import), as aliases both type checkers read.
Chunk = bytes | bytearray | memoryview
#: An iterable of chunks, or a LuaSocket-style callable returning chunks then None.
Source = Iterable[Chunk] | Callable[[], Chunk | None]
#: ``f(chunk) -> bytes``; ``f(None) -> bytes`` once, at the end (docs/filters.md).
Filter = Callable[[Chunk | None], bytes]
#: ``snk(chunk)``; ``snk(None)`` is the end of data. The return value is ignored.
Sink = Callable[[Chunk | None], object]

BYTES_LIKE = (bytes, bytearray, memoryview)


class LTN12Error(Exception):
    """Base class of the errors raised by ltn12 itself."""


class SourceError(LTN12Error):
    """Raised by ``source.error(message)``: a source that failed."""


class SinkError(LTN12Error):
    """Raised by ``sink.error(message)``: a sink that refuses data."""


def as_exception(err: object, cls: type[LTN12Error]) -> BaseException | type[BaseException]:
    """LuaSocket's ``err`` is a message; ours is an exception, or a message for ``cls``."""
    if isinstance(err, str):
        return cls(err)
    if isinstance(err, BaseException) or (
        isinstance(err, type) and issubclass(err, BaseException)
    ):
        return err
    raise TypeError(
        f"an ltn12 error must be an exception or a message string, got {type(err).__name__}"
    )


def check_blocksize(blocksize: object, where: str) -> None:
    if type(blocksize) is not int:
        raise TypeError(f"{where}: blocksize must be an int, got {type(blocksize).__name__}")
    if blocksize < 1:
        raise ValueError(f"{where}: blocksize must be >= 1, got {blocksize}")


def not_a_chunk(value: object) -> str:
    """Why ``value`` is not a chunk, with the fix when it is a LuaSocket-style result."""
    if type(value) is tuple:
        # Lua's multiple results: ``nil, err`` or ``chunk, new_source`` from a
        # "fancy" source, or a low-level mime function's ``(bytes, ctx)``.
        return (
            f"a chunk must be bytes, got a tuple {_brief(value)}: a LuaSocket-style source that"
            " returns (None, error) or (chunk, new_source) must be wrapped in"
            " ltn12.source.simplify(source)"
        )
    return f"a chunk must be bytes, got {type(value).__name__}"


def _brief(value: tuple) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def filter_returned_none(f: object, at_end: bool) -> TypeError:
    # LuaSocket's "filter returned inappropriate nil". In Python, None passed on
    # would read as "end of data" downstream, so it is always an error.
    when = "at end of input" if at_end else "for a data chunk"
    return TypeError(
        f"filter {f!r} returned None {when}: a filter must return bytes (b'' for nothing)"
    )
