"""LTN12 sources: where chunks come from.

A source is any iterable of byte chunks. A LuaSocket-style callable source
(no arguments; returns chunks, maybe ``b""``, then ``None``) is accepted
wherever a source is expected: :func:`iterate` turns either into an iterator.
The functions here return iterators and check their arguments when called,
not when first iterated.

Python contract, against LuaSocket's:

* The end of data is ``StopIteration``, not ``nil``; an error is an
  exception raised from iteration, not ``nil, err``.
* An iterator that has ended stays ended. A finished ``chain`` keeps raising
  ``StopIteration`` where LuaSocket raises ``'source is empty!'``; the filter
  is never called again. Only :func:`rewind` can give data after its end
  (chunks pushed back later), as in LuaSocket.
"""
from __future__ import annotations

import io
from collections.abc import Iterable, Iterator

from ._common import (
    BLOCKSIZE,
    BYTES_LIKE,
    Chunk,
    Filter,
    Source,
    SourceError,
    as_exception,
    check_blocksize,
    filter_returned_none,
    not_a_chunk,
)
from .filter import chain as _filter_chain

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: typing takes milliseconds to import
    from typing import Any, Callable, NoReturn, Optional

__all__ = [
    "iterate",
    "empty",
    "error",
    "string",
    "file",
    "table",
    "chain",
    "cat",
    "simplify",
    "rewind",
]


def iterate(src: Source) -> Iterator[Chunk]:
    """An iterator over the chunks of ``src``: an iterable, or a callable returning chunks then None."""
    if isinstance(src, (str, *BYTES_LIKE)):
        # Iterating bytes gives ints; a lone str or bytes is data, not a source.
        raise TypeError(
            f"a source is an iterable of chunks, not a single {type(src).__name__}:"
            " wrap data in ltn12.source.string(...)"
        )
    if isinstance(src, Iterable):
        return iter(src)
    if callable(src):
        return _called(src)
    raise TypeError(
        f"{type(src).__name__} object is not a source: expected an iterable of byte chunks"
        " or a callable returning chunks and then None"
    )


def _called(src: Callable[[], Optional[Chunk]]) -> Iterator[Chunk]:
    # b"" chunks go through: only None ends a callable source. A tuple is
    # Lua's ``nil, err`` (or ``chunk, new``): that source needs simplify().
    while (chunk := src()) is not None:
        if type(chunk) is tuple:
            raise TypeError(not_a_chunk(chunk))
        yield chunk


def empty() -> Iterator[Chunk]:
    """A source with no chunks."""
    return iter(())


class _ErrorSource:
    # A class, not a generator: a generator is finished once it has raised,
    # and LuaSocket's error source fails on every call.
    __slots__ = ("_exc",)

    def __init__(self, exc: BaseException | type[BaseException]) -> None:
        self._exc = exc

    def __iter__(self) -> _ErrorSource:
        return self

    def __next__(self) -> NoReturn:
        raise self._exc


def error(err: BaseException | type[BaseException] | str) -> Iterator[Chunk]:
    """A source whose iteration raises ``err`` (a message raises :class:`SourceError`), every time."""
    return _ErrorSource(as_exception(err, SourceError))


def _slices(data: bytes, blocksize: int) -> Iterator[bytes]:
    for start in range(0, len(data), blocksize):
        yield data[start : start + blocksize]


def string(s: Optional[Chunk], blocksize: int = BLOCKSIZE) -> Iterator[bytes]:
    """``s`` in slices of ``blocksize`` bytes; ``None`` and ``b""`` give no chunk at all.

    A bytearray or memoryview is copied first, so later changes to it do not
    leak into the stream.
    """
    check_blocksize(blocksize, "ltn12.source.string")
    if s is None:
        return empty()
    if not isinstance(s, bytes):
        if isinstance(s, str):
            raise TypeError("ltn12.source.string needs bytes-like data or None, got str (encode it first)")
        try:
            s = memoryview(s).tobytes()
        except TypeError:
            raise TypeError(
                f"ltn12.source.string needs bytes-like data or None, got {type(s).__name__}"
            ) from None
    return _slices(s, blocksize)


