"""The SQLite journal's redo log: each mark and outcome appended to a file, then
applied to the database in batches.

Why: the journal's rule is one durable write before each end of data and one
after each reply. A SQLite commit in WAL mode costs 60-90 µs (whole pages into
the WAL, its locks taken and released), more than the rest of a small
message's sending; an append here costs about 2 µs. Both survive a killed
process the same way: the data is the kernel's once ``write()`` returns, and
neither is synced to the disk (the journal runs with ``synchronous=NORMAL``).

The file is ``<journal>-redo``, one frame per record: its length and CRC-32
(``<II``), then the record in :mod:`marshal` format 4 (five times faster to
write than JSON; it is read back only by this module): ``(lsn, "m", seq,
time)`` (a sending mark) or ``(lsn, "o", seq, state, time, recipients)`` (an
outcome). ``lsn`` goes up by one per record; the journal stores the last one
it applied in the same transaction that applies it, so a log read twice (the
process died between that commit and the log's truncation) applies each
record once. A frame cut short or damaged (only a full disk or a power loss
does that) ends the log: what it held was never reported written.

The run that writes the log holds an exclusive ``flock`` on it for as long as
it runs. Another process that finds the log locked knows a run is using the
journal (a second run is refused); finding it unlocked, it knows the run that
wrote it died, and applies it. A reader of a live run's journal reads the log
before the database, so that a batch applied in between is not missed.

Records appended together (the outcomes read in one event-loop turn, and the
next mark) go out in one ``write``; a write that fails or is cut short (a
full disk) is undone to its last whole frame and raises, its records held
for the next try.
"""
from __future__ import annotations

import errno
import fcntl
import marshal
import os
import struct
import zlib
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["RedoLog", "RedoLogBusy", "read_records"]

Record = tuple[Any, ...]
_FRAME = struct.Struct("<II")  # length, CRC-32 of the marshalled record
_MARSHAL_VERSION = 4


class RedoLogBusy(Exception):
    """Another process holds the log: a run is using the journal."""


def _locked(path: str, create: bool = False) -> int | None:
    """The log at ``path`` opened and locked for this process (created when ``create``),
    or None if there is no log there. Raises :class:`RedoLogBusy` if another
    process holds it."""
    flags = os.O_RDWR | os.O_APPEND | os.O_CLOEXEC | (os.O_CREAT if create else 0)
    while True:
        try:
            fd = os.open(path, flags, 0o600)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # Another process may have applied and removed the file between our open
            # and our lock: a log written there would be lost. Then open it again.
            held = os.fstat(fd)
            try:
                there = os.stat(path)
            except FileNotFoundError:
                there = None
        except BlockingIOError:
            os.close(fd)
            raise RedoLogBusy(path) from None
        except BaseException:
            os.close(fd)
            raise
        if there is not None and (there.st_dev, there.st_ino) == (held.st_dev, held.st_ino):
            return fd
        os.close(fd)


def read_records(fd: int) -> list[Record]:
    """The whole records of the log open at ``fd``, in order (a cut-short or damaged frame ends them)."""
    chunks = []
    offset = 0
    while True:
        chunk = os.pread(fd, 1 << 20, offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    data = b"".join(chunks)
    records = []
    at, end = 0, len(data)
    while at + _FRAME.size <= end:
        size, crc = _FRAME.unpack_from(data, at)
        body = data[at + _FRAME.size:at + _FRAME.size + size]
        if len(body) != size or zlib.crc32(body) != crc:
            break
        try:
            records.append(marshal.loads(body))
        except (EOFError, ValueError, TypeError):
            break
        at += _FRAME.size + size
    return records


def replay_dead(path: str, apply: Callable[[Sequence[Record]], None]) -> bool:
    """If a log a dead run left is at ``path``, give its records to ``apply`` (which
    skips those applied before) and remove it. False if a live run holds it."""
    try:
        fd = _locked(path)
    except RedoLogBusy:
        return False
    if fd is None:
        return True
    try:
        apply(read_records(fd))
        os.unlink(path)  # still locked: no other process applies it meanwhile
    finally:
        os.close(fd)
    return True


class RedoLog:
    """The log of one run, locked by it (see the module doc). ``apply`` writes records
    to the database in one transaction; ``next_lsn`` is the first number to use."""

    def __init__(self, path: str, apply: Callable[[Sequence[Record]], None], next_lsn: Callable[[], int]) -> None:
        self.path = path
        self._apply = apply
        fd = _locked(path, create=True)  # a dead run's log is applied first (a race with another opener)
        if fd is None:
            raise FileNotFoundError(f"{path}: cannot create the journal's redo log (no such folder)")
        self._fd = fd
        try:
            self._settle(read_records(fd))
            self._lsn = next_lsn()
        except BaseException:
            self.close()
            raise
        #: Records written and not applied yet, in order.
        self.records: list[Record] = []
        self._unwritten: list[bytes] = []
        self._unwritten_records: list[Record] = []

    def _settle(self, records: Sequence[Record]) -> None:
        if records:
            self._apply(records)
        os.ftruncate(self._fd, 0)

    def append(self, record: Record) -> None:
        """``record`` with its number in front, held until :meth:`write` (records
        appended together go out in one system call)."""
        record = (self._lsn, *record)
        body = marshal.dumps(record, _MARSHAL_VERSION)
        self._unwritten.append(_FRAME.pack(len(body), zlib.crc32(body)) + body)
        self._unwritten_records.append(record)
        self._lsn += 1

    def write(self) -> None:
        """The records appended since the last write into the file: durable once this
        returns (as a commit is). Should it fail, they stay held for the next try."""
        if not self._unwritten:
            return
        frames = b"".join(self._unwritten)
        try:
            written = os.write(self._fd, frames)
        except OSError as exc:
            raise OSError(exc.errno, f"{self.path}: the journal's redo log could not be written"
                                     f" ({exc.strerror})") from None
        if written != len(frames):  # a full disk: what went out is not whole, so it was not written
            os.ftruncate(self._fd, os.fstat(self._fd).st_size - written)
            raise OSError(errno.ENOSPC, f"{self.path}: the journal's redo log could not be written (disk full?)")
        self.records += self._unwritten_records
        self._unwritten.clear()
        self._unwritten_records.clear()

    def apply(self) -> None:
        """Write the records appended so far to the database, then empty the log."""
        self.write()
        if self.records:
            records, self.records = self.records, []
            try:
                self._settle(records)
            except BaseException:
                self.records[:0] = records  # still in the log, and kept for the next try
                raise

    def close(self, remove: bool = True) -> None:
        """Unlock the log; remove it when ``remove`` (everything in it applied)."""
        if self._fd >= 0:
            if remove:
                try:
                    os.unlink(self.path)
                except FileNotFoundError:
                    pass
            os.close(self._fd)
            self._fd = -1
