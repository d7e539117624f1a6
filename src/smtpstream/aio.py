"""The asyncio transport: ``await send(...)`` and ``async with Session(...)``.

The twin of :mod:`smtpstream.smtp.blocking`: all SMTP logic is in
:class:`~smtpstream.smtp.client.Client`; this module connects, performs the
I/O actions the dialogue yields (Write / Read / Poll / UpgradeTLS) with
asyncio, and turns socket, ssl and timeout errors into
:mod:`~smtpstream.smtp.errors` exceptions.

Message sources may also be async iterables: each chunk is awaited as the
body is sent (the dialogue yields a Fetch action for it), so nothing is
gathered in memory.
"""
from __future__ import annotations

import asyncio
import inspect
import socket
import ssl
from collections.abc import Mapping
from typing import Any

from .smtp._ioerrors import translate
from .smtp.client import Client, Fetch, Poll, Read, UpgradeTLS, Write
from .smtp.bulk import Batch, BulkResult, Job
from .smtp.errors import SMTPError, SMTPServerDisconnected
from .smtp.options import SendResult, connection_settings, created_socket, message_spec, split_fields

__all__ = ["send", "Session"]

#: Write buffer size above which a write waits for the socket to drain.
HIGH_WATER = 1 << 18
#: A write's buffers smaller than this in total are joined into one.
JOIN_LIMIT = 1 << 18
#: Bytes received and not yet taken by the dialogue above which reading pauses
#: (a server flooding us while we upload must not grow the buffer).
READ_HIGH_WATER = 1 << 16


async def send(mailt: Mapping[str, Any] | None = None, /, **fields: Any) -> SendResult:
    """Send one message: the fields and result of :func:`smtpstream.smtp.send`."""
    conn_fields, msg_fields = split_fields(mailt, fields)
    spec = message_spec(msg_fields)  # refuse bad addresses before connecting
    async with Session(**conn_fields) as session:
        return await session._send_spec(spec)


def _puller(messages: Any):
    """A coroutine function giving the next item of an iterable or async iterable, None at the end."""
    if hasattr(messages, "__aiter__"):
        iterator = messages.__aiter__()

        async def pull():
            try:
                return await iterator.__anext__()
            except StopAsyncIteration:
                return None
    else:
        plain = iter(messages)

        async def pull():
            return next(plain, None)
    return pull


