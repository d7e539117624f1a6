"""Bulk sending: a pool of connections, a shared rate limit, one result per message.

:class:`Pool` (threads, blocking sessions) and :class:`AsyncPool` (tasks,
:mod:`smtpstream.aio` sessions) take the connection fields of ``smtp.send``
(checked when the pool is built, as ``smtp.send`` checks them) plus:

* ``connections`` (N), ``max_messages`` (per connection, then QUIT and
  reconnect), ``idle_timeout`` (seconds; an older idle connection is closed
  and a fresh one opened), ``health_check_after`` (a NOOP before reusing a
  connection idle that long);
* ``rate`` (messages per second for the whole pool, or None) and the
  back-off: after a failure that concerns the server as a whole (see
  :func:`~smtpstream.smtp.bulk.backs_off`: never a 4xx to one recipient) the
  rate is multiplied by ``backoff_factor`` (0.5) for ``backoff_seconds`` (5),
  never below ``backoff_floor`` messages per second (1). Without a ``rate``,
  the rate measured over the last ``backoff_seconds`` is the one slowed;
* ``circuit_breaker`` (3): after that many consecutive failures of the same
  kind to open a connection (refused, timed out, TLS verification, AUTH
  refused...), no more connections are opened and every remaining message
  is reported with that error, ``attempted`` False. While no connection has
  succeeded since the last failure, connections are opened one at a time,
  so a broken setup costs a few attempts, not one per message. None: never;
* ``dkim``: a :class:`smtpstream.dkim.Signer` for every ``message()`` that
  does not name its own (the ``dkim`` message field);
* ``resend_unknown`` (True): a message lost after its end of data was
  written (RFC 1047: the server may have it) is sent once more on the next
  connection, Message-ID unchanged, and its result says
  ``possible_duplicate``; with False it is reported ``unknown`` instead.
  A message lost before its end of data is always sent once more.

``send_many(messages)`` takes an iterable (or, for AsyncPool, an async
iterable) of mappings of message fields (a ``key`` field comes back on the
result and is never sent) and returns one :class:`BulkResult` per message,
in order; it never raises for one message's failure. If the caller's
iterator or ``on_result`` raises, no new message starts, every outcome known
is reported, and that exception is raised (with ``.results``).

Graceful stop: on ``KeyboardInterrupt`` (:class:`Pool`) or cancellation
(:class:`AsyncPool`) no new message starts, a message whose end of data was
written waits for its reply, one still uploading is abandoned (the server
discards it), every outcome is reported (``unknown`` for a reply that never
came), then the exception propagates, carrying ``.results``.

Each connection sends its messages as one stream
(:meth:`~smtpstream.smtp.client.Client.send_stream`): with PIPELINING a
message's end of data goes out with the next message's envelope, so a
message costs one round trip. A message whose end of data is held back is
finished first whenever the next one is not at hand at once (the rate limit
would make it wait, an async iterable is not ready).
"""
from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Mapping

from .smtp import blocking
from .smtp.bulk import Batch, BulkResult, Job, backs_off, refuse_coroutine_function
from .smtp.client import LATER
from .smtp.errors import SMTPError, SMTPServerDisconnected
from .smtp.options import connection_settings, split_fields

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: typing takes milliseconds to import
    from typing import Any, Awaitable, Callable, Iterable

__all__ = ["Pool", "AsyncPool", "BulkResult", "RateLimit", "CircuitBreaker", "backs_off"]


def _number(name: str, value: Any, *, minimum: float = 0.0, inclusive: bool = False,
            maximum: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or value < minimum or (value == minimum and not inclusive) or value > maximum:
        bound = ">=" if inclusive else ">"
        raise ValueError(f"{name} must be a finite number {bound} {minimum}"
                         + (f" and <= {maximum}" if maximum != math.inf else "") + f", got {value!r}")
    return float(value)


def _count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value!r}")
    return value


