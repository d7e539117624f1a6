"""The campaign journal in one SQLite file (WAL mode): one row per message and per recipient.

The journal stores; it decides nothing (the states a reply leads to are
:mod:`.outcome`'s, the retry times :mod:`.retry`'s). Its one rule is the
commit rule the campaign relies on: :meth:`Journal.sending` is committed
before the message's end of data is written, and :meth:`Journal.record`
is committed as soon as the reply is read, so that after ``kill -9`` only
the rows still marked *sending* have an unknown fate (:meth:`recover` turns
them into *unknown*).

Message states: ``pending`` (not sent yet), ``sending`` (its end of data may
be on the wire), ``sent``, ``refused``, ``deferred`` (some recipient waits
for a retry), ``failed`` (given up), ``unknown`` (RFC 1047: the connection
was lost after the end of data and before its reply). A recipient has the
same states but *sending*.
"""
from __future__ import annotations

import hashlib
import json
import marshal
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .redo import RedoLog, RedoLogBusy, read_records, replay_dead

_T = TypeVar("_T")
_ADD_BATCH = 500  # rows journaled per statement by add()
#: The redo log is applied to the database when it holds this many records, or
#: when this many seconds have passed since it last was (what another process
#: reading the journal during a run may lag by), and before any read.
_REDO_BATCH = 500
_REDO_INTERVAL = 0.5

__all__ = ["Journal", "JournalError", "JournalWriteError", "Item", "Recipient", "MESSAGE_STATES", "RECIPIENT_STATES",
           "open_journal"]


def open_journal(path: str) -> Journal:
    """The journal at ``path``: a ``postgresql://`` URL (:mod:`.pgjournal`, psycopg 3)
    or a SQLite file."""
    text = str(path)
    if text.startswith(("postgresql://", "postgres://")):
        from .pgjournal import PgJournal  # psycopg only when asked for

        return PgJournal(text)
    return Journal(text)

