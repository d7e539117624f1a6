"""Part bodies: what produces the encoded bytes of one leaf part, lazily.

A body knows how to produce its chunks (``chunks()``, a fresh iterator each
call) and, when it can know it without producing them, its exact encoded
length (``size()``, else ``None``). Files are opened only when their chunks are
first asked for and closed when the last chunk has been read.
"""
from __future__ import annotations

import _thread  # threading.Lock is _thread's lock; threading costs milliseconds to import
import io
import os
import stat

from .. import filters
from ..filters import CleanLines
from ..ltn12 import BLOCKSIZE
from ..fused import Base64Lines
from ..ltn12.source import Chained, iterate

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: typing takes milliseconds to import
    from typing import Any, BinaryIO, Iterator, Union

__all__ = [
    "Body",
    "BytesBody",
    "SourceBody",
    "base64_line_length",
    "Base64FileBody",
    "Base64SourceBody",
    "CachedBody",
    "base64_size",
    "DEFAULT_CACHE_THRESHOLD",
]

LINE = 76  # base64 characters per line (RFC 2045 6.8)
MAX_LINE = 998  # octets of a line before its CRLF (RFC 5322 2.1.1, RFC 5321 4.5.3.1.6)


def longest_line(data: bytes) -> int:
    """The longest line of ``data``, any CR or LF ending a line (as the sender normalises them)."""
    return max(map(len, data.splitlines()), default=0)  # bytes split at CR, LF and CRLF only