class _Link(asyncio.Protocol):
    """Bytes received, end of stream and write flow control for one connection."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.eof = False
        self.error: BaseException | None = None
        self.waiter: asyncio.Future | None = None
        self.drained: asyncio.Future | None = None
        self.paused = False
        self.reading_paused = False
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        try:
            transport.set_write_buffer_limits(high=HIGH_WATER)
        except (AttributeError, NotImplementedError):  # pragma: no cover
            pass

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > READ_HIGH_WATER and not self.reading_paused:
            self.reading_paused = True
            self.transport.pause_reading()  # resumed when the dialogue takes the bytes
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False

    def connection_lost(self, exc: BaseException | None) -> None:
        self.eof = True
        self.error = exc
        self._wake()
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)

    def take(self) -> bytes:
        data = bytes(self.buffer)
        self.buffer.clear()
        if self.reading_paused:
            self.reading_paused = False
            if not self.transport.is_closing():
                self.transport.resume_reading()
        return data

    async def read(self, timeout: float) -> bytes:
        while not self.buffer and not self.eof:
            await self._wait("waiter", timeout)
        if self.buffer:
            return self.take()
        if self.error is not None and not isinstance(self.error, ssl.SSLError):
            raise self.error if isinstance(self.error, OSError) else ConnectionResetError(str(self.error))
        return b""

    async def _wait(self, slot: str, timeout: float) -> None:
        """Wait for the future in ``slot`` to be woken, or raise TimeoutError.

        A timer on the future rather than ``asyncio.wait_for``, which costs a
        task per call: a bulk send reads once per message.
        """
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        setattr(self, slot, future)
        timer = loop.call_later(timeout, _expire, future)
        try:
            await future
        finally:
            timer.cancel()
            setattr(self, slot, None)

    async def drain(self, timeout: float) -> None:
        while self.paused and not self.eof:
            await self._wait("drained", timeout)
        if self.eof and self.transport is not None and self.transport.is_closing():
            raise ConnectionResetError("the connection was closed while writing")


def _expire(future: asyncio.Future) -> None:
    if not future.done():
        future.set_exception(TimeoutError("timed out"))


class Session:
    """One connection for many messages::

        async with aio.Session(server="mx.example") as s:
            for m in messages:
                await s.send(source=m)     # RSET after a failed one; QUIT at the end

    Takes the connection fields of :func:`send`; :meth:`send` takes the message
    fields. The connection opens on ``await session`` / ``async with``.
    """

    def __init__(self, mailt: Mapping[str, Any] | None = None, /, **fields: Any) -> None:
        conn_fields, msg_fields = split_fields(mailt, fields)
        if msg_fields:
            raise TypeError(f"Session: message fields {sorted(msg_fields)} belong in Session.send()")
        self.settings = connection_settings(conn_fields)
        self.client = Client(self.settings)
        self.client.awaits = True
        self._transport: Any = None
        self._link: _Link | None = None
        self._opened = False
        self._deadline = 0.0  # when the reply being read must be complete (see Read.more)

    # ---- public

    async def open(self) -> Session:
        if not self._opened:
            self._opened = True
            await self._connect()
        return self

    connect = open

    def __await__(self):
        return self.open().__await__()

    async def send(self, mailt: Mapping[str, Any] | None = None, /, **fields: Any) -> SendResult:
        """Send one message over this connection (message fields of :func:`send`)."""
        conn_fields, msg_fields = split_fields(mailt, fields)
        if conn_fields:
            raise TypeError(f"Session.send: connection fields {sorted(conn_fields)} belong in Session()")
        return await self._send_spec(message_spec(msg_fields))

    async def send_many(self, messages: Any, on_result=None) -> list[BulkResult] | None:
        """Many messages over this connection (an iterable or async iterable of field
        mappings); one :class:`~smtpstream.smtp.bulk.BulkResult` each, in order
        (or each to ``on_result`` as it is known, None returned).
        The twin of :meth:`smtpstream.smtp.Session.send_many`: pipelined across
        messages, never raising for one message.
        """
        batch = Batch(on_result=on_result)
        next_fields = _puller(messages)
        counter = iter(range(1 << 62))

        async def next_job() -> Job | None:
            fields = await next_fields()
            if fields is None:
                return None
            return Job(next(counter), fields)

        async def fetch(now: bool):
            while (job := await next_job()) is not None:
                spec = batch.spec(job)
                if spec is not None:
                    return job, spec
            return None

        try:
            await self.send_stream(fetch, batch.finish)
        except SMTPError as exc:
            lost = exc
        else:
            lost = SMTPServerDisconnected("the connection was lost before this message was sent")
        while (job := await next_job()) is not None:
            batch.fail(job, lost)
        return batch.ordered()

    async def send_stream(self, fetch, done) -> None:
        """Low level: :meth:`Client.send_stream <smtpstream.smtp.client.Client.send_stream>`;
        ``fetch`` may be a coroutine function."""
        if self._transport is None:
            raise SMTPServerDisconnected("the session is closed")
        try:
            await self._run(self.client.send_stream(fetch, done))
        finally:
            if not self.client.usable:
                self._close_transport()

    async def noop(self):
        return await self._run(self.client.noop())

    async def reset(self):
        return await self._run(self.client.reset())

    @property
    def extensions(self) -> dict[str, str]:
        return dict(self.client.conn.extensions)

    @property
    def closed(self) -> bool:
        return self._transport is None

    async def close(self) -> None:
        """QUIT (when the connection still works) and close. Never raises for a failed QUIT."""
        if self._transport is None:
            return
        try:
            if self.client.usable:
                await self._run(self.client.quit())
        except Exception:  # pragma: no cover - quit() swallows SMTP errors already
            pass
        finally:
            self._close_transport()

    async def __aenter__(self) -> Session:
        return await self.open()

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()

    # ---- internals

    async def _send_spec(self, spec) -> SendResult:
        if self._transport is None:
            raise SMTPServerDisconnected("the session is closed")
        try:
            return await self._run(self.client.send(spec))
        finally:
            if not self.client.usable:
                self._close_transport()

    async def _connect(self) -> None:
        s = self.settings
        loop = asyncio.get_running_loop()
        timeout = s.timeouts["connect"]
        context = (s.ssl_context or ssl.create_default_context()) if s.tls else None
        sock = None
        try:
            if s.create is not None:
                sock = created_socket(s.create)
                sock.setblocking(False)
                await asyncio.wait_for(loop.sock_connect(sock, (s.server, s.port)), timeout)
                coro = loop.create_connection(_Link, sock=sock, ssl=context,
                                              server_hostname=s.server if context else None)
            else:
                coro = loop.create_connection(_Link, s.server, s.port, ssl=context,
                                              server_hostname=s.server if context else None)
            transport, link = await asyncio.wait_for(coro, timeout)
        except (OSError, asyncio.TimeoutError) as exc:
            if sock is not None:
                sock.close()
            raise translate(exc, "connect", timeout) from exc
        self._transport, self._link = transport, link
        raw = transport.get_extra_info("socket")
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass  # not TCP: nothing to tune
        try:
            local = transport.get_extra_info("sockname")
            local_ip = local[0] if isinstance(local, tuple) and isinstance(local[0], str) else None
            await self._run(self.client.open(socket.gethostname(), local_ip))
        except BaseException:
            await self.close()
            raise

    def _close_transport(self) -> None:
        transport, self._transport, self._link = self._transport, None, None
        if transport is not None:
            transport.close()

    async def _start_tls(self, timeout: float, phase: str) -> None:
        context = self.settings.ssl_context or ssl.create_default_context()
        loop = asyncio.get_running_loop()
        link = self._link
        try:
            # In this task, not wait_for's (a task of its own on 3.11): start_tls
            # stops reading before the loop turns again, so nothing received in
            # clear after the dialogue's last look can reach the link.
            async with asyncio.timeout(timeout):
                transport = await loop.start_tls(self._transport, link, context,
                                                 server_hostname=self.settings.server)
        except (OSError, asyncio.TimeoutError) as exc:
            raise translate(exc, phase, timeout) from exc
        if transport is None:
            raise SMTPServerDisconnected("the connection closed during the TLS handshake", phase=phase)
        self._transport = transport
        link.transport = transport

    async def _run(self, gen):
        """Perform the actions ``gen`` yields until it returns; I/O errors are thrown into it."""
        result: Any = None
        error: BaseException | None = None
        while True:
            try:
                action = gen.throw(error) if error is not None else gen.send(result)
            except StopIteration as stop:
                return stop.value
            result = error = None
            if type(action) is Fetch:
                try:
                    result = action.fetch(action.now)
                    if inspect.isawaitable(result):
                        result = await result
                except Exception as exc:  # the caller's iterator: thrown back as it is
                    error = exc
                continue
            try:
                result = await self._perform(action)
            except SMTPError as exc:
                error = exc
            except (OSError, asyncio.TimeoutError) as exc:
                error = translate(exc, action.phase, action.timeout)
                error.__cause__ = exc

    async def _perform(self, action):
        link = self._link
        if link is None:
            raise SMTPServerDisconnected("the connection is closed", phase=action.phase)
        kind = type(action)
        if kind is Write:
            transport = self._transport
            if transport.is_closing():
                raise ConnectionResetError("the connection is closed")
            buffers = action.buffers
            if len(buffers) > 1 and sum(map(len, buffers)) <= JOIN_LIMIT:
                # One segment for a group (an end of data and the next envelope),
                # as the blocking transport's sendmsg gives: no extra round trip
                # for a server that answers the first half before the rest arrives.
                buffers = (b"".join(buffers),)
            for buffer in buffers:
                transport.write(buffer)
                if link.paused:
                    await link.drain(action.timeout)
            return None
        if kind is Read:
            now = asyncio.get_running_loop().time()
            if not action.more:
                self._deadline = now + action.timeout
            if link.buffer:
                return link.take()
            left = self._deadline - now
            if left <= 0:
                raise TimeoutError("timed out")
            return await link.read(left)
        if kind is Poll:
            if link.buffer:
                return link.take()
            return b"" if link.eof else None
        if kind is UpgradeTLS:
            if link.buffer or link.eof:  # received in clear after the 220: no handshake
                return link.take()
            await self._start_tls(action.timeout, action.phase)
            return None
        raise TypeError(f"unknown action {action!r}")  # pragma: no cover