def _read(handle: Any, read: Callable[[int], Any], blocksize: int) -> Iterator[bytes]:
    # try/finally: the handle is also closed if reading fails or the iterator
    # is closed (or collected) before the end, not only at EOF as in LuaSocket.
    try:
        while chunk := read(blocksize):
            if isinstance(chunk, str):
                raise TypeError("ltn12.source.file needs a binary handle: read() returned str")
            yield chunk
    finally:
        handle.close()


def file(handle: Any, io_err: Any = None, blocksize: int = BLOCKSIZE) -> Iterator[bytes]:
    """The contents of a binary file handle, ``blocksize`` bytes at a time; closes it at EOF.

    ``None`` as the handle (a failed open, LuaSocket style) gives
    ``error(io_err or "unable to open file")``.
    """
    if handle is None:
        return error(io_err or "unable to open file")
    if isinstance(handle, io.TextIOBase):
        raise TypeError("ltn12.source.file needs a binary handle (open(path, 'rb')), got a text-mode file")
    read = getattr(handle, "read", None)
    if not callable(read):
        raise TypeError(f"ltn12.source.file needs a file handle with read(), got {type(handle).__name__}")
    check_blocksize(blocksize, "ltn12.source.file")
    return _read(handle, read, blocksize)


def _table(seq: Iterable[Any]) -> Iterator[Chunk]:
    for index, chunk in enumerate(seq):
        if chunk is None:
            continue
        if not isinstance(chunk, BYTES_LIKE):
            raise TypeError(
                f"ltn12.source.table: item {index} is {type(chunk).__name__}, not a bytes-like chunk"
            )
        yield chunk


def table(seq: Iterable[Optional[Chunk]]) -> Iterator[Chunk]:
    """The chunks of a list (or any iterable), in order, ``b""`` included, skipping ``None`` holes.

    In LuaSocket a hole reads as the end of data, and a further call goes on
    after it. A Python iterator cannot go on after its end, so holes are skipped.
    """
    if isinstance(seq, (str, *BYTES_LIKE)) or not isinstance(seq, Iterable):
        raise TypeError(f"ltn12.source.table needs a list of chunks, got {type(seq).__name__}")
    return _table(seq)


def _chain(it: Iterator[Chunk], f: Filter) -> Iterator[bytes]:
    # The hot path: one filter call per chunk, and only non-empty output goes on.
    for chunk in it:
        out = f(chunk)
        if out:
            yield out
        elif out is None:
            raise filter_returned_none(f, at_end=False)
    out = f(None)
    if out:
        yield out
    elif out is None:
        raise filter_returned_none(f, at_end=True)


class Chained:
    """The iterator :func:`chain` returns: the chunks of ``source`` through ``filter``.

    ``source`` (an iterator) and ``filter`` (after fusion) are there to read:
    a message body made of ``chain(file, filter.chain(mime.encode("base64"),
    mime.wrap()))`` knows from them that its chunks are base64 lines.
    """

    __slots__ = ("source", "filter", "_gen")

    def __init__(self, it: Iterator[Chunk], f: Filter) -> None:
        self.source = it
        self.filter = f
        self._gen: Optional[Iterator[bytes]] = None

    @property
    def started(self) -> bool:
        """True once a chunk was asked for."""
        return self._gen is not None

    def __iter__(self) -> Chained:
        return self

    def __next__(self) -> bytes:
        gen = self._gen
        if gen is None:
            gen = self._gen = _chain(self.source, self.filter)
        return next(gen)

    def close(self) -> None:
        """Ends the chain as closing a generator does: no more chunks, no flush."""
        if self._gen is not None:
            self._gen.close()
        self._gen = iter(())