SCHEMA_VERSION = "1"
MESSAGE_STATES = ("pending", "sending", "sent", "refused", "deferred", "failed", "unknown")
RECIPIENT_STATES = ("pending", "sent", "refused", "deferred", "failed", "unknown")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY,          -- order of first appearance
    key TEXT NOT NULL UNIQUE,         -- the row's id (or row number)
    digest TEXT NOT NULL,             -- of ready messages' envelope ('' for rows: their row is compared)
    row TEXT,                         -- the row, marshalled (a retry rebuilds the message from it)
    message_id TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,   -- ends of data written
    next_attempt REAL,                -- deferred: when the first recipient is due
    updated REAL,
    seen INTEGER NOT NULL DEFAULT 0   -- the last run whose manifest had this key
);
-- Only deferred rows: a row going pending -> sending -> sent touches no index.
CREATE INDEX IF NOT EXISTS messages_deferred ON messages (next_attempt) WHERE state = 'deferred';
CREATE TABLE IF NOT EXISTS recipients (
    seq INTEGER NOT NULL,
    address TEXT NOT NULL,
    state TEXT NOT NULL,
    code INTEGER, enhanced TEXT, text TEXT, queue_id TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    first_deferred REAL, next_attempt REAL, time REAL,
    PRIMARY KEY (seq, address)
) WITHOUT ROWID;
"""


class JournalError(Exception):
    """The journal cannot be used for this campaign (another campaign's, a changed row...)."""


class JournalWriteError(JournalError):
    """The journal could not record a mark or an outcome (a full disk): the run stops, and
    what was not recorded is held for the next write (none of it if the process ends)."""


@dataclass
class Recipient:
    """A recipient's journaled state, as :mod:`.outcome` needs it to decide the next one."""

    address: str
    state: str
    attempts: int = 0
    first_deferred: float | None = None


@dataclass
class Item:
    """One message to send now: its row, its stable Message-ID, the recipients it goes to."""

    seq: int
    key: str
    row: Any
    message_id: str
    state: str
    recipients: list[Recipient]
    #: States of the message's recipients not tried this time.
    others: set[str] = field(default_factory=set)


@dataclass
class Entry:
    """What :meth:`Journal.record` writes for one recipient."""

    address: str
    state: str
    code: int | None = None
    enhanced: str | None = None
    text: str | None = None
    queue_id: str | None = None
    attempted: bool = True
    first_deferred: float | None = None
    next_attempt: float | None = None


class Journal:
    """The SQLite journal of one campaign (see the module doc).

    One connection, used from one thread (the campaign's event loop). Every
    write is committed before the method returns: during a run (from
    :meth:`claim` on), the marks and outcomes into the redo log
    (:mod:`.redo`), which is applied to the database in batches and before
    any read; else into the database.
    """

    #: Whether a run's marks and outcomes go through a :class:`~.redo.RedoLog`.
    uses_redo_log = True
    _redo: RedoLog | None = None

    #: Whether a run's commits go to a :class:`~.writer.JournalWriter` thread. Not
    #: for SQLite: its commit is CPU work that takes as long on a thread as on the
    #: event loop, and handing it over costs more (measured: bench/README.md).
    threaded_writes = False

    def __init__(self, path: str) -> None:
        self.path = str(path)
        #: Outcomes recorded with commit=False, written and committed by flush().
        self._outcomes: list[tuple[int, str, Sequence[Entry]]] = []
        self._checkpointer: _Checkpointer | None = None
        try:
            self.db = self._connection()
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise JournalError(f"{self.path}: not a usable journal ({exc})") from None
        self._check_schema(self.path)
        replay_dead(self._redo_path(), self._apply_redo)  # a run that died: its last records
        self._applied_at = 0.0

    def _redo_path(self) -> str:
        return self.path + "-redo"

    def _check_schema(self, where: str) -> None:
        """A new journal gets this version's schema number; an old one must have it."""
        version = self.get("schema")
        if version is None:
            self.put("schema", SCHEMA_VERSION)
        elif version != SCHEMA_VERSION:
            raise JournalError(f"{where}: journal schema {version}, this smtpstream reads {SCHEMA_VERSION}")

    def close(self) -> None:
        try:
            self.sync()
            if self._redo is not None:  # all applied: the log goes
                self._redo.close()
                self._redo = None
        finally:
            if self._redo is not None:  # not applied: left for the next opener to apply
                self._redo.close(remove=False)
                self._redo = None
            if self._checkpointer is not None:
                self._checkpointer.stop()
                self._checkpointer = None
            self.db.close()  # the last connection: SQLite checkpoints and removes the WAL

    def _checkpoint_in_background(self) -> None:
        """From a run's start on: the WAL is copied back into the database by a thread
        of its own, not by the commit that fills it (a checkpoint syncs the file,
        and a sync must not stall the sending event loop; the commit of a large
        manifest's rows was paying for one)."""
        if self._checkpointer is None:
            self.db.execute("PRAGMA wal_autocheckpoint=0")
            self._checkpointer = _Checkpointer(self.path)
            self._checkpointer.start()

    # ---- the campaign's identity and settings

    def get(self, name: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else row[0]

    def put(self, name: str, value: str) -> None:
        self.db.execute("INSERT INTO meta (name, value) VALUES (?, ?) "
                        "ON CONFLICT (name) DO UPDATE SET value = excluded.value", (name, value))

    def get_json(self, name: str) -> Any:
        value = self.get(name)
        return None if value is None else json.loads(value)

    def claim(self, campaign_id: str, definition: Mapping[str, Any]) -> int:
        """Tie the journal to this campaign (or check that it is this campaign's);
        returns the number of this run (1 for the first)."""
        known = self.get("campaign")
        if known is not None and known != campaign_id:
            old = self.get_json("definition") or {}
            raise JournalError(
                f"{self.path} is the journal of another campaign (subject {old.get('subject')!r}, "
                f"from {old.get('from')!r}, created {self.get('created')}): use a new journal for this one")
        self._start_redo()  # before any write: a second run on the journal changes nothing
        runs = int(self.get("runs") or 0) + 1
        with self.transaction():
            if known is None:
                self.put("campaign", campaign_id)
                self.put("definition", json.dumps(definition, sort_keys=True))
                self.put("created", time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()) + " UTC")
            self.put("runs", str(runs))
        return runs

    def _start_redo(self) -> None:
        """This run's redo log, locked: a second run on the journal is refused here."""
        if not self.uses_redo_log or self._redo is not None:
            return
        try:
            self._redo = RedoLog(self._redo_path(), self._apply_redo,
                                 lambda: int(self.get("redo_applied") or 0) + 1)
        except RedoLogBusy:
            raise JournalError(f"{self.path}: another run is using this journal (it holds {self._redo_path()});"
                               " wait for it to finish, or stop it") from None
        self._applied_at = time.monotonic()
        self._checkpoint_in_background()

    # ---- rows in

    def transaction(self, keep: bool = True) -> _Transaction:
        """A transaction: committed on success (rolled back when not ``keep``: a dry run),
        rolled back on an exception."""
        self.sync()
        return _Transaction(self.db, keep)

    def forget(self, name: str) -> None:
        self.db.execute("DELETE FROM meta WHERE name = ?", (name,))

    def add(self, run: int, rows: Iterable[tuple[str, str | None, Any, str, Sequence[str]]]) -> tuple[int, int]:
        """Journal rows ``(key, digest, row, message_id, addresses)`` as pending, within
        the caller's transaction. A key journaled before must have the same content
        (else :class:`JournalError`): the same ``digest``, or when ``digest`` is
        None, a ``row`` (a mapping) with the same ``values`` and ``number``. A key
        twice in one run is an error too. Returns (rows new, rows known)."""
        new = known = 0
        (last,) = self.db.execute("SELECT coalesce(max(seq), 0) FROM messages").fetchone()
        batch: list[tuple[str, str | None, Any, str, Sequence[str]]] = []
        for row in rows:
            batch.append(row)
            if len(batch) == _ADD_BATCH:
                last, counts = self._add_batch(run, batch, last)
                new, known, batch = new + counts[0], known + counts[1], []
        if batch:
            last, counts = self._add_batch(run, batch, last)
            new, known = new + counts[0], known + counts[1]
        return new, known

    def _add_batch(self, run: int, batch: Sequence[tuple[str, str | None, Any, str, Sequence[str]]], last: int
                   ) -> tuple[int, tuple[int, int]]:
        """One batch of :meth:`add`: one query for the keys journaled before, one
        insert per table for the new rows (seq numbers given here, in order)."""
        db = self.db
        keys = [r[0] for r in batch]
        journaled = {key: (seen, digest, row) for key, seen, digest, row in db.execute(
            f"SELECT key, seen, digest, row FROM messages WHERE key IN ({','.join('?' * len(keys))})", keys)}
        messages: list[tuple[Any, ...]] = []
        recipients: list[tuple[int, str]] = []
        seen_again: list[tuple[int, str]] = []
        for key, digest, row, message_id, addresses in batch:
            found = journaled.get(key)
            if found is not None:
                if found[0] == run:
                    raise JournalError(f"row key {key!r} appears twice in the manifest (keys must be unique)")
                if not self._same_content(found[1], found[2], digest, row):
                    raise JournalError(
                        f"row {key!r} differs from the row journaled under that key in an earlier run:"
                        " a changed manifest cannot resume this campaign (use a new journal, or restore the row)")
                seen_again.append((run, key))
                journaled[key] = (run, None, None)
                continue
            last += 1
            journaled[key] = (run, None, None)  # the same key later in this run is a duplicate
            messages.append((last, key, digest or "", None if row is None else self.encode_row(row), message_id, run))
            recipients.extend((last, address) for address in dict.fromkeys(addresses))
        db.executemany("INSERT INTO messages (seq, key, digest, row, message_id, state, seen)"
                       " VALUES (?, ?, ?, ?, ?, 'pending', ?)", messages)
        db.executemany("INSERT INTO recipients (seq, address, state) VALUES (?, ?, 'pending')", recipients)
        db.executemany("UPDATE messages SET seen = ? WHERE key = ?", seen_again)
        return last, (len(messages), len(seen_again))

    def _same_content(self, stored_digest: str, stored_row: Any, digest: str | None, row: Any) -> bool:
        """Whether a key's journaled content is the content given again (see :meth:`add`).
        A row is compared with the row stored, no digest computed: a first run,
        the common case, pays nothing for it."""
        if digest is not None:
            return stored_digest == digest
        if stored_digest:  # journaled with its digest (journals written before rows were compared)
            return stored_digest == _row_digest(row)
        stored = self.decode_row(stored_row)
        return stored is not None and (stored["values"], stored["number"]) == (row["values"], row["number"])

    @staticmethod
    def encode_row(row: Any) -> Any:
        """A row's fields as the database stores them: :mod:`marshal`, a BLOB (several
        times faster to write and read than JSON; only the journal reads it)."""
        return marshal.dumps(row, 4)

    @staticmethod
    def decode_row(stored: Any) -> Any:
        """:meth:`encode_row` undone (JSON text: a journal written before rows were marshalled)."""
        if stored is None:
            return None
        return marshal.loads(stored) if isinstance(stored, bytes) else json.loads(stored)

    def lookup(self, key: str) -> tuple[int, str, str] | None:
        """(seq, state, message_id) of a key, or None."""
        self.sync()
        return self.db.execute("SELECT seq, state, message_id FROM messages WHERE key = ?", (key,)).fetchone()

    # ---- a run

    def recover(self, stale: tuple[str, tuple[Any, ...]] | None = None) -> int:
        """Rows left *sending* by a run that died: their end of data may have reached
        the server, so their outcome is unknown. Returns how many. ``stale``: the
        condition (SQL, params) such a row must meet, :meth:`_stale`'s by default."""
        now = time.time()
        stale, params = self._stale(now) if stale is None else stale
        with self.transaction():
            seqs = [s for (s,) in self.db.execute(f"SELECT seq FROM messages WHERE state = 'sending'{stale}", params)]
            for seq in seqs:
                self.db.execute(
                    "UPDATE recipients SET state = 'unknown', time = ?, text = ? WHERE seq = ? AND state = 'pending'",
                    (now, "the sender stopped after this message's end of data was written and before its"
                          " reply was read: it may have been delivered", seq))
                self.db.execute(
                    "UPDATE recipients SET state = 'unknown' WHERE seq = ? AND state = 'deferred'", (seq,))
                self.db.execute("UPDATE messages SET state = 'unknown', updated = ? WHERE seq = ?", (now, seq))
        return len(seqs)

    def _stale(self, now: float) -> tuple[str, tuple[Any, ...]]:
        """The condition (SQL, params) a *sending* row must meet to be recovered: on one
        machine every such row is a dead run's (one run at a time holds the journal)."""
        return "", ()

    def due(self, now: float, after: int, resend_unknown: bool, limit: int = 500) -> list[Item]:
        """Up to ``limit`` messages after ``after`` in journal order that are due now:
        pending rows, deferred rows whose retry is due, unknown rows when
        ``resend_unknown``. A pass moves ``after`` forward: each row once per pass."""
        self.sync()
        states = ["pending", "deferred"] + (["unknown"] if resend_unknown else [])
        rows = self.db.execute(
            f"SELECT seq, key, row, message_id, state FROM messages WHERE seq > ? AND state IN"
            f" ({','.join('?' * len(states))}) AND (state != 'deferred' OR next_attempt <= ?) ORDER BY seq LIMIT ?",
            (after, *states, now, limit)).fetchall()
        return self._items(rows, now)

    def _items(self, rows: Sequence[tuple[Any, ...]], now: float) -> list[Item]:
        """Items of (seq, key, row, message_id, state) rows, in seq order, with their due recipients."""
        if not rows:
            return []
        # The recipients of the page's pending rows in one query (the common case).
        pending: dict[int, list[Recipient]] = {r[0]: [] for r in rows if r[4] == "pending"}
        if pending:
            for seq, address, state, attempts, first in self.db.execute(
                    "SELECT seq, address, state, attempts, first_deferred FROM recipients"
                    " WHERE seq BETWEEN ? AND ? AND state = 'pending'", (min(pending), max(pending))):
                if seq in pending:
                    pending[seq].append(Recipient(address, state, attempts, first))
        decode = self.decode_row
        return [Item(r[0], r[1], decode(r[2]), r[3], r[4], pending[r[0]])
                if r[4] == "pending" else self._item(*r, now=now) for r in rows]

    def item(self, seq: int, now: float, resend_unknown: bool) -> Item | None:
        """The message ``seq`` if it is due now (as :meth:`due` would list it), else None."""
        self.sync()
        row = self.db.execute("SELECT seq, key, row, message_id, state, next_attempt FROM messages WHERE seq = ?",
                              (seq,)).fetchone()
        if row is None:
            return None
        state, next_attempt = row[4], row[5]
        if state == "pending" or (state == "unknown" and resend_unknown) or (
                state == "deferred" and next_attempt is not None and next_attempt <= now):
            return self._item(*row[:5], now=now)
        return None

    def _item(self, seq: int, key: str, row: str | None, message_id: str, state: str, now: float) -> Item:
        if state == "deferred":  # a deferred recipient is due at its own time
            rcpts = self.db.execute(
                "SELECT address, state, attempts, first_deferred FROM recipients WHERE seq = ?"
                " AND state = 'deferred' AND (next_attempt IS NULL OR next_attempt <= ?)", (seq, now)).fetchall()
        else:
            rcpts = self.db.execute(
                "SELECT address, state, attempts, first_deferred FROM recipients WHERE seq = ? AND state = ?",
                (seq, state)).fetchall()
        item = Item(seq, key, self.decode_row(row), message_id, state,
                    [Recipient(*r) for r in rcpts])
        if state != "pending":  # a first attempt goes to everyone; a retry to some
            tried = {r.address for r in item.recipients}
            item.others = {s for a, s in self.db.execute(
                "SELECT address, state FROM recipients WHERE seq = ?", (seq,)) if a not in tried}
        return item

    def _connection(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        # NORMAL in WAL mode: a commit is in the WAL file before commit
        # returns, so it survives the process being killed (not a power loss).
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA busy_timeout=5000")
        return db

    def connect(self) -> Any:
        """A connection of its own to this journal, for a thread that writes to it
        (:class:`~.writer.JournalWriter`): the same settings as the journal's."""
        db = self._connection()
        db.execute("PRAGMA wal_autocheckpoint=0")  # the checkpointer's job (see below)
        self._checkpoint_in_background()
        return db

    def sending(self, seq: int) -> None:
        """Committed before the message's end of data is written (with the outcomes
        :meth:`record` left for :meth:`flush`: one commit for all; during a run, an
        append to the redo log)."""
        if self._redo is not None:  # (its run started the checkpointer)
            self._redo.append(("m", seq, time.time()))
            self._written()
            return
        self._checkpoint_in_background()
        (changed,) = self._write_waiting([seq])
        self.check_marked(seq, changed)

    def mark_statement(self, seq: int, now: float) -> tuple[str, tuple[Any, ...]]:
        """The statement that marks ``seq`` *sending* (it changes one row, or the mark is refused)."""
        return ("UPDATE messages SET state = 'sending', attempts = attempts + 1, updated = ? WHERE seq = ?",
                (now, seq))

    def check_marked(self, seq: int, changed: int) -> None:
        """Raise unless the mark of ``seq`` changed its row (then its end of data is not written)."""
        if changed != 1:
            raise JournalError(f"row {seq}: not in this journal, not marked sending: not sent")

    def flush(self) -> None:
        """Write and commit the outcomes :meth:`record` was given with ``commit=False``
        (during a run, into the redo log)."""
        if self._redo is not None:
            self._written()
        elif self._outcomes:
            self._write_waiting([])

    def sync(self) -> None:
        """Everything recorded written into the database (:meth:`flush`, and the redo
        log applied): what the journal's readers see from now on."""
        if self._outcomes:
            self._write_waiting([])
        if self._redo is not None:
            self._write_redo()
            self._redo.apply()
            self._applied_at = time.monotonic()

    def _written(self) -> None:
        """The redo log's appended records written; the log into the database when it is due."""
        redo = self._redo
        self._write_redo()
        if len(redo.records) >= _REDO_BATCH or time.monotonic() - self._applied_at >= _REDO_INTERVAL:
            self.sync()

    def _write_redo(self) -> None:
        try:
            self._redo.write()
        except OSError as exc:
            raise JournalWriteError(exc.strerror or str(exc)) from None

    def _apply_redo(self, records: Sequence[tuple[Any, ...]]) -> None:
        """Redo log records into the database in one transaction: those not applied
        before (numbered above ``redo_applied``, which moves with them).

        A few statements for a whole batch, to the effect of the records applied
        one by one: a message only marked gets its marks' attempts and the last
        mark's time; a message with outcomes gets its recipients' rows in order
        and its last outcome's state, its marks' attempts with it; then the
        state again of those whose last record is a mark after an outcome."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            applied = int(self.get("redo_applied") or 0)
            fresh = [r for r in records if r[0] > applied]
            # (lsn, "m", seq, time) and (lsn, "o", seq, state, time, recipient rows)
            marks: dict[int, int] = {}
            for r in fresh:
                if r[1] == "m":
                    marks[r[2]] = marks.get(r[2], 0) + 1
            outcomes = [r[2:] for r in fresh if r[1] == "o"]
            with_outcome = {o[0] for o in outcomes}
            last = {r[2]: r for r in fresh}
            changed = 0
            only_marked = [(marks[seq], r[3], seq) for seq, r in last.items() if seq not in with_outcome]
            if only_marked:
                changed += db.executemany("UPDATE messages SET state = 'sending', attempts = attempts + ?,"
                                          " updated = ? WHERE seq = ?", only_marked).rowcount
            if outcomes:
                changed += self._write_outcomes(db, outcomes, marks)
                marked_again = [(r[3], seq) for seq, r in last.items() if r[1] == "m" and seq in with_outcome]
                if marked_again:
                    db.executemany("UPDATE messages SET state = 'sending', updated = ? WHERE seq = ?", marked_again)
            if changed != len(last):
                raise JournalError(f"{len(last) - changed} rows in the redo log are not in this journal")
            if fresh:
                self.put("redo_applied", str(fresh[-1][0]))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _write_waiting(self, marks: Sequence[int]) -> list[int]:
        """:meth:`write` on the journal's connection: the outcomes waiting, then ``marks``.
        Should it fail, the outcomes stay waiting (nothing recorded is dropped)."""
        outcomes, self._outcomes = self._outcomes, []
        try:
            return self.write(self.db, outcomes, marks)
        except BaseException:
            self._outcomes[:0] = outcomes
            raise

    def record(self, seq: int, state: str, entries: Sequence[Entry], commit: bool = True) -> None:
        """The outcome of one attempt: the message's new state and its recipients'
        (the message is next due when its first deferred recipient is). With
        ``commit=False`` the caller commits soon with :meth:`flush` (outcomes
        read together share one commit, and the next :meth:`sending` commits
        them too; during a run, one write to the redo log)."""
        if self._redo is not None:
            self._redo.append(("o", seq, state, time.time(), [entry_row(e) for e in entries]))
            if commit:
                self._written()
            return
        self._outcomes.append((seq, state, entries))
        if commit:
            self.flush()

    def write(self, db: Any, outcomes: Sequence[tuple[int, str, Sequence[Entry]]], marks: Sequence[int]
              ) -> list[int]:
        """On connection ``db``, in one transaction: the ``outcomes`` (seq, state,
        entries), then the sending marks of ``marks``; returns the rows each mark
        changed. Nothing is written if it raises."""
        return [cursor.rowcount for cursor in self._write(db, outcomes, marks)]

    def _write(self, db: Any, outcomes: Sequence[tuple[int, str, Sequence[Entry]]], marks: Sequence[int]
               ) -> list[Any]:
        """:meth:`write`'s statements; the marks' cursors (read once the commit is done)."""
        now = time.time()
        if not outcomes and len(marks) == 1:  # one statement commits by itself
            return [db.execute(*self.mark_statement(marks[0], now))]
        db.execute("BEGIN IMMEDIATE")
        try:
            if outcomes:
                self._write_outcomes(db, [(seq, state, now, [entry_row(e) for e in entries])
                                          for seq, state, entries in outcomes])
            cursors = [db.execute(*self.mark_statement(seq, now)) for seq in marks]
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return cursors

    @staticmethod
    def _write_outcomes(db: Any, outcomes: Sequence[tuple[int, str, float, Sequence[Sequence[Any]]]],
                        attempts: Mapping[int, int] | None = None) -> int:
        """Within the caller's transaction: outcomes (seq, state, time, recipient rows
        as :func:`entry_row` makes them), the messages' states and their recipients';
        ``attempts`` adds to a message's attempts. The number of messages changed."""
        recipients = [(*row[1:], now, seq, row[0]) for seq, _, now, rows in outcomes for row in rows]
        # A message's state is its last outcome's (a redo log batch can hold two of one message).
        last = {seq: (seq, state, now) for seq, state, now, _ in outcomes}.values()
        more = attempts or {}
        settled = [(state, now, more.get(seq, 0), seq) for seq, state, now in last if state != "deferred"]
        deferred = [(now, more.get(seq, 0), seq, seq) for seq, state, now in last if state == "deferred"]
        if recipients:
            db.executemany(
                "UPDATE recipients SET state = ?, code = ?, enhanced = ?, text = ?, queue_id = ?,"
                " attempts = attempts + ?, first_deferred = ?, next_attempt = ?, time = ?"
                " WHERE seq = ? AND address = ?", recipients)
        # next_attempt matters for deferred messages only (due(), next_due(), the index)
        changed = 0
        if settled:
            changed += db.executemany("UPDATE messages SET state = ?, updated = ?, attempts = attempts + ?,"
                                      " next_attempt = NULL WHERE seq = ?", settled).rowcount
        if deferred:
            changed += db.executemany(
                "UPDATE messages SET state = 'deferred', updated = ?, attempts = attempts + ?, next_attempt ="
                " (SELECT min(next_attempt) FROM recipients WHERE seq = ? AND state = 'deferred') WHERE seq = ?",
                deferred).rowcount
        return changed

    # ---- reading it back

    def counts(self) -> dict[str, Any]:
        """Messages per state (every state present, ``total`` too), and the same per recipient;
        read by another process during a run, they include what its redo log holds."""
        def tally(table: str, states: Sequence[str]) -> dict[str, int]:
            out = dict.fromkeys(states, 0)
            for state, n in self.db.execute(f"SELECT state, count(*) FROM {table} GROUP BY state"):
                out[state] = n
            return out

        def read(live: list[tuple[Any, ...]]) -> tuple[dict[str, Any], dict[str, int]]:
            messages, recipients = tally("messages", MESSAGE_STATES), tally("recipients", RECIPIENT_STATES)
            if live:
                changed, changed_recipients = self._overlay(live)
                for old, new in changed:
                    messages[old] -= 1
                    messages[new] += 1
                for old, new in changed_recipients:
                    recipients[old] -= 1
                    recipients[new] += 1
            return messages, recipients

        messages, recipients = self._reading(read)
        messages["total"] = sum(messages.values())
        recipients["total"] = sum(recipients.values())
        messages["recipients"] = recipients
        return messages

    def states(self) -> dict[str, str]:
        """Every message's state by its Message-ID, as a ``kill -9`` now would leave it
        (what a live run's redo log holds included): for tools and tests."""
        def read(live: list[tuple[Any, ...]]) -> dict[str, str]:
            now = _live_states(live)[0]
            return {message_id: now.get(seq, state)
                    for seq, message_id, state in self.db.execute("SELECT seq, message_id, state FROM messages")}

        return self._reading(read)

    def _reading(self, read: Callable[[list[tuple[Any, ...]]], _T]) -> _T:
        """``read(live)`` in one read transaction of the database, ``live`` the records
        of another process's live run that its snapshot does not hold yet (none for
        the run itself, which applies its own first). The log is read before the
        snapshot is taken: a record applied in between is in the snapshot (and left
        out of ``live``), so none is missed and none counted twice."""
        self.sync()
        records = self._live_log()
        self.db.execute("BEGIN")
        try:
            applied = int(self.get("redo_applied") or 0)
            return read([r for r in records if r[0] > applied])
        finally:
            self.db.execute("COMMIT")

    def _live_log(self) -> list[tuple[Any, ...]]:
        """The records in another process's redo log (none when no run is going on)."""
        if self._redo is not None:
            return []
        try:
            fd = os.open(self._redo_path(), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return []
        try:
            return read_records(fd)
        finally:
            os.close(fd)

    def _overlay(self, live: Sequence[tuple[Any, ...]]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """The (old, new) state changes the ``live`` records make, of messages and of recipients."""
        messages, recipients = _live_states(live)
        seqs = sorted(messages)
        marks = ",".join("?" * len(seqs))
        was = dict(self.db.execute(f"SELECT seq, state FROM messages WHERE seq IN ({marks})", seqs).fetchall())
        was_r = {(seq, a): st for seq, a, st in self.db.execute(
            f"SELECT seq, address, state FROM recipients WHERE seq IN ({marks})", seqs)}
        return ([(was[seq], new) for seq, new in messages.items() if seq in was and was[seq] != new],
                [(was_r[k], new) for k, new in recipients.items() if k in was_r and was_r[k] != new])

    def next_due(self) -> float | None:
        """When the first deferred recipient is due, or None."""
        self.sync()
        row = self.db.execute("SELECT min(next_attempt) FROM messages WHERE state = 'deferred'").fetchone()
        return row[0]

    def keys_in(self, state: str) -> list[str]:
        self.sync()
        return [k for (k,) in self.db.execute("SELECT key FROM messages WHERE state = ? ORDER BY seq", (state,))]

    def entry(self, key: str) -> dict[str, Any] | None:
        """One message's record: state, Message-ID, attempts and every recipient's row."""
        self.sync()
        found = self.db.execute("SELECT seq, state, message_id, attempts, updated FROM messages WHERE key = ?",
                                (key,)).fetchone()
        if found is None:
            return None
        seq, state, message_id, attempts, updated = found
        return {"key": key, "state": state, "message_id": message_id, "attempts": attempts, "time": updated,
                "recipients": [dict(zip(REPORT_FIELDS[1:], r)) for r in self.db.execute(
                    f"SELECT {', '.join(REPORT_FIELDS[1:])} FROM recipients WHERE seq = ?", (seq,))]}

    def report(self) -> Iterator[tuple[Any, ...]]:
        """One tuple per recipient, in journal order: see :data:`REPORT_FIELDS`."""
        self.sync()
        yield from self.db.execute(
            f"SELECT m.key, {', '.join('r.' + f for f in REPORT_FIELDS[1:])} FROM recipients r"
            " JOIN messages m ON m.seq = r.seq ORDER BY r.seq, r.address")


def _row_digest(row: Mapping[str, Any]) -> str:
    """The digest a row's content was journaled with before rows were compared as they are."""
    return hashlib.sha256(json.dumps([row["values"], row["number"]], sort_keys=True).encode()).hexdigest()


def _live_states(live: Sequence[tuple[Any, ...]]) -> tuple[dict[int, str], dict[tuple[int, str], str]]:
    """The states redo log records leave: by message seq, and by (seq, recipient address)."""
    messages: dict[int, str] = {}
    recipients: dict[tuple[int, str], str] = {}
    for record in live:  # (lsn, "m", seq, time) and (lsn, "o", seq, state, time, recipient rows)
        if record[1] == "m":
            messages[record[2]] = "sending"
        else:
            messages[record[2]] = record[3]
            for row in record[5]:
                recipients[(record[2], row[0])] = row[1]
    return messages, recipients


def entry_row(e: Entry) -> tuple[Any, ...]:
    """An :class:`Entry` as the journal writes it (and as the redo log holds it)."""
    return (e.address, e.state, e.code, e.enhanced, e.text, e.queue_id, int(e.attempted), e.first_deferred,
            e.next_attempt)


REPORT_FIELDS = ("key", "address", "state", "code", "enhanced", "text", "queue_id", "attempts", "time")


def summarise(states: set[str]) -> str:
    """A message's state from its recipients': what still needs attention first."""
    for state in ("unknown", "deferred", "pending", "sent", "refused"):
        if state in states:
            return state
    return "failed"


class _Checkpointer(threading.Thread):
    """Passive WAL checkpoints on a connection of its own, every ``interval`` seconds
    (SQLite releases the GIL meanwhile; a passive checkpoint never blocks a writer)."""

    def __init__(self, path: str, interval: float = 0.5) -> None:
        super().__init__(name="smtpstream-journal-checkpoint", daemon=True)
        self.path = path
        self.interval = interval
        self._stopping = threading.Event()

    def run(self) -> None:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA busy_timeout=5000")
            while not self._stopping.wait(self.interval):
                db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error:
            pass  # the journal was closed or removed under it: the next open checkpoints
        finally:
            db.close()

    def stop(self) -> None:
        self._stopping.set()
        self.join()


class _Transaction:
    def __init__(self, db: Any, keep: bool = True) -> None:
        self.db = db
        self.keep = keep

    def __enter__(self) -> Any:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, kind: Any, *rest: Any) -> None:
        self.db.execute("COMMIT" if kind is None and self.keep else "ROLLBACK")