def base64_size(n: int, line: int = LINE) -> int:
    """Exact length of ``n`` bytes as base64 in CRLF lines of ``line`` characters."""
    chars = (n + 2) // 3 * 4
    return chars + 2 * ((chars + line - 1) // line)


class Body:
    """The encoded body of one leaf part.

    ``replayable``: True when :meth:`chunks` can be called again and gives
    the same bytes (bytes, a file named by its path, a cached body), so that
    a message can be sent again whole after a lost connection.
    """

    replayable = False
    #: True when the encoded bytes are known to be 7-bit (ASCII): then the
    #: message needs no BODY=8BITMIME (RFC 6152). Unknown counts as 8-bit.
    seven_bit = False
    #: True when every line is known to fit RFC 5321's 998 octets before its
    #: CRLF; else the sender checks the lines as they go (unknown: checked).
    short_lines = False

    def chunks(self) -> Iterator[bytes]:  # pragma: no cover - abstract
        raise NotImplementedError

    def size(self) -> int | None:
        return None


class BytesBody(Body):
    """Bytes already encoded for the wire. ``short_lines``: True when the encoder
    that made them guarantees lines within :data:`MAX_LINE` (else measured once)."""

    __slots__ = ("data", "_short")
    replayable = True

    @property
    def seven_bit(self) -> bool:
        return self.data.isascii()

    @property
    def short_lines(self) -> bool:
        if self._short is None:
            self._short = longest_line(self.data) <= MAX_LINE
        return self._short

    def __init__(self, data: bytes, short_lines: bool | None = None) -> None:
        self.data = data
        self._short = short_lines

    def terminated(self) -> BytesBody:
        """This body with its last line ended by CRLF (no line gets longer)."""
        data = self.data
        return BytesBody(data + b"\r\n", self._short) if data and not data.endswith(b"\r\n") else self

    def chunks(self) -> Iterator[bytes]:
        if self.data:
            yield self.data

    def size(self) -> int:
        return len(self.data)


def base64_line_length(source: Any) -> int | None:
    """The line length when ``source`` gives only base64 lines (CleanLines), else None.

    True of ``ltn12.source.chain(src, filter.chain(mime.encode("base64"),
    mime.wrap(n)))`` whatever ``src`` gives: the fused filter writes nothing else.
    """
    if type(source) is Chained and not source.started and type(source.filter) is Base64Lines:
        return source.filter.length
    return None


class SourceBody(Body):
    """A user's source, passed on as LuaSocket does, but with line breaks made CRLF.

    ``normalize=False`` passes the chunks on untouched (Content-Transfer-Encoding
    ``binary``). CleanLines chunks are passed on as they are: they have only
    CRLF breaks, and the sender checks that they hold. A chained source of
    base64 lines (:func:`base64_line_length`) is 7-bit, and its lines are short
    when their length is at most 998.
    """

    __slots__ = ("_source", "_normalize", "_used", "seven_bit", "short_lines")

    def __init__(self, source: Any, normalize: bool = True) -> None:
        self._source = source
        self._normalize = normalize
        self._used = False
        line = base64_line_length(source)
        self.seven_bit = line is not None
        self.short_lines = line is not None and line <= MAX_LINE

    def chunks(self) -> Iterator[bytes]:
        if self._used:
            raise RuntimeError("a source body can be sent once; build a new message for each send")
        self._used = True
        chunks = iterate(self._source)
        if not self._normalize:
            for chunk in chunks:
                if chunk:
                    yield bytes(chunk)
            return
        normalizer = filters.EOLNormalizer()
        for chunk in chunks:
            if (
                type(chunk) is CleanLines
                and normalizer.state == 0
                and chunk[-1:] != b"\r"
                and (chunk[-1:] != b"\n" or chunk[-2:] == b"\r\n")
            ):
                # The normaliser would give it back unchanged and end in state 0
                # (if it holds; if not, normalising it again later gives the
                # same bytes: the sender normalises every chunk that does not).
                if chunk:
                    yield chunk
                continue
            out = normalizer(chunk)
            if out:
                yield out
        normalizer(None)


def _open_reader(target: Union[str, os.PathLike, BinaryIO]) -> tuple[BinaryIO, bool]:
    if isinstance(target, (str, os.PathLike)):
        return open(target, "rb"), True
    return target, False


class Base64FileBody(Body):
    """A file, read in blocks and base64-encoded in 76-column lines as it is sent.

    ``target`` is a path (opened at the first chunk, closed after the last) or
    an open binary file (read from its current position, left open).
    """

    __slots__ = ("_target", "_blocksize")

    def __init__(self, target: Union[str, os.PathLike, BinaryIO], blocksize: int = BLOCKSIZE) -> None:
        if not isinstance(target, (str, os.PathLike)):
            if isinstance(target, io.TextIOBase):
                raise TypeError("attachment files must be opened in binary mode ('rb')")
            if not hasattr(target, "read"):
                raise TypeError(f"expected a path or a binary file, got {type(target).__name__}")
        self._target = target
        self._blocksize = blocksize

    seven_bit = True  # base64
    short_lines = True

    @property
    def replayable(self) -> bool:
        # A path is opened afresh for each replay; an open file is read from
        # where it is, once.
        return isinstance(self._target, (str, os.PathLike))

    def _remaining(self) -> int | None:
        target = self._target
        try:
            if isinstance(target, (str, os.PathLike)):
                st = os.stat(target)
                offset = 0
            else:
                st = os.fstat(target.fileno())
                offset = target.tell()
            # Only a regular file's length is known in advance (not a pipe's).
            return st.st_size - offset if stat.S_ISREG(st.st_mode) else None
        except (OSError, AttributeError, io.UnsupportedOperation):
            return None

    def size(self) -> int | None:
        n = self._remaining()
        return None if n is None else base64_size(n)

    def chunks(self) -> Iterator[bytes]:
        reader, owned = _open_reader(self._target)
        try:
            encoder = filters.Base64WrapEncoder(LINE)
            read = reader.read
            block = self._blocksize
            while True:
                data = read(block)
                if not data:
                    break
                out = encoder(data)
                if out:
                    yield CleanLines(out)
            tail = encoder(None)
            if tail:
                yield CleanLines(tail)
        finally:
            if owned:
                reader.close()


class Base64SourceBody(Body):
    """Any source of raw bytes, base64-encoded in 76-column lines as it is sent."""

    seven_bit = True
    short_lines = True

    __slots__ = ("_source", "_size", "_used")

    def __init__(self, source: Any, raw_size: int | None = None) -> None:
        self._source = source
        self._size = raw_size
        self._used = False

    def size(self) -> int | None:
        return None if self._size is None else base64_size(self._size)

    def chunks(self) -> Iterator[bytes]:
        if self._used:
            raise RuntimeError("a source body can be sent once; build a new message for each send")
        self._used = True
        encoder = filters.Base64WrapEncoder(LINE)
        for chunk in iterate(self._source):
            out = encoder(chunk)
            if out:
                yield CleanLines(out)
        tail = encoder(None)
        if tail:
            yield CleanLines(tail)


DEFAULT_CACHE_THRESHOLD = 8 * 1024 * 1024


class CachedBody(Body):
    """Another body's encoded bytes, produced once and replayed for every message.

    For bulk sends of one attachment. The encoded bytes stay in memory up to
    ``threshold`` bytes; a larger body is spilled to an anonymous temporary
    file, so memory stays bounded by ``threshold`` plus one block. Encoding
    happens at the first ``chunks()`` or ``size()`` call, once, even when
    several threads ask at the same time.
    """

    replayable = True

    def __init__(self, inner: Body, threshold: int = DEFAULT_CACHE_THRESHOLD) -> None:
        if threshold < 0:
            raise ValueError("threshold must be >= 0")
        self._inner: Body | None = inner
        self.seven_bit = inner.seven_bit
        self.short_lines = inner.short_lines
        self._threshold = threshold
        self._lock = _thread.allocate_lock()
        self._memory: bytes | None = None
        self._file: Any = None
        self._size = 0
        self._clean = False  # the encoded bytes are CleanLines (base64 lines)
        self._closed = False
        self.encode_count = 0  # how many times the inner body was encoded (always <= 1)

    def _fill(self) -> None:
        with self._lock:
            if self._closed:
                raise ValueError("this cached() part was closed: its bytes are gone")
            if self._inner is None:
                return
            pieces: list[bytes] = []
            held = 0
            spill = None
            clean = True
            for chunk in self._inner.chunks():
                clean = clean and type(chunk) is CleanLines
                if spill is not None:
                    spill.write(chunk)
                elif held + len(chunk) > self._threshold:
                    import tempfile  # only bodies above the threshold need it

                    spill = tempfile.TemporaryFile()
                    for piece in pieces:
                        spill.write(piece)
                    pieces = []
                    spill.write(chunk)
                else:
                    pieces.append(chunk)
                held += len(chunk)
            self._size = held
            self._clean = clean
            if spill is None:
                joined = b"".join(pieces)
                self._memory = CleanLines(joined) if clean else joined
            else:
                spill.flush()
                self._file = spill
            self.encode_count += 1
            self._inner = None

    @property
    def in_memory(self) -> bool:
        """True when the encoded bytes are held in memory (not spilled)."""
        self._fill()
        return self._file is None

    def size(self) -> int:
        self._fill()
        return self._size

    def chunks(self) -> Iterator[bytes]:
        self._fill()
        # os.pread: concurrent replays share the file without sharing a position.
        # Each replay reads its own duplicate of the descriptor: a close() while
        # it runs cannot leave it reading whatever file gets the number next.
        with self._lock:
            if self._closed:
                raise ValueError("this cached() part was closed: its bytes are gone")
            memory = self._memory
            fd = os.dup(self._file.fileno()) if self._file is not None else None
        if fd is None:
            if memory:
                yield memory
            return
        try:
            # Whole 78-byte base64 lines per block, so each block stays CleanLines.
            step = BLOCKSIZE // (LINE + 2) * (LINE + 2) if self._clean else BLOCKSIZE
            offset = 0
            while offset < self._size:
                block = os.pread(fd, step, offset)
                if not block:
                    break
                offset += len(block)
                yield CleanLines(block) if self._clean else block
        finally:
            os.close(fd)

    def close(self) -> None:
        """Drop the cached bytes (and the temporary file); the part cannot be sent after this."""
        with self._lock:
            self._closed = True
            if self._file is not None:
                self._file.close()
                self._file = None
            self._memory = None

