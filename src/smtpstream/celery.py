"""Campaigns across worker processes and machines, on Celery, with a PostgreSQL journal.

Start workers with ``celery -A smtpstream.celery worker`` (``--pool solo`` or
``prefork``), configured by two environment variables: ``SMTPSTREAM_BROKER``
(the broker URL, e.g. ``redis://host:6379/0``) and ``SMTPSTREAM_JOURNAL`` (the
campaign journal, ``postgresql://...``). Everything else (the template, the
relay, TLS, the campaign's rate) travels in the journal; a password only as
the name of an environment variable the workers read (``password_env``).

:func:`enqueue` journals the rows (the same check as a local run: nothing is
enqueued unless every row is good) and sends one task per batch of rows
(default 500), by journal order. A task claims its batch's due rows in the
journal (:mod:`.campaign.pgjournal`) and sends them through a pool that its
worker process keeps open across tasks, so connections are per worker process
and relay, not per task. Tasks are ``acks_late`` and idempotent through the
claims: a task delivered twice (a broker's redelivery after its visibility
timeout, a duplicate) sends what is still due, nothing else; a worker that
dies leaves its claims to expire, and the redelivered task waits for them.

The campaign-wide rate (``rate`` messages per second over every worker) is a
slot counter in the journal's database, not a per-process limit.
"""
from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

import psycopg
from celery import Celery

from .campaign import Campaign, Template
from .campaign.outcome import entries_for
from .campaign.pgjournal import PgJournal
from .campaign.retry import RetrySchedule
from .campaign.runner import item_fields, not_sent
from .campaign.writer import JournalWriter
from .pool import AsyncPool

__all__ = ["app", "send_batch", "enqueue", "BATCH_SIZE"]

BATCH_SIZE = 500
#: Rows claimed at a time by a task (each claim must be sent within its lease).
_PAGE = 100

app = Celery("smtpstream", broker=os.environ.get("SMTPSTREAM_BROKER", "redis://127.0.0.1:6379/0"))
app.conf.update(
    task_acks_late=True,                 # a task lost with its worker runs again...
    task_reject_on_worker_lost=True,     # ...also when a prefork child is killed
    worker_prefetch_multiplier=1,        # a worker holds one batch, not four
    task_serializer="json", accept_content=["json"], result_backend=None, task_ignore_result=True,
    broker_transport_options={"visibility_timeout": float(os.environ.get("SMTPSTREAM_VISIBILITY_TIMEOUT", 3600))},
    broker_connection_retry_on_startup=True,
)


@app.task(name="smtpstream.send_batch", acks_late=True, bind=True, max_retries=None)
def send_batch(task: Any, first: int, last: int, journal: str | None = None) -> dict[str, int]:
    """Send the due rows with journal order ``first``..``last``; returns counts by outcome.

    If the journal's database drops the worker's connections (a restart, a
    failover), the worker opens new ones and the task runs again, later
    (its claims make that safe): a lost connection never skips a batch."""
    url = journal or os.environ.get("SMTPSTREAM_JOURNAL")
    if not url:
        raise RuntimeError("send_batch: set SMTPSTREAM_JOURNAL (the campaign's postgresql:// journal)")
    worker = _worker(url)
    try:
        return worker.send(first, last)
    except (psycopg.OperationalError, psycopg.InterfaceError, BatchNotSent) as exc:
        worker.reset()
        raise task.retry(exc=exc, countdown=min(30.0, 0.5 * 2 ** task.request.retries)) from None


class BatchNotSent(Exception):
    """Some rows of a batch were not sent (the pool stopped: a lost journal connection,
    a relay that refused connections): the task runs again later."""


_workers: dict[str, _Worker] = {}
_workers_lock = threading.Lock()


def _worker(url: str) -> _Worker:
    with _workers_lock:
        found = _workers.get(url)
        if found is None or found.pid != os.getpid():  # a forked child makes its own
            found = _workers[url] = _Worker(url)
        return found


class _Tracker:
    """The outcomes a task still waits for."""

    def __init__(self) -> None:
        self.left = 0
        self.done = asyncio.Event()
        self.counts: dict[str, int] = {}
        #: A commit of this task's outcomes failed: the task raises it.
        self.error: BaseException | None = None

    def add(self) -> None:
        self.left += 1
        self.done.clear()

    def settle(self, state: str, error: BaseException | None = None) -> None:
        """One outcome committed (or its commit failed with ``error``)."""
        self.counts[state] = self.counts.get(state, 0) + 1
        if error is not None and self.error is None:
            self.error = error
        self.left -= 1
        if self.left == 0:
            self.done.set()