class RateLimit:
    """Messages per second shared by every connection; slower for a while after a back-off.

    ``backoff()`` multiplies the rate in force (the configured ``rate``, or
    without one the rate measured over the last ``backoff_seconds``) by
    ``factor`` for ``backoff_seconds``, never below ``floor``; back-offs less
    than a second apart count once (four connections refused together are one
    signal, not four).
    """

    def __init__(self, rate: float | None, backoff_seconds: float = 5.0, factor: float = 0.5,
                 floor: float = 1.0) -> None:
        self.rate = None if rate is None else _number("rate", rate)
        self.backoff_seconds = _number("backoff_seconds", backoff_seconds)
        self.factor = _number("backoff_factor", factor, maximum=1.0)
        self.floor = _number("backoff_floor", floor)
        self._next = time.monotonic()
        self._slow_rate: float | None = None
        self._slow_until = 0.0
        self._last_backoff = -math.inf
        self._window = max(1.0, self.backoff_seconds)
        self._starts: deque[float] = deque()  # recent slot times, for the measured rate
        self._first = None
        self.backoffs = 0  # slow spells started (for tests and statistics)
        self._lock = threading.Lock()

    def _in_force(self, now: float) -> float | None:
        return self._slow_rate if now < self._slow_until else self.rate

    def delay(self) -> float:
        """Reserve the next slot; the seconds to wait for it."""
        with self._lock:
            now = time.monotonic()
            rate = self._in_force(now)
            at = now if rate is None else max(self._next, now)
            if rate is not None:
                self._next = at + 1.0 / rate
            starts = self._starts
            starts.append(at)
            while starts[0] < now - self._window:
                starts.popleft()
            if self._first is None:
                self._first = now
            return at - now

    def waiting(self) -> bool:
        """True when the next message would have to wait for its slot."""
        with self._lock:
            now = time.monotonic()
            return self._in_force(now) is not None and self._next > now

    def measured(self) -> float:
        """Messages started per second over the last ``backoff_seconds`` (at least one second)."""
        with self._lock:
            return self._measured(time.monotonic())

    def _measured(self, now: float) -> float:
        starts = self._starts
        while starts and starts[0] < now - self._window:
            starts.popleft()
        if not starts or self._first is None:
            return self.floor
        span = min(self._window, max(now - self._first, 0.1))
        return len(starts) / span

    def backoff(self) -> None:
        with self._lock:
            now = time.monotonic()
            if now - self._last_backoff >= 1.0:
                rate = self._in_force(now)
                base = rate if rate is not None else self._measured(now)
                self._slow_rate = max(self.floor, base * self.factor)
                self._last_backoff = now
                self.backoffs += 1
                self._next = now + 1.0 / self._slow_rate
            self._slow_until = now + self.backoff_seconds


#: CircuitBreaker.admit() answers.
GO, WAIT = "go", "wait"


