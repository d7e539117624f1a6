"""LTN12 sinks: where chunks go.

A sink is a callable ``snk(chunk)``; ``snk(None)`` means the end of data. Its
return value is ignored, and it raises to abort. Against LuaSocket: there is
no ``err`` argument, because ``pump.all`` does not tell the sink about a
source error (it re-raises instead); a sink that is never given ``None`` is
not finished (a file sink leaves its file open), and the caller cleans up.
"""
from __future__ import annotations

import io

from ._common import (
    Chunk,
    Filter,
    Sink,
    SinkError,
    as_exception,
    filter_returned_none,
)
from .filter import chain as _filter_chain

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: typing takes milliseconds to import
    from typing import Any, Callable, Optional

__all__ = ["table", "file", "null", "error", "chain", "simplify"]


def table(t: Optional[list[Any]] = None) -> tuple[Sink, list[Any]]:
    """``(sink, t)``: the sink appends every chunk to ``t`` (a new list by default), ``b""`` included."""
    if t is None:
        t = []
    append = getattr(t, "append", None)
    if not callable(append):
        raise TypeError(f"ltn12.sink.table needs a list, got {type(t).__name__}")

    def snk(chunk: Optional[Chunk]) -> None:
        if chunk is not None:
            append(chunk)

    return snk, t


def _write_rest(write: Callable[[Any], Any], chunk: Chunk, done: int) -> None:
    # Raw (unbuffered) files may write less than asked.
    view = memoryview(chunk).cast("B")
    while done < len(view):
        n = write(view[done:])
        if not n:  # None (would block) or 0: no progress is possible
            raise BlockingIOError("ltn12.sink.file: the handle accepted no more data")
        done += n


def file(handle: Any, io_err: Any = None) -> Sink:
    """Writes every chunk to a binary file handle and closes it at ``None``.

    ``None`` as the handle (a failed open, LuaSocket style) gives
    ``error(io_err or "unable to open file")``.
    """
    if handle is None:
        return error(io_err or "unable to open file")
    if isinstance(handle, io.TextIOBase):
        raise TypeError("ltn12.sink.file needs a binary handle (open(path, 'wb')), got a text-mode file")
    write = getattr(handle, "write", None)
    if not callable(write):
        raise TypeError(f"ltn12.sink.file needs a file handle with write(), got {type(handle).__name__}")

    def snk(chunk: Optional[Chunk]) -> None:
        if chunk is None:
            handle.close()
            return
        if isinstance(chunk, str):
            raise TypeError("ltn12.sink.file needs bytes-like chunks, got str")
        n = write(chunk)
        if type(n) is int and n < len(chunk):
            _write_rest(write, chunk, n)

    return snk


def _null(chunk: Optional[Chunk]) -> None:
    return None


def null() -> Sink:
    """A sink that drops everything."""
    return _null


def error(err: BaseException | type[BaseException] | str) -> Sink:
    """A sink that raises ``err`` on every call (a message raises :class:`SinkError`)."""
    exc = as_exception(err, SinkError)

    def snk(chunk: Optional[Chunk]) -> None:
        raise exc

    return snk


def chain(*args: Any) -> Sink:
    """``chain(f, snk)`` or ``chain(f1, ..., fn, snk)``: a sink that filters, then passes on to ``snk``.

    Only non-empty filter output is passed on (LuaSocket also passes the
    ``""`` that ended each drain; there is no draining here). A ``b""`` chunk
    is dropped without calling the filter, as in LuaSocket. At ``None`` the
    filter is flushed once, its output passed on if non-empty, then ``None``.

    Errors: ``pump.all`` never passes a source error to the sink, so on a
    source error this filter is not flushed and its held-back output is lost,
    exactly as with ``source.chain``. (LuaSocket's ``sink.chain`` is told the
    error and flushes; its ``source.chain`` does not.)
    """
    if len(args) < 2:
        raise TypeError("ltn12.sink.chain needs at least one filter and a sink")
    *filters, snk = args
    if not callable(snk):
        raise TypeError(f"ltn12.sink.chain: {type(snk).__name__} object is not a sink (not callable)")
    f: Filter = _filter_chain(*filters)

    def chained(chunk: Optional[Chunk]) -> None:
        if chunk is None:
            out = f(None)
            if out:
                snk(out)
            elif out is None:
                raise filter_returned_none(f, at_end=True)
            snk(None)
        elif chunk:
            out = f(chunk)
            if out:
                snk(out)
            elif out is None:
                raise filter_returned_none(f, at_end=False)

    return chained


def simplify(snk: Callable[[Optional[Chunk]], Any]) -> Sink:
    """A plain sink from a LuaSocket "fancy" sink.

    The fancy sink may return ``(ok, new_sink)``: a true ``ok`` with a
    ``new_sink`` replaces it from the next call on; a false ``ok`` raises
    ``new_sink`` as the error (a message raises :class:`SinkError`). Any other
    return value is ignored, as for plain sinks.
    """
    if not callable(snk):
        raise TypeError(f"ltn12.sink.simplify needs a callable sink, got {type(snk).__name__}")
    current = snk

    def simple(chunk: Optional[Chunk]) -> None:
        nonlocal current
        ret = current(chunk)
        if type(ret) is tuple:
            ok, new = ret
            if not ok:
                raise as_exception("sink failed" if new is None else new, SinkError)
            if new is not None:
                if not callable(new):
                    raise TypeError(f"ltn12.sink.simplify: new sink {type(new).__name__} is not callable")
                current = new

    return simple
