"""Bulk sending: a pool of connections, a shared rate limit, one result per message.

:class:`Pool` (threads, blocking sessions) and :class:`AsyncPool` (tasks,
:mod:`smtpstream.aio` sessions) take the connection fields of ``smtp.send``
plus ``connections`` (N), ``max_messages`` (per connection, then QUIT and
reconnect), ``idle_timeout`` (seconds; an older idle connection is closed
and a fresh one opened) and ``rate`` (messages per second for the whole
pool, halved for a while after a 421/451/454).

``send_many(messages)`` takes an iterable (or, for AsyncPool, an async
iterable) of mappings of message fields and returns one
:class:`BulkResult` per message, in order; it never raises for one
message's failure. A dropped connection or a 421 closes the session, and
the message is retried once on a fresh one. ``retry(results, messages)``
sends again only the recipients refused temporarily (and messages that
failed as a whole with a temporary error).

A health check (NOOP) runs before reusing a connection idle for more than
``health_check_after`` seconds.

Each connection sends its messages as one stream
(:meth:`~smtpstream.smtp.client.Client.send_stream`): with PIPELINING a
message's end of data goes out with the next message's envelope, so a
message costs one round trip. A message whose end of data is held back is
finished first whenever the next one is not at hand at once (the rate limit
would make it wait, an async iterable is not ready).
"""
from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any, Iterable

from .smtp import blocking
from .smtp.bulk import BACKOFF_CODES, Batch, BulkResult, Job
from .smtp.client import LATER
from .smtp.errors import SMTPError, SMTPServerDisconnected

__all__ = ["Pool", "AsyncPool", "BulkResult", "RateLimit", "BACKOFF_CODES"]


class RateLimit:
    """Messages per second shared by every connection; slower for a while after a back-off."""

    def __init__(self, rate: float | None, backoff_seconds: float = 5.0) -> None:
        if rate is not None and rate <= 0:
            raise ValueError("rate must be positive (messages per second) or None")
        self.rate = rate
        self.backoff_seconds = backoff_seconds
        self._next = time.monotonic()
        self._slow_until = 0.0
        self._lock = threading.Lock()

    def delay(self) -> float:
        """Reserve the next slot; the seconds to wait for it."""
        with self._lock:
            now = time.monotonic()
            slow = now < self._slow_until
            if self.rate is None and not slow:
                return 0.0
            interval = (1.0 / self.rate if self.rate else 0.05) * (2 if slow else 1)
            at = max(self._next, now)
            self._next = at + interval
            return at - now

    def waiting(self) -> bool:
        """True when the next message would have to wait for its slot."""
        with self._lock:
            now = time.monotonic()
            if self.rate is None and now >= self._slow_until:
                return False
            return self._next > now

    def backoff(self) -> None:
        with self._lock:
            self._slow_until = time.monotonic() + self.backoff_seconds


def _retry_fields(results: Iterable[BulkResult]) -> list[tuple[int, dict]]:
    out = []
    for r in results:
        deferred = r.deferred
        if deferred:
            out.append((r.index, dict(r.fields, rcpt=list(deferred))))
    return out


class _Slot:
    """One connection slot of a pool: its session and the jobs waiting for it."""

    def __init__(self) -> None:
        self.session: Any = None
        self.sent = 0  # messages handed to the current session
        self.idle_since = 0.0
        self.queue: deque[Job] = deque()  # taken or to be retried, before new ones
        self.taking: Any = None  # AsyncPool: a pending take from an async iterable


class _Settings:
    def __init__(self, connections=4, max_messages=100, idle_timeout=30.0, rate=None,
                 health_check_after=1.0, **conn_fields: Any) -> None:
        if connections < 1 or max_messages < 1:
            raise ValueError("connections and max_messages must be >= 1")
        self.connections = connections
        self.max_messages = max_messages
        self.idle_timeout = idle_timeout
        self.health_check_after = health_check_after
        self.limit = RateLimit(rate)
        self.conn_fields = conn_fields
        self.connects = 0  # sessions opened (for tests and statistics)

    def _batch(self, on_result) -> Batch:
        return Batch(attempts=2, backoff=self.limit.backoff, on_result=on_result)

    def _stale(self, link: _Slot, now: float) -> bool:
        session = link.session
        return session.closed or link.sent >= self.max_messages or now - link.idle_since > self.idle_timeout

    def _done(self, batch: Batch, link: _Slot):
        def done(job: Job, result: Any, error: Any) -> None:
            if batch.finish(job, result, error):
                link.queue.append(job)  # lost with its connection: once more on the next one
        return done


