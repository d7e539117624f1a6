"""LTN12 pumps: move chunks from a source to a sink.

On a source error the exception is re-raised and the sink is *not* given
``None``: ``None`` means a complete stream, and would close a file sink as if
the data were whole. (LuaSocket's pump passes ``nil, err`` to the sink.)
"""
from __future__ import annotations


from ._common import Chunk, Sink, Source
from .source import iterate

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: typing takes milliseconds to import
    from typing import Callable, Iterator, Optional

__all__ = ["step", "all"]

_END = object()


def _none_chunk() -> TypeError:
    # A None inside an iterable would tell the sink "end of data" too early.
    return TypeError("source gave None as a chunk; an iterable source ends by stopping")


def step(src: Iterator[Chunk], snk: Sink) -> bool:
    """Moves one chunk from the iterator ``src`` (see ``source.iterate``) to ``snk``.

    Returns True while there is more; at the end calls ``snk(None)`` and
    returns False.
    """
    chunk = next(src, _END)
    if chunk is _END:
        snk(None)
        return False
    if chunk is None:
        raise _none_chunk()
    snk(chunk)
    return True


def all(
    src: Source,
    snk: Sink,
    step: Optional[Callable[[Iterator[Chunk], Sink], bool]] = None,
) -> None:
    """Moves every chunk of ``src`` to ``snk``, then ``snk(None)``.

    ``step(iterator, snk)``, if given, is called until it returns False
    (it must give the sink ``None`` at the end, as :func:`step` does).
    """
    if not callable(snk):
        raise TypeError(f"ltn12.pump.all: {type(snk).__name__} object is not a sink (not callable)")
    it = iterate(src)
    if step is None:
        for chunk in it:
            if chunk is None:
                raise _none_chunk()
            snk(chunk)
        snk(None)
        return
    if not callable(step):
        raise TypeError(f"ltn12.pump.all: step must be callable, got {type(step).__name__}")
    while step(it, snk):
        pass
