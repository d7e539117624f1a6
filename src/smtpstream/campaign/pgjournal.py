"""The campaign journal in PostgreSQL (psycopg 3): the SQLite journal's schema, states
and commit rule, for workers on several machines.

What changes with several workers is who may send a row. A row is *claimed*
before it is sent: :meth:`PgJournal.due` takes due rows with ``FOR UPDATE
SKIP LOCKED`` and gives them this worker's id and a lease (an expiry time).
A row another worker holds under a live lease is not due; a lease that
expires (its worker died) makes a pending row claimable again, and turns a
row its worker had marked *sending* into *unknown* (:meth:`recover`), as a
crash does on one machine. :meth:`sending` marks a row only while this worker
holds it: a worker whose lease was taken over never writes that end of data,
so two workers can never both send a row.

Everything else (adding rows, outcomes, counts, the report) is the SQLite
journal's code, on a connection that speaks psycopg with SQLite's ``?``
placeholders (:class:`_Connection`).
"""
from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg

from .journal import Item, Journal, JournalError

__all__ = ["PgJournal", "LEASE_SECONDS"]

#: How long a claim holds: a worker that has not marked its rows *sending*
#: within this time loses them (a dead worker's rows are claimed again).
LEASE_SECONDS = 120.0

_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS messages (
        seq BIGINT PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,
        digest TEXT NOT NULL,
        row TEXT,
        message_id TEXT NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt DOUBLE PRECISION,
        updated DOUBLE PRECISION,
        seen INTEGER NOT NULL DEFAULT 0,
        worker TEXT,                       -- who claimed the row
        lease_until DOUBLE PRECISION       -- until when (epoch seconds)
    )""",
    "CREATE INDEX IF NOT EXISTS messages_deferred ON messages (next_attempt) WHERE state = 'deferred'",
    "CREATE INDEX IF NOT EXISTS messages_open ON messages (seq) WHERE state IN ('pending', 'sending')",
    """CREATE TABLE IF NOT EXISTS recipients (
        seq BIGINT NOT NULL,
        address TEXT NOT NULL,
        state TEXT NOT NULL,
        code INTEGER, enhanced TEXT, text TEXT, queue_id TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        first_deferred DOUBLE PRECISION, next_attempt DOUBLE PRECISION, time DOUBLE PRECISION,
        PRIMARY KEY (seq, address)
    )""",
    # The campaign-wide rate: the next free sending slot, shared by every worker.
    "CREATE TABLE IF NOT EXISTS rate (id INTEGER PRIMARY KEY, next_slot DOUBLE PRECISION NOT NULL)",
]


class _Connection:
    """psycopg behind the sqlite3 calls :class:`Journal` makes: ``?`` placeholders,
    ``execute`` returning a cursor, ``executemany``, BEGIN IMMEDIATE as BEGIN."""

    def __init__(self, url: str, **options: Any) -> None:
        self.conn = psycopg.connect(url, autocommit=True, **options)
        self._sql: dict[str, str] = {}

    def _translate(self, sql: str) -> str:
        out = self._sql.get(sql)
        if out is None:
            out = self._sql[sql] = sql.replace("?", "%s").replace("BEGIN IMMEDIATE", "BEGIN")
        return out

    def execute(self, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor:
        return self.conn.execute(self._translate(sql), params or None)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> psycopg.Cursor:
        """As sqlite3's: the cursor's ``rowcount`` is the rows all of them changed."""
        rows = list(rows)
        with self.conn.cursor() as cursor:
            if rows:
                cursor.executemany(self._translate(sql), rows)
            return cursor

    def close(self) -> None:
        self.conn.close()


class PgJournal(Journal):
    """The journal of one campaign in a PostgreSQL database (see the module doc).

    ``worker``: this process's id in claims (host, pid and a random part by
    default); ``lease``: seconds a claim holds.
    """

    def __init__(self, url: str, worker: str | None = None, lease: float = LEASE_SECONDS) -> None:
        self.path = url
        self._outcomes = []
        self._checkpointer = None
        self.worker = worker or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease = float(lease)
        try:
            self.db = _Connection(url)
        except psycopg.Error as exc:
            raise JournalError(f"{_safe(url)}: cannot connect to the journal ({exc})") from None
        with self.db.conn.transaction():
            # One schema creation at a time (workers may start together).
            self.db.conn.execute("SELECT pg_advisory_xact_lock(727272)")
            for statement in _SCHEMA:
                self.db.conn.execute(statement)
        self._check_schema(_safe(url))

    #: A commit waits for the database's reply (the GIL released): on a thread it
    #: overlaps the sending, and the marks and outcomes of a busy run share it.
    threaded_writes = True
    #: Its commits go to a writer thread, one per busy moment: no redo log in front.
    uses_redo_log = False

    @staticmethod
    def encode_row(row: Any) -> Any:
        """JSON text (the column is ``text``: readable by any worker's Python)."""
        return json.dumps(row)

    def close(self) -> None:
        try:
            self.flush()
            self.release()
        finally:
            self.db.close()

    def _checkpoint_in_background(self) -> None:
        pass  # PostgreSQL checkpoints by itself

    def claim(self, campaign_id: str, definition: Any) -> int:
        # Serialised: two workers claiming a new journal must not both create the campaign.
        self.db.execute("SELECT pg_advisory_lock(727273)")
        try:
            return super().claim(campaign_id, definition)
        finally:
            self.db.execute("SELECT pg_advisory_unlock(727273)")

    # ---- claims

    def _stale(self, now: float) -> tuple[str, tuple[Any, ...]]:
        # Only rows whose claim ran out: another worker may be sending the rest right now.
        return " AND (lease_until IS NULL OR lease_until < ?)", (now,)

    def due(self, now: float, after: int, resend_unknown: bool, limit: int = 500,
            until: int | None = None) -> list[Item]:
        """Claim up to ``limit`` due rows after ``after`` (and up to ``until``) for this
        worker, and return them: rows held by another worker's live lease are skipped."""
        states = ["pending", "deferred"] + (["unknown"] if resend_unknown else [])
        upto = "" if until is None else " AND seq <= ?"
        rows = self.db.execute(
            "UPDATE messages SET worker = ?, lease_until = ? WHERE seq IN ("
            f" SELECT seq FROM messages WHERE seq > ?{upto} AND state IN ({','.join('?' * len(states))})"
            " AND (state != 'deferred' OR next_attempt <= ?)"
            " AND (lease_until IS NULL OR lease_until < ? OR worker = ?)"
            " ORDER BY seq LIMIT ? FOR UPDATE SKIP LOCKED)"
            " RETURNING seq, key, row, message_id, state",
            (self.worker, now + self.lease, after, *(() if until is None else (until,)), *states, now, now,
             self.worker, limit)).fetchall()
        return self._items(sorted(rows), now)

    def mark_statement(self, seq: int, now: float) -> tuple[str, tuple[Any, ...]]:
        """Marked only while this worker holds the row (:meth:`check_marked` refuses
        the mark otherwise: the end of data is not written); the lease is renewed
        for the reply."""
        return ("UPDATE messages SET state = 'sending', attempts = attempts + 1, updated = ?, lease_until = ?"
                " WHERE seq = ? AND worker = ? AND state != 'sending'", (now, now + self.lease, seq, self.worker))

    def check_marked(self, seq: int, changed: int) -> None:
        if changed != 1:
            raise JournalError(f"row {seq}: this worker's claim on it ran out and another worker took it:"
                               " not sent by this one")

    def connect(self) -> _Connection:
        # Named, so that an operator sees in pg_stat_activity whose connection it is.
        return _Connection(self.path, application_name="smtpstream-journal-writer")

    def write(self, db: Any, outcomes: Sequence[tuple[int, str, Sequence[Any]]], marks: Sequence[int]
              ) -> list[int]:
        """The SQLite journal's statements, sent in one pipeline: one round trip to the
        server for the whole transaction, not one per statement."""
        try:
            with db.conn.pipeline():
                cursors = self._write(db, outcomes, marks)
        except psycopg.Error:
            # An error reported when the pipeline synced: the transaction is aborted.
            if db.conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                db.conn.execute("ROLLBACK")
            raise
        return [cursor.rowcount for cursor in cursors]

    def recover_own(self) -> int:
        """This worker's rows left *sending* by a connection of its own that was lost
        (none of them is in flight any more): unknown now, without waiting for the
        lease to run out."""
        return self.recover((" AND worker = ?", (self.worker,)))

    def release(self) -> None:
        """Give back the rows this worker claimed and did not send."""
        self.db.execute("UPDATE messages SET lease_until = NULL, worker = NULL WHERE worker = ? AND state IN"
                        " ('pending', 'deferred', 'unknown')", (self.worker,))

    # ---- the campaign-wide rate

    def rate_slot(self, rate: float) -> float:
        """The time (epoch seconds) at which this worker may start its next message, for
        a campaign-wide ``rate`` in messages per second over every worker."""
        now = time.time()
        gap = 1.0 / rate
        row = self.db.execute(
            "INSERT INTO rate (id, next_slot) VALUES (1, ? + ?) ON CONFLICT (id) DO UPDATE"
            " SET next_slot = greatest(rate.next_slot, ?) + ? RETURNING next_slot",
            (now, gap, now, gap)).fetchone()
        return float(row[0]) - gap


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    head, at, tail = url.rpartition("@")
    if not at:
        return url
    scheme, _, credentials = head.partition("://")
    return f"{scheme}://{credentials.split(':', 1)[0]}@{tail}"