class CircuitBreaker:
    """Stops a pool from opening connection after connection to a broken setup.

    ``threshold`` consecutive failures of the same kind (exception type and
    reply code: a refused or timed-out connect, a failed TLS verification, a
    535 to AUTH...) trip it: :meth:`admit` then returns the last such error
    for good. Until a connection succeeds (at the start, and again after any
    failure) only one connection attempt is admitted at a time.
    """

    def __init__(self, threshold: int | None) -> None:
        self.threshold = None if threshold is None else _count("circuit_breaker", threshold)
        self.tripped: SMTPError | None = None
        self.attempts = 0  # connection attempts admitted (for tests and statistics)
        self._kind: tuple[str, int | None] | None = None
        self._count = 0
        self._proven = False
        self._probing = False
        self._lock = threading.Lock()

    def admit(self) -> Any:
        """GO (open a connection now), WAIT (a probe is under way: ask again soon) or the error."""
        with self._lock:
            if self.tripped is not None:
                return self.tripped
            if self.threshold is not None and not self._proven:
                if self._probing:
                    return WAIT
                self._probing = True
            self.attempts += 1
            return GO

    def success(self) -> None:
        with self._lock:
            self._proven, self._probing, self._count, self._kind = True, False, 0, None

    def failure(self, error: SMTPError) -> None:
        with self._lock:
            self._proven = self._probing = False
            kind = (type(error).__name__, error.code)
            self._count = self._count + 1 if kind == self._kind else 1
            self._kind = kind
            if self.threshold is not None and self._count >= self.threshold:
                self.tripped = error


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
    def __init__(self, connections: int = 4, max_messages: int = 100, idle_timeout: float = 30.0,
                 rate: float | None = None, health_check_after: float = 1.0, *,
                 backoff_seconds: float = 5.0, backoff_factor: float = 0.5, backoff_floor: float = 1.0,
                 circuit_breaker: int | None = 3, resend_unknown: bool = True, dkim: Any = None,
                 **conn_fields: Any) -> None:
        self.connections = _count("connections", connections)
        self.max_messages = _count("max_messages", max_messages)
        self.idle_timeout = _number("idle_timeout", idle_timeout)
        self.health_check_after = _number("health_check_after", health_check_after, inclusive=True)
        if not isinstance(resend_unknown, bool):
            raise TypeError(f"resend_unknown must be True or False, got {resend_unknown!r}")
        self.resend_unknown = resend_unknown
        self.dkim = dkim
        self.limit = RateLimit(rate, backoff_seconds, backoff_factor, backoff_floor)
        self.breaker = CircuitBreaker(circuit_breaker)
        # The same checks as smtp.send, now rather than in every worker later.
        conn, msg = split_fields(None, conn_fields)
        if msg:
            raise TypeError(f"{type(self).__name__}: message fields {sorted(msg)} belong in each message")
        # One window for all the connections: a server that misbehaves with
        # messages in flight is sent one message at a time on every one of them.
        conn["window"] = self.window = connection_settings(conn).window
        self.conn_fields = conn
        self.connects = 0  # sessions opened (for tests and statistics)

    def _batch(self, on_result, before_end) -> Batch:
        return Batch(attempts=2, backoff=self.limit.backoff, on_result=on_result,
                     resend_unknown=self.resend_unknown, defaults={"dkim": self.dkim} if self.dkim else None,
                     before_end=before_end)

    def _stale(self, link: _Slot, now: float) -> bool:
        session = link.session
        return session.closed or link.sent >= self.max_messages or now - link.idle_since > self.idle_timeout

    def _done(self, batch: Batch, link: _Slot):
        def done(job: Job, result: Any, error: Any) -> None:
            if batch.finish(job, result, error):
                link.queue.append(job)  # lost with its connection: once more on the next one
        return done

    def _next_spec(self, batch: Batch, link: _Slot, job: Job | None):
        """What ``fetch`` gives for ``job``: ``(job, spec)``, None at the end, or False to skip it."""
        if job is None or batch.stopping:
            if job is not None:
                link.queue.appendleft(job)  # reported as not sent when the pool stops
            return None
        spec = batch.spec(job)
        if spec is None:
            return False
        link.sent += 1
        return job, spec

    def _opened(self, link: _Slot, session: Any) -> None:
        self.breaker.success()
        self.connects += 1
        link.sent = 0
        link.session = session

    def _open_failed(self, batch: Batch, link: _Slot, exc: SMTPError) -> None:
        self.breaker.failure(exc)
        if backs_off(exc):
            self.limit.backoff()
        job = link.queue.popleft()
        if batch.fail(job, exc):
            link.queue.appendleft(job)

    @staticmethod
    def _refuse_all(batch: Batch, link: _Slot, take: Callable[[], Job | None], error: SMTPError) -> None:
        """The breaker is open: every message left is reported with its error, not attempted."""
        while link.queue:
            batch.abandon(link.queue.popleft(), error)
        while not batch.stopping and (job := take()) is not None:
            batch.abandon(job, error)

    @staticmethod
    def _report_queued(batch: Batch, links: list[_Slot]) -> None:
        """After the workers: the messages still queued (the pool stopped) are reported not sent."""
        why = batch.failure or SMTPServerDisconnected("the pool stopped")
        for link in links:
            while link.queue:
                batch.abandon(link.queue.popleft(), batch.interrupted(why))


def _block_sigint() -> Any:
    import signal  # here: signal takes milliseconds to import (its enums)

    if not hasattr(signal, "pthread_sigmask"):  # pragma: no cover - not POSIX
        return None
    return signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})


def _restore_sigint(mask: Any) -> None:
    if mask is not None:
        import signal

        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


