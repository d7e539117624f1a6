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
"""
from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from .message import MessageSource
from .smtp import blocking
from .smtp.errors import SMTPError, SMTPRecipientsRefused, SMTPServerDisconnected
from .smtp.options import SendResult
from .smtp.reply import Reply

__all__ = ["Pool", "AsyncPool", "BulkResult", "RateLimit"]

#: Reply codes that make the pool slow down (RFC 5321 4.2.2/4.2.3).
BACKOFF_CODES = frozenset({421, 451, 454})


@dataclass
class BulkResult:
    """The outcome of one message: ``result`` when delivered to someone, else ``error``."""

    index: int
    fields: Mapping[str, Any] = field(repr=False)
    result: SendResult | None = None
    error: SMTPError | None = None

    @property
    def ok(self) -> bool:
        return self.result is not None

    @property
    def accepted(self) -> tuple[str, ...]:
        return self.result.accepted if self.result is not None else ()

    @property
    def refused(self) -> dict[str, Reply]:
        """Recipients refused, with their replies (temporary and permanent)."""
        if self.result is not None:
            return self.result.refused
        if isinstance(self.error, SMTPRecipientsRefused):
            return dict(self.error.refused)
        return {}

    @property
    def deferred(self) -> tuple[str, ...]:
        """Recipients worth retrying: refused with a 4xx, or all of them after a temporary error."""
        temp = tuple(r for r, reply in self.refused.items() if 400 <= reply.code < 500)
        if temp or self.result is not None or isinstance(self.error, SMTPRecipientsRefused):
            return temp
        if self.error is not None and getattr(self.error, "temporary", False):
            rcpt = self.fields.get("rcpt") or getattr(self.fields.get("source"), "recipients", ()) or ()
            return (rcpt,) if isinstance(rcpt, str) else tuple(rcpt)
        return ()


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

    def backoff(self) -> None:
        with self._lock:
            self._slow_until = time.monotonic() + self.backoff_seconds


def _backs_off(error: SMTPError) -> bool:
    return getattr(error, "code", None) in BACKOFF_CODES


def _resendable(fields: Mapping[str, Any]) -> bool:
    """Can this message's source give the whole message again?

    Lists and bytes can; a ``message()`` source can until it is first read;
    any other iterator or callable cannot, so a message is never sent again
    truncated after its first attempt consumed part of it.
    """
    source = fields.get("source")
    if isinstance(source, MessageSource):
        return not source.started
    return isinstance(source, (list, tuple, bytes, bytearray, memoryview))


def _started(fields: Mapping[str, Any]) -> bool:
    source = fields.get("source")
    return isinstance(source, MessageSource) and source.started


_CONSUMED = "the message source was already read; build the message again to resend it"


def _retry_fields(results: Iterable[BulkResult]) -> list[tuple[int, dict]]:
    out = []
    for r in results:
        deferred = r.deferred
        if deferred:
            out.append((r.index, dict(r.fields, rcpt=list(deferred))))
    return out


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


class Pool(_Settings):
    """N blocking sessions on threads (see the module doc)."""

    def send_many(self, messages: Iterable[Mapping[str, Any]]) -> list[BulkResult]:
        items = iter(enumerate(messages))
        lock = threading.Lock()
        results: dict[int, BulkResult] = {}

        def worker() -> None:
            state = {"session": None, "sent": 0, "idle_since": 0.0}
            try:
                while True:
                    with lock:
                        nxt = next(items, None)
                    if nxt is None:
                        return
                    index, fields = nxt
                    results[index] = self._one(state, index, fields)
            finally:
                if state["session"] is not None:
                    state["session"].close()

        threads = [threading.Thread(target=worker, daemon=True) for _ in range(self.connections)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return [results[i] for i in sorted(results)]

    def retry(self, results: Iterable[BulkResult]) -> list[BulkResult]:
        """Send again only the deferred recipients (sources must be re-iterable, e.g. lists)."""
        again = _retry_fields(results)
        out = self.send_many(f for _, f in again)
        for (index, _), r in zip(again, out):
            r.index = index
        return out

    def _session(self, state: dict):
        session = state["session"]
        now = time.monotonic()
        if session is not None and (
            session.closed or state["sent"] >= self.max_messages or now - state["idle_since"] > self.idle_timeout
        ):
            session.close()
            session = state["session"] = None
        if session is not None and now - state["idle_since"] > self.health_check_after:
            try:
                if not session.noop().positive:
                    raise SMTPServerDisconnected("NOOP refused")
            except SMTPError:
                session.close()
                session = state["session"] = None
        if session is None:
            self.connects += 1
            session = state["session"] = blocking.Session(**self.conn_fields)
            state["sent"] = 0
        return session

    def _one(self, state: dict, index: int, fields: Mapping[str, Any]) -> BulkResult:
        error: SMTPError | None = None
        for attempt in range(2):
            if (attempt or _started(fields)) and not _resendable(fields):
                return BulkResult(index, fields, error=error or SMTPError(_CONSUMED))
            wait = self.limit.delay()
            if wait > 0:
                time.sleep(wait)
            try:
                session = self._session(state)
                state["sent"] += 1
                result = session.send(dict(fields))
                state["idle_since"] = time.monotonic()
                return BulkResult(index, fields, result=result)
            except SMTPError as exc:
                error = exc
                state["idle_since"] = time.monotonic()
                if _backs_off(exc):
                    self.limit.backoff()
                if not isinstance(exc, SMTPServerDisconnected):
                    break
                if state["session"] is not None:
                    state["session"].close()
                    state["session"] = None
            except Exception as exc:  # a bad message's fields: its own result, not everyone's
                return BulkResult(index, fields, error=SMTPError(f"{type(exc).__name__}: {exc}"))
        return BulkResult(index, fields, error=error)


class AsyncPool(_Settings):
    """N :mod:`smtpstream.aio` sessions on tasks (see the module doc)."""

    async def send_many(self, messages: Any) -> list[BulkResult]:
        from . import aio

        if hasattr(messages, "__aiter__"):
            source = messages.__aiter__()

            async def take():
                try:
                    return await source.__anext__()
                except StopAsyncIteration:
                    return None
        else:
            plain = iter(messages)

            async def take():
                return next(plain, None)

        counter = iter(range(1 << 62))
        results: dict[int, BulkResult] = {}
        lock = asyncio.Lock()

        async def worker() -> None:
            state = {"session": None, "sent": 0, "idle_since": 0.0}
            try:
                while True:
                    async with lock:
                        fields = await take()
                        index = next(counter)
                    if fields is None:
                        return
                    results[index] = await self._one(aio, state, index, fields)
            finally:
                if state["session"] is not None:
                    await state["session"].close()

        await asyncio.gather(*(worker() for _ in range(self.connections)))
        return [results[i] for i in sorted(results)]

    async def retry(self, results: Iterable[BulkResult]) -> list[BulkResult]:
        again = _retry_fields(results)
        out = await self.send_many([f for _, f in again])
        for (index, _), r in zip(again, out):
            r.index = index
        return out

    async def _session(self, aio: Any, state: dict):
        session = state["session"]
        now = time.monotonic()
        if session is not None and (
            session.closed or state["sent"] >= self.max_messages or now - state["idle_since"] > self.idle_timeout
        ):
            await session.close()
            session = state["session"] = None
        if session is not None and now - state["idle_since"] > self.health_check_after:
            try:
                if not (await session.noop()).positive:
                    raise SMTPServerDisconnected("NOOP refused")
            except SMTPError:
                await session.close()
                session = state["session"] = None
        if session is None:
            self.connects += 1
            session = state["session"] = await aio.Session(**self.conn_fields)
            state["sent"] = 0
        return session

    async def _one(self, aio: Any, state: dict, index: int, fields: Mapping[str, Any]) -> BulkResult:
        error: SMTPError | None = None
        for attempt in range(2):
            if (attempt or _started(fields)) and not _resendable(fields):
                return BulkResult(index, fields, error=error or SMTPError(_CONSUMED))
            wait = self.limit.delay()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                session = await self._session(aio, state)
                state["sent"] += 1
                result = await session.send(dict(fields))
                state["idle_since"] = time.monotonic()
                return BulkResult(index, fields, result=result)
            except SMTPError as exc:
                error = exc
                state["idle_since"] = time.monotonic()
                if _backs_off(exc):
                    self.limit.backoff()
                if not isinstance(exc, SMTPServerDisconnected):
                    break
                if state["session"] is not None:
                    await state["session"].close()
                    state["session"] = None
            except Exception as exc:
                return BulkResult(index, fields, error=SMTPError(f"{type(exc).__name__}: {exc}"))
        return BulkResult(index, fields, error=error)