class _Worker:
    """One worker process's sender: an event loop on a thread of its own, the journal
    (used on that thread only) and one pool whose ``send_many`` runs for as long as
    the process, fed batch after batch."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="smtpstream-worker", daemon=True).start()
        self.journal: PgJournal | None = None
        self.writer: JournalWriter | None = None
        self._feed: asyncio.Queue | None = None
        self._sending: asyncio.Future | None = None
        self._inflight: dict[int, tuple[Any, _Tracker]] = {}
        #: This process's id in claims, kept across new connections (its claims stay its own).
        self.worker_id: str | None = None
        #: A connection was lost: the next journal first recovers this worker's sending rows.
        self._recover_own = False

    def send(self, first: int, last: int) -> dict[str, int]:
        return asyncio.run_coroutine_threadsafe(self._batch(first, last), self.loop).result()

    def reset(self) -> None:
        """After a lost journal connection: let the pool finish what it has in flight,
        drop the journal and its writer; the next batch opens new connections and
        first makes this worker's rows left *sending* unknown."""
        asyncio.run_coroutine_threadsafe(self._reset(), self.loop).result()

    async def _reset(self) -> None:
        if self._sending is not None and not self._sending.done():
            self._feed.put_nowait(None)  # nothing new starts; what is in flight ends
            await asyncio.wait([self._sending], timeout=60)
        if self._sending is not None and self._sending.done() and not self._sending.cancelled():
            self._sending.exception()  # the lost connection's error, reported by the task already
        self._sending = None
        for closing in (self.writer, self.journal):
            if closing is not None:
                try:
                    closing.close()
                except Exception:  # the connection that was lost: nothing more to save there
                    pass
        self.writer = self.journal = None
        self._inflight.clear()
        self._recover_own = True

    def _setup(self) -> None:
        journal = self.journal = PgJournal(self.url, worker=self.worker_id,
                                           lease=float(os.environ.get("SMTPSTREAM_LEASE", 120)))
        self.worker_id = journal.worker
        if self._recover_own:
            journal.recover_own()  # sent by connections now gone: their outcomes are unknown
            self._recover_own = False
        definition = journal.get_json("definition")
        if definition is None:
            raise RuntimeError(f"{self.url}: no campaign in this journal")
        self.template = Template.from_definition(definition)
        self.settings = dict(journal.get_json("settings") or {})
        engine = journal.get_json("engine") or {}
        if engine.get("password_env"):
            self.settings["password"] = os.environ[engine["password_env"]]
        self.rate = float(engine.get("rate") or 0)
        self.schedule = RetrySchedule()
        self.resend_unknown = bool(engine.get("resend_unknown"))
        # The marks and outcomes, committed on a thread (each a round trip to the
        # database): the loop goes on sending meanwhile.
        self.writer = JournalWriter(journal, self.loop)

    def _pool_failed(self) -> None:
        """The pool ended with messages of a task still in its queue: raise why."""
        failure = None if self._sending is None or self._sending.cancelled() else self._sending.exception()
        raise BatchNotSent(f"the pool stopped: {failure!r}") from failure

    def _ensure_pool(self) -> None:
        """The pool's send_many; one that ended on an error fails the task (what it still
        held would never be sent), and the next task starts a new one."""
        if self._sending is not None and not self._sending.done():
            return
        if self._sending is not None and self._inflight:
            self._pool_failed()
        feed: asyncio.Queue = asyncio.Queue()
        self._feed = feed

        async def messages():
            while True:
                fields = await feed.get()
                if fields is None:
                    return
                yield fields

        pool = AsyncPool(**self.settings)
        self._sending = asyncio.ensure_future(
            pool.send_many(messages(), on_result=self._on_result, before_end=self.writer.mark))

    def _on_result(self, result: Any) -> None:
        item, tracker = self._inflight.pop(result.key)
        state, entries = entries_for(item, result, self.schedule, time.time())
        # A batch is done once its outcomes are committed.
        self.writer.record(item.seq, state, entries, lambda error: tracker.settle(state, error))

    async def _settled(self, tracker: _Tracker) -> None:
        """Until every outcome of the task is committed; raise what stopped the pool
        (a failed journal commit) if it ended first, leaving some never sent."""
        done = asyncio.ensure_future(tracker.done.wait())
        try:
            await asyncio.wait([done, self._sending], return_when=asyncio.FIRST_COMPLETED)
        finally:
            done.cancel()
        if tracker.left and self._sending.done():
            if tracker.error is not None:
                raise tracker.error
            self._pool_failed()

    async def _batch(self, first: int, last: int) -> dict[str, int]:
        if self.journal is None:
            self._setup()
        journal, template = self.journal, self.template
        tracker = _Tracker()
        page_size = _PAGE if not self.rate else max(1, min(_PAGE, int(self.rate * journal.lease / 4)))
        while True:
            journal.recover()  # claims of dead workers that had marked rows sending
            after = first - 1
            while True:
                page = journal.due(time.time(), after, self.resend_unknown, page_size, until=last)
                if not page:
                    break
                after = page[-1].seq
                for item in page:
                    if not item.recipients:
                        continue
                    try:
                        fields = item_fields(template, item)
                    except Exception as exc:  # a file gone since the check: this row fails
                        self.writer.record(item.seq, "failed", not_sent(item, exc))
                        tracker.counts["failed"] = tracker.counts.get("failed", 0) + 1
                        continue
                    if self.rate:
                        await asyncio.sleep(max(0.0, journal.rate_slot(self.rate) - time.time()))
                    self._ensure_pool()
                    self._inflight[item.seq] = (item, tracker)
                    tracker.add()
                    self._feed.put_nowait(fields)
                if tracker.left:
                    await self._settled(tracker)
            held = journal.db.execute(
                "SELECT min(lease_until) FROM messages WHERE seq BETWEEN ? AND ? AND state IN ('pending', 'sending')"
                " AND worker IS NOT NULL AND worker != ?", (first, last, journal.worker)).fetchone()[0]
            if held is None:
                break  # nothing of this batch left with another worker
            # Rows another worker claimed (a duplicate of this task, or a dead worker's
            # claim): wait until it sends them or its claim runs out, then look again.
            await asyncio.sleep(min(max(0.05, held - time.time() + 0.05), 1.0))
        self.writer.drain()  # every outcome committed before the claims are given back
        journal.release()
        if tracker.error is not None:
            raise tracker.error
        if tracker.counts.get("pending"):  # tried and not sent (the pool stopped): again later
            raise BatchNotSent(f"{tracker.counts['pending']} rows were not sent (the pool stopped)")
        return tracker.counts