class Pool(_Settings):
    """N blocking sessions on threads (see the module doc)."""

    def send_many(self, messages: Iterable[Mapping[str, Any]],
                  on_result: Callable[[BulkResult], Any] | None = None, *,
                  before_end: Callable[[Any], None] | None = None) -> list[BulkResult] | None:
        """One :class:`BulkResult` per message, in order; with ``on_result`` each goes
        to it as soon as it is final (from the pool's threads, one at a time) and
        None is returned, so that no memory is kept per message.

        ``before_end(key)`` is called with a message's ``key`` field just before
        its end of data is written (from the pool's threads; a resent message
        calls it again): what a journal records there is all a crash can leave
        unknown. If it raises, that end of data is not written, the pool stops
        as for a failing ``on_result``, and the exception is raised."""
        refuse_coroutine_function(on_result)
        batch = self._batch(on_result, before_end)
        take = batch.taker(messages)
        links = [_Slot() for _ in range(self.connections)]
        # Workers count themselves out on this condition rather than being joined:
        # Thread.join() interrupted by Ctrl-C may mark a running thread stopped
        # (CPython 3.11), and the wait below must outlast that interrupt.
        running = [0]
        finished = threading.Condition()

        def work(link: _Slot) -> None:
            try:
                self._work(batch, take, link)
            finally:
                with finished:
                    running[0] -= 1
                    finished.notify_all()

        def wait() -> None:
            with finished:
                while running[0]:
                    finished.wait()

        try:
            # Ctrl-C is held back while the workers start (and they inherit the
            # mask, so it always reaches this thread): every started worker is counted.
            masked = _block_sigint()
            try:
                for i, link in enumerate(links):
                    with finished:
                        running[0] += 1
                    threading.Thread(target=work, args=(link,), daemon=True, name=f"smtpstream-pool-{i}").start()
            finally:
                _restore_sigint(masked)
            wait()
        except BaseException as exc:  # KeyboardInterrupt: stop gracefully, then let it go on
            batch.stop(exc)
            for link in links:
                if link.session is not None:
                    link.session.interrupt()
            try:
                wait()
            except BaseException as again:  # interrupted again: stop waiting for replies
                batch.give_up(again)
                raise
        self._report_queued(batch, links)
        return batch.conclude()

    def retry(self, results: Iterable[BulkResult]) -> list[BulkResult]:
        """Send again only the deferred recipients (sources must be re-iterable, e.g. lists)."""
        again = _retry_fields(results)
        out = self.send_many(f for _, f in again)
        assert out is not None
        for (index, _), r in zip(again, out):
            r.index = index
        return out

    def _work(self, batch: Batch, take: Callable[[], Job | None], link: _Slot) -> None:
        fetch = self._fetcher(batch, link, take)
        done = self._done(batch, link)
        try:
            while not batch.stopping:
                if not link.queue:
                    job = take()
                    if job is None:
                        return
                    link.queue.append(job)
                session = self._reusable(link)
                if session is None:
                    admitted = self.breaker.admit()
                    if admitted is WAIT:
                        time.sleep(0.005)  # another slot is probing the server
                        continue
                    if admitted is not GO:
                        self._refuse_all(batch, link, take, admitted)
                        return
                    try:
                        session = blocking.Session(**self.conn_fields)
                    except SMTPError as exc:
                        self._open_failed(batch, link, exc)
                        continue
                    self._opened(link, session)
                session.send_stream(fetch, done, batch.ending)
                link.idle_since = time.monotonic()
        except BaseException as exc:  # a bug, not one message's failure: stop the pool, report, raise
            batch.stop(exc)
        finally:
            if link.session is not None:
                link.session.close()

    def _fetcher(self, batch: Batch, link: _Slot, take):
        def fetch(now: bool):
            while link.sent < self.max_messages:
                if now and self.limit.waiting():
                    return LATER  # finish the message in flight before sleeping
                item = self._next_spec(batch, link, link.queue.popleft() if link.queue else take())
                if item is False:
                    continue
                if item is not None:
                    wait = self.limit.delay()
                    if wait > 0:
                        time.sleep(wait)
                return item
            return None
        return fetch

    def _reusable(self, link: _Slot):
        """The slot's session when it can carry more (a NOOP after an idle spell), else None."""
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
        return link.session


