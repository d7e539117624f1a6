"""LTN12 filters: ``chain`` joins filters into one, ``cycle`` adapts LuaSocket low-level functions.

A filter is any callable with the contract of docs/filters.md: ``f(chunk)``
returns the bytes that chunk allows (maybe ``b""``), ``f(None)`` is called once
at the end and returns all the remaining output. Unlike LuaSocket there is no
``f("")`` draining and no repeated ``f(nil)``: a filter returns everything it
can at each call.
"""
from __future__ import annotations


from ..fused import fuse
from ._common import Chunk, Filter, filter_returned_none

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: typing takes milliseconds to import
    from typing import Any, Callable, Optional

__all__ = ["chain", "cycle"]


def chain(*filters: Filter) -> Filter:
    """One filter that feeds the output of each filter to the next.

    With a single filter, returns that filter itself. At ``None`` the filters
    are flushed in order: ``out = f1(None)``, then for each next filter
    ``out = fi(out) + fi(None)``, so a downstream filter sees the end only after
    everything upstream has been passed to it.

    Adjacent fresh filters that have a fused equivalent are replaced by it
    (:mod:`smtpstream.fused`): ``chain(mime.encode("base64"), mime.wrap())``
    is one ``Base64Lines`` filter, whose chunks the sender writes without
    normalising or stuffing them, with the same bytes. The replaced filters
    are not called.
    """
    if not filters:
        raise TypeError("ltn12.filter.chain needs at least one filter")
    for f in filters:
        if not callable(f):
            raise TypeError(f"ltn12.filter.chain: {type(f).__name__} object is not a filter (not callable)")
    if len(filters) == 1:
        return filters[0]
    filters = tuple(fuse(filters))
    if len(filters) == 1:
        return filters[0]
    first, rest = filters[0], filters[1:]

    def chained(chunk: Optional[Chunk]) -> bytes:
        if chunk is not None:
            for f in filters:
                chunk = f(chunk)
                if chunk is None:
                    raise filter_returned_none(f, at_end=False)
            return chunk
        out = first(None)
        if out is None:
            raise filter_returned_none(first, at_end=True)
        for f in rest:
            head = f(out)
            if head is None:
                raise filter_returned_none(f, at_end=False)
            tail = f(None)
            if tail is None:
                raise filter_returned_none(f, at_end=True)
            out = head + tail
        return out

    return chained


class _Cycle:
    """A filter around ``low(ctx, chunk, extra) -> (out, new_ctx)``; ``ctx`` is its state."""

    __slots__ = ("low", "ctx", "extra", "finished")

    def __init__(self, low: Callable[..., Any], ctx: Any, extra: Any) -> None:
        self.low = low
        self.ctx = ctx
        self.extra = extra
        self.finished = False

    def __call__(self, chunk: Optional[Chunk]) -> bytes:
        if self.finished:
            raise ValueError("ltn12 cycle filter was already flushed: called after end of input")
        out, self.ctx = self.low(self.ctx, chunk, self.extra)
        if chunk is None:
            self.finished = True
        return b"" if out is None else out

    def __repr__(self) -> str:
        return f"<ltn12 cycle filter {self.low!r} ctx={self.ctx!r}>"


def cycle(low: Callable[..., Any], ctx: Any, extra: Any = None) -> Filter:
    """A filter from a LuaSocket-style low-level function, as ``ltn12.filter.cycle``.

    Each call does ``out, ctx = low(ctx, chunk, extra)`` and returns ``out``
    (``None`` becomes ``b""``). The context is only the initial one: the
    returned filter keeps the latest in its ``ctx`` attribute. After the
    ``None`` call the filter is finished and further calls raise ValueError
    (LuaSocket's cycle would call ``low`` again with whatever context it had).
    """
    if not callable(low):
        raise TypeError(f"ltn12.filter.cycle: low must be callable, got {type(low).__name__}")
    return _Cycle(low, ctx, extra)