def enqueue(journal: str, rows: Iterable[Any], template: Template, *, broker: str | None = None,
            batch_size: int = BATCH_SIZE, rate: float | None = None, password_env: str | None = None,
            resend_unknown: bool = False, **settings: Any) -> int:
    """Journal ``rows`` (checked as a local run checks them) and enqueue their batches;
    returns the number of tasks sent. ``settings`` are the pool's (server, port, TLS,
    connections per worker...), stored in the journal for the workers; ``rate`` is
    campaign-wide; a password only as ``password_env``, a variable's name."""
    if "password" in settings:
        raise TypeError("enqueue: the workers read the password from the environment: give password_env")
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    with Campaign(journal, **settings) as campaign:
        campaign.prepare(rows, template)
        db = campaign.journal
        db.put("engine", json.dumps({"rate": rate, "password_env": password_env, "resend_unknown": resend_unknown}))
        seqs = [s for (s,) in db.db.execute(
            "SELECT seq FROM messages WHERE state IN ('pending', 'deferred', 'sending')"
            + (" OR state = 'unknown'" if resend_unknown else "") + " ORDER BY seq")]
    if broker:
        app.conf.broker_url = broker
    batches = [seqs[i:i + batch_size] for i in range(0, len(seqs), batch_size)]
    for batch in batches:
        send_batch.apply_async((batch[0], batch[-1], journal))
    return len(batches)


def progress(journal: str, interval: float = 0.5, on_progress: Any = None, idle: float | None = None
             ) -> Mapping[str, int]:
    """Wait until no row is pending or being sent, calling ``on_progress(counts)``;
    with ``idle``, give up after that many seconds without a change. The counts."""
    reader = PgJournal(journal)
    try:
        last, changed = None, time.monotonic()
        while True:
            counts = reader.counts()
            if on_progress is not None:
                on_progress({k: v for k, v in counts.items() if k != "recipients"})
            if counts["pending"] == 0 and counts["sending"] == 0:
                return counts
            key = tuple(sorted((k, v) for k, v in counts.items() if k != "recipients"))
            if key != last:
                last, changed = key, time.monotonic()
            elif idle is not None and time.monotonic() - changed > idle:
                return counts
            time.sleep(interval)
    finally:
        reader.close()