class Pool(_Settings):
    """N blocking sessions on threads (see the module doc)."""

    def send_many(self, messages: Iterable[Mapping[str, Any]], on_result=None) -> list[BulkResult] | None:
        """One :class:`BulkResult` per message, in order; with ``on_result`` each goes
        to it as soon as it is final (from the pool's threads, one at a time) and
        None is returned, so that no memory is kept per message."""
        items = iter(enumerate(messages))
        lock = threading.Lock()
        batch = self._batch(on_result)

        def take() -> Job | None:
            with lock:
                nxt = next(items, None)
            return None if nxt is None else Job(*nxt)

        threads = [threading.Thread(target=self._work, args=(batch, take), daemon=True)
                   for _ in range(self.connections)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return batch.ordered()

    def retry(self, results: Iterable[BulkResult]) -> list[BulkResult]:
        """Send again only the deferred recipients (sources must be re-iterable, e.g. lists)."""
        again = _retry_fields(results)
        out = self.send_many(f for _, f in again)
        for (index, _), r in zip(again, out):
            r.index = index
        return out

    def _work(self, batch: Batch, take) -> None:
        link = _Slot()
        fetch = self._fetcher(batch, link, take)
        done = self._done(batch, link)
        try:
            while True:
                if not link.queue:
                    job = take()
                    if job is None:
                        return
                    link.queue.append(job)
                try:
                    session = self._session(link)
                except SMTPError as exc:
                    job = link.queue.popleft()
                    if batch.fail(job, exc):
                        link.queue.appendleft(job)
                    continue
                session.send_stream(fetch, done)
                link.idle_since = time.monotonic()
        finally:
            if link.session is not None:
                link.session.close()

    def _fetcher(self, batch: Batch, link: _Slot, take):
        def fetch(now: bool):
            while link.sent < self.max_messages:
                if now and self.limit.waiting():
                    return LATER  # finish the message in flight before sleeping
                job = link.queue.popleft() if link.queue else take()
                if job is None:
                    return None
                spec = batch.spec(job)
                if spec is None:
                    continue
                wait = self.limit.delay()
                if wait > 0:
                    time.sleep(wait)
                link.sent += 1
                return job, spec
            return None
        return fetch

    def _session(self, link: _Slot):
        now = time.monotonic()
        if link.session is not None and self._stale(link, now):
            link.session.close()
            link.session = None
        if link.session is not None and now - link.idle_since > self.health_check_after:
            try:
                if not link.session.noop().positive:
                    raise SMTPServerDisconnected("NOOP refused")
            except SMTPError:
                link.session.close()
                link.session = None
        if link.session is None:
            self.connects += 1
            link.sent = 0
            link.session = blocking.Session(**self.conn_fields)
        return link.session


class AsyncPool(_Settings):
    """N :mod:`smtpstream.aio` sessions on tasks (see the module doc)."""

    async def send_many(self, messages: Any, on_result=None) -> list[BulkResult] | None:
        """The twin of :meth:`Pool.send_many`; ``messages`` may be an async iterable."""
        import asyncio  # here, not at the top: the threaded Pool starts faster without it

        from . import aio

        counter = iter(range(1 << 62))
        batch = self._batch(on_result)
        if hasattr(messages, "__aiter__"):
            source = messages.__aiter__()
            lock = asyncio.Lock()

            async def take() -> Job | None:
                async with lock:
                    try:
                        fields = await source.__anext__()
                    except StopAsyncIteration:
                        return None
                    return Job(next(counter), fields)
        else:
            plain = iter(messages)
            take = None

            def take_now() -> Job | None:
                fields = next(plain, None)
                return None if fields is None else Job(next(counter), fields)

        async def next_job(link: _Slot, now: bool):
            """A new job; LATER when ``now`` and the async iterable is not ready at once."""
            if take is None:
                return take_now()
            if link.taking is None:
                link.taking = asyncio.ensure_future(take())
            if now and not link.taking.done():
                await asyncio.sleep(0)
                if not link.taking.done():
                    return LATER
            taking, link.taking = link.taking, None
            return await taking

        await asyncio.gather(*(self._work(aio, batch, next_job) for _ in range(self.connections)))
        return batch.ordered()

    async def retry(self, results: Iterable[BulkResult]) -> list[BulkResult]:
        again = _retry_fields(results)
        out = await self.send_many([f for _, f in again])
        for (index, _), r in zip(again, out):
            r.index = index
        return out

    async def _work(self, aio: Any, batch: Batch, next_job) -> None:
        import asyncio

        link = _Slot()
        done = self._done(batch, link)

        async def fetch(now: bool):
            while link.sent < self.max_messages:
                if now and self.limit.waiting():
                    return LATER
                job = link.queue.popleft() if link.queue else await next_job(link, now)
                if job is None or job is LATER:
                    return job
                spec = batch.spec(job)
                if spec is None:
                    continue
                wait = self.limit.delay()
                if wait > 0:
                    await asyncio.sleep(wait)
                link.sent += 1
                return job, spec
            return None

        try:
            while True:
                if not link.queue:
                    job = await next_job(link, False)
                    if job is None:
                        return
                    link.queue.append(job)
                try:
                    session = await self._session(aio, link)
                except SMTPError as exc:
                    job = link.queue.popleft()
                    if batch.fail(job, exc):
                        link.queue.appendleft(job)
                    continue
                await session.send_stream(fetch, done)
                link.idle_since = time.monotonic()
        finally:
            if link.session is not None:
                await link.session.close()

    async def _session(self, aio: Any, link: _Slot):
        now = time.monotonic()
        if link.session is not None and self._stale(link, now):
            await link.session.close()
            link.session = None
        if link.session is not None and now - link.idle_since > self.health_check_after:
            try:
                if not (await link.session.noop()).positive:
                    raise SMTPServerDisconnected("NOOP refused")
            except SMTPError:
                await link.session.close()
                link.session = None
        if link.session is None:
            self.connects += 1
            link.sent = 0
            link.session = await aio.Session(**self.conn_fields)
        return link.session
