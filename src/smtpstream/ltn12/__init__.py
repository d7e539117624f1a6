"""LTN12 in Python: sources, filters, sinks and pumps (LuaSocket's ``ltn12.lua``).

::

    from smtpstream import ltn12
    src = ltn12.source.chain(ltn12.source.file(open(path, "rb")), encoder)
    snk, chunks = ltn12.sink.table()
    ltn12.pump.all(src, snk)

The contract, with LuaSocket's ``nil, err`` turned into exceptions:

* A *source* is any iterable of bytes-like chunks; a callable returning
  chunks (``b""`` allowed) and then ``None`` is accepted too
  (:func:`source.iterate`).
* A *filter* is ``f(chunk) -> bytes``, and ``f(None) -> bytes`` once at the
  end with all the remaining output (docs/filters.md). No draining calls.
* A *sink* is ``snk(chunk)``; ``snk(None)`` is the end of data. It raises to
  abort; its return value is ignored.
* :func:`pump.all` re-raises a source error without calling ``snk(None)``.

Any callable with the filter contract works; ``filter.chain`` only knows
which of smtpstream's own filters fuse into one (:mod:`smtpstream.fused`).
"""
from . import filter, pump, sink, source
from ._common import BLOCKSIZE, LTN12Error, SinkError, SourceError

__all__ = [
    "BLOCKSIZE",
    "LTN12Error",
    "SinkError",
    "SourceError",
    "filter",
    "pump",
    "sink",
    "source",
]