def chain(src: Source, f: Filter, *filters: Filter) -> Chained:
    """``src`` passed through ``f`` (and more filters, as ``filter.chain(f, *filters)``).

    Yields only non-empty outputs; when ``src`` ends, calls ``f(None)`` once and
    yields its output if non-empty.

    A chain over a chain not yet read is one chain over the inner source with
    the filters joined by ``filter.chain`` (same bytes), so fused filters are
    found across the two: ``chain(chain(file, mime.encode("base64")),
    mime.wrap())`` is the fast path too.

    Errors: if ``src`` raises, the exception goes through at once and ``f`` is
    never flushed, so output it holds back is lost (LuaSocket's behaviour,
    kept). ``sink.chain`` is no different here, because ``pump.all`` never
    passes a source error to the sink; in LuaSocket it does, and ``sink.chain``
    flushes. A filter returning None raises TypeError: LuaSocket could loop
    forever or fail with ``'filter returned ""'`` instead (spec 5.2.2).
    """
    if filters:
        f = _filter_chain(f, *filters)
    elif not callable(f):
        raise TypeError(f"ltn12.source.chain: {type(f).__name__} object is not a filter (not callable)")
    if type(src) is Chained and not src.started:
        return Chained(src.source, _filter_chain(src.filter, f))
    return Chained(iterate(src), f)


class _Cat:
    # A class, not ``yield from``: after a source raises, LuaSocket's cat stays
    # on it, so the next call asks that source again (spec 5.2.3).
    __slots__ = ("_sources", "_current")

    def __init__(self, sources: Iterator[Iterator[Chunk]]) -> None:
        self._sources = sources
        self._current: Optional[Iterator[Chunk]] = None

    def __iter__(self) -> _Cat:
        return self

    def __next__(self) -> Chunk:
        while True:
            if self._current is None:
                self._current = next(self._sources)  # StopIteration: all done
            try:
                return next(self._current)
            except StopIteration:
                self._current = None


def cat(*sources: Source) -> Iterator[Chunk]:
    """The chunks of each source in turn."""
    return _Cat(iter([iterate(src) for src in sources]))


def _simplify(src: Callable[[], Any]) -> Iterator[Chunk]:
    while True:
        ret = src()
        if type(ret) is tuple:
            chunk, new = ret
            if chunk is None and new is not None:
                raise as_exception(new, SourceError)  # LuaSocket's ``nil, err``
            if new is not None:
                if not callable(new):
                    raise TypeError(f"ltn12.source.simplify: new source {type(new).__name__} is not callable")
                src = new
        else:
            chunk = ret
        if chunk is None:
            return
        yield chunk


def simplify(src: Callable[[], Any]) -> Iterator[Chunk]:
    """A plain source from a LuaSocket "fancy" callable source.

    The callable returns a chunk, ``None`` at the end, or ``(chunk, new_source)``
    to be replaced by ``new_source`` from the next call on. ``(None, err)``
    raises ``err`` (a message raises :class:`SourceError`).
    """
    if not callable(src):
        raise TypeError(f"ltn12.source.simplify needs a callable source, got {type(src).__name__}")
    return _simplify(src)


class Rewind:
    """A source that chunks can be pushed back into, LIFO (LuaSocket's ``source.rewind``).

    Iterate it, or call it with no argument LuaSocket style (a chunk, or None
    at the end). ``push(chunk)`` makes that chunk the next one given, even
    after the underlying source has ended.
    """

    __slots__ = ("_it", "_stack")

    def __init__(self, src: Source) -> None:
        self._it = iterate(src)
        self._stack: list[Chunk] = []

    def __iter__(self) -> Rewind:
        return self

    def __next__(self) -> Chunk:
        if self._stack:
            return self._stack.pop()
        return next(self._it)

    def __call__(self) -> Optional[Chunk]:
        if self._stack:
            return self._stack.pop()
        return next(self._it, None)

    def push(self, chunk: Chunk) -> None:
        if chunk is None:
            raise TypeError("ltn12.source.rewind: cannot push None back (it is not a chunk)")
        self._stack.append(chunk)


def rewind(src: Source) -> Rewind:
    """``src`` with a ``push(chunk)`` method to give chunks back (see :class:`Rewind`)."""
    return Rewind(src)