class AsyncPool(_Settings):
    """N :mod:`smtpstream.aio` sessions on tasks (see the module doc)."""

    async def send_many(self, messages: Any, on_result: Callable[[BulkResult], Any] | None = None, *,
                        before_end: Callable[[Any], Awaitable[Any] | None] | None = None) -> list[BulkResult] | None:
        """The twin of :meth:`Pool.send_many`; ``messages`` may be an async iterable and
        ``on_result`` a coroutine function (awaited in order); ``before_end`` is a
        plain function, called on the event loop, that may return an awaitable:
        the end of data waits for it (a journal committing on a thread)."""
        import asyncio  # here, not at the top: the threaded Pool starts faster without it

        from . import aio

        results = aio.ResultHandler(on_result)
        batch = self._batch(results.callback, before_end)
        results.batch = batch
        if hasattr(messages, "__aiter__"):
            pull = aio.job_taker(batch, messages)
            lock = asyncio.Lock()  # an async generator cannot be advanced by two tasks at once

            async def take() -> Job | None:
                async with lock:
                    return await pull()
        else:
            take_now = batch.taker(messages)
            take = None

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

        links = [_Slot() for _ in range(self.connections)]
        tasks = [asyncio.ensure_future(self._work(aio, batch, next_job, link)) for link in links]
        try:
            await asyncio.wait(tasks)
        except asyncio.CancelledError as exc:  # stop gracefully, then let the cancellation go on
            batch.stop(exc)
            for link in links:
                if link.session is not None:
                    link.session.interrupt()
            try:
                await asyncio.wait(tasks)
            except asyncio.CancelledError as again:  # cancelled again: stop waiting for replies
                batch.give_up(again)
                for task in tasks:
                    task.cancel()
                await results.close()
                raise
        for link in links:
            if link.taking is not None:  # a take started but never used: its message is not lost
                job = await link.taking
                if job is not None:
                    link.queue.append(job)
        self._report_queued(batch, links)
        await results.close()
        return batch.conclude()

    async def retry(self, results: Iterable[BulkResult]) -> list[BulkResult]:
        again = _retry_fields(results)
        out = await self.send_many([f for _, f in again])
        assert out is not None
        for (index, _), r in zip(again, out):
            r.index = index
        return out

    async def _work(self, aio: Any, batch: Batch, next_job, link: _Slot) -> None:
        import asyncio

        done = self._done(batch, link)

        async def fetch(now: bool):
            while link.sent < self.max_messages:
                if now and self.limit.waiting():
                    return LATER
                job = link.queue.popleft() if link.queue else await next_job(link, now)
                if job is LATER:
                    return job
                item = self._next_spec(batch, link, job)
                if item is False:
                    continue
                if item is not None:
                    wait = self.limit.delay()
                    if wait > 0:
                        await asyncio.sleep(wait)
                return item
            return None

        try:
            while not batch.stopping:
                if not link.queue:
                    job = await next_job(link, False)
                    if job is None:
                        return
                    link.queue.append(job)
                session = await self._reusable(link)
                if session is None:
                    admitted = self.breaker.admit()
                    if admitted is WAIT:
                        await asyncio.sleep(0.005)  # another slot is probing the server
                        continue
                    if admitted is not GO:
                        while link.queue:
                            batch.abandon(link.queue.popleft(), admitted)
                        while not batch.stopping and (job := await next_job(link, False)) is not None:
                            batch.abandon(job, admitted)
                        return
                    try:
                        session = await aio.Session(**self.conn_fields)
                    except SMTPError as exc:
                        self._open_failed(batch, link, exc)
                        continue
                    self._opened(link, session)
                await session.send_stream(fetch, done, batch.ending)
                link.idle_since = time.monotonic()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # a bug, not one message's failure: stop the pool, report, raise
            batch.stop(exc)
        finally:
            if link.session is not None:
                await link.session.close()

    async def _reusable(self, link: _Slot):
        """The twin of :meth:`Pool._reusable`."""
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
        return link.session
