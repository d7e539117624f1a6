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
import itertools
import socket
import ssl
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Callable, overload

if TYPE_CHECKING:  # pragma: no cover
    from typing import Unpack

    from .smtp.fieldtypes import BulkFields, ConnectionFields, MessageFields, SendFields
    from .smtp.reply import Reply

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
#: Bytes the transport reads at a time into a connection's buffer.
_READ_SIZE = 1 << 16


async def send(mailt: SendFields | Mapping[str, Any] | None = None, /, **fields: Unpack[SendFields]) -> SendResult:
    """Send one message: the fields and result of :func:`smtpstream.smtp.send`."""
    conn_fields, msg_fields = split_fields(mailt, fields)
    spec = message_spec(msg_fields)  # refuse bad addresses before connecting
    async with Session(**conn_fields) as session:
        return await session._send_spec(spec)


def job_taker(batch: Batch, messages: Any):
    """The async twin of :meth:`Batch.taker <smtpstream.smtp.bulk.Batch.taker>`: a coroutine
    function giving the next :class:`Job` of an iterable or async iterable, None at the
    end or once the batch stops (an exception of the caller's iterator stops it)."""
    if not hasattr(messages, "__aiter__"):
        take = batch.taker(messages)

        async def pull() -> Job | None:
            return take()
        return pull
    iterator = messages.__aiter__()
    counter = itertools.count()

    async def pull() -> Job | None:
        if batch.stopping or batch.exhausted:
            return None
        try:
            fields = await iterator.__anext__()
        except StopAsyncIteration:
            return None
        except Exception as exc:
            batch.source_failed(exc)
            return None
        return Job(next(counter), fields)
    return pull


class ResultHandler:
    """``on_result`` for a :class:`Batch` on the event loop: the batch files results
    synchronously and each is handed to ``on_result`` in order. A plain function
    is called at once; an awaitable it returns (a coroutine function's) is awaited
    by a task of its own, the results after it waiting their turn. If ``on_result``
    raises, the batch stops and the exception is raised once all is reported.
    :meth:`close` waits until every result so far has been handled."""

    def __init__(self, on_result: Any) -> None:
        if on_result is not None and not callable(on_result):
            raise TypeError(f"on_result must be callable, got {type(on_result).__name__}")
        self.batch: Batch | None = None
        self._on_result = on_result
        #: Results waiting for an awaited outcome, and that outcome first.
        self._queue: deque[Any] = deque()
        self._ready: asyncio.Event | None = None
        self._task: asyncio.Future | None = None
        self._closing = False
        self.callback = None if on_result is None else self._push

    def _push(self, result: BulkResult) -> None:
        if self._task is None:  # nothing awaited: no task, no wake-up of the loop
            self._call(result)
            return
        self._queue.append(result)
        self._ready.set()

    def _call(self, result: BulkResult) -> None:
        try:
            outcome = self._on_result(result)
        except Exception as exc:  # the caller's code: stop the batch, raise it at the end
            self.batch.stop(exc)
            return
        if outcome is not None and inspect.isawaitable(outcome):
            self._queue.append(outcome)
            if self._task is None:
                self._ready = asyncio.Event()
                self._task = asyncio.ensure_future(self._deliver())
            self._ready.set()

    async def _deliver(self) -> None:
        ready = self._ready
        while True:
            await ready.wait()
            ready.clear()
            while self._queue:
                item = self._queue.popleft()
                try:
                    if inspect.isawaitable(item):
                        await item
                        continue
                    outcome = self._on_result(item)
                    if inspect.isawaitable(outcome):
                        await outcome
                except Exception as exc:  # the caller's code: stop the batch, raise it at the end
                    self.batch.stop(exc)
            if self._closing:
                return

    async def close(self) -> None:
        if self._task is None:
            return
        self._closing = True
        self._ready.set()
        task, self._task = self._task, None
        await task
        self._closing = False


class _Link(asyncio.BufferedProtocol):
    """Bytes received, end of stream and write flow control for one connection.

    A buffered protocol: the transport reads into one buffer of ours
    (``recv_into``), where a plain protocol's ``recv`` would allocate 256 KiB per
    read, a fresh mapping for each reply of a bulk send.
    """

    def __init__(self) -> None:
        self.buffer = bytearray()
        self._landing = memoryview(bytearray(_READ_SIZE))
        # Made by the loop's create_connection. Kept: asyncio.get_running_loop()
        # costs a getpid() system call on 3.11, and a bulk send waits once per message.
        self.loop = asyncio.get_running_loop()
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

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._landing

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(self._landing[:nbytes])

    def data_received(self, data: bytes | memoryview) -> None:
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
        loop = self.loop
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
    fields. The connection opens on ``await session`` / ``async with`` /
    :meth:`open` (or on first use); when the server has closed it, the next
    call opens a new one. After :meth:`close`, only :meth:`open` does.
    """

    def __init__(self, mailt: ConnectionFields | Mapping[str, Any] | None = None, /,
                 **fields: Unpack[ConnectionFields]) -> None:
        conn_fields, msg_fields = split_fields(mailt, fields)
        if msg_fields:
            raise TypeError(f"Session: message fields {sorted(msg_fields)} belong in Session.send()")
        self.settings = connection_settings(conn_fields)
        self.client = self._new_client()
        self._transport: Any = None
        self._link: _Link | None = None
        self._closed_by_caller = False
        self._deadline = 0.0  # when the reply being read must be complete (see Read.more)

    def _new_client(self) -> Client:
        client = Client(self.settings)
        client.awaits = True
        return client

    # ---- public

    async def open(self) -> Session:
        """Connect (greeting, EHLO, STARTTLS, AUTH) unless connected; returns the session."""
        self._closed_by_caller = False
        if self._transport is None:
            self.client = self._new_client()
            await self._connect()
        return self

    async def _reconnect(self) -> None:
        """Open a connection for a call made while none is open (unless the caller closed it)."""
        if self._transport is None and not self._closed_by_caller:
            await self.open()

    def interrupt(self) -> None:
        """Abandon the message being uploaded (see :meth:`Client.interrupt
        <smtpstream.smtp.client.Client.interrupt>`); one whose end of data is written gets its reply."""
        self.client.interrupt()

    connect = open

    def __await__(self):
        return self.open().__await__()

    async def send(self, mailt: MessageFields | Mapping[str, Any] | None = None, /,
                   **fields: Unpack[MessageFields]) -> SendResult:
        """Send one message over this connection (message fields of :func:`send`)."""
        conn_fields, msg_fields = split_fields(mailt, fields)
        if conn_fields:
            raise TypeError(f"Session.send: connection fields {sorted(conn_fields)} belong in Session()")
        return await self._send_spec(message_spec(msg_fields))

    @overload
    async def send_many(self, messages: Any, on_result: None = None) -> list[BulkResult]: ...

    @overload
    async def send_many(self, messages: Any, on_result: Callable[[BulkResult], Any]) -> None: ...

    async def send_many(self, messages: Any, on_result: Callable[[BulkResult], Any] | None = None
                        ) -> list[BulkResult] | None:
        """Many messages over this connection (an iterable or async iterable of field
        mappings); one :class:`~smtpstream.smtp.bulk.BulkResult` each, in order
        (or each to ``on_result`` as it is known, None returned).
        The twin of :meth:`smtpstream.smtp.Session.send_many`: pipelined across
        messages, never raising for one message. ``on_result`` may be a
        coroutine function: each result is awaited, in order.
        """
        results = ResultHandler(on_result)
        batch = Batch(on_result=results.callback)
        results.batch = batch
        next_job = job_taker(batch, messages)

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
        except asyncio.CancelledError as exc:  # what was in flight is reported; nothing new starts
            batch.stop(exc)
        else:
            lost = SMTPServerDisconnected("the connection was lost before this message was sent")
        while (job := await next_job()) is not None:
            batch.fail(job, lost)
        await results.close()
        return batch.conclude()

    async def send_stream(self, fetch, done, ending=None) -> None:
        """Low level: :meth:`Client.send_stream <smtpstream.smtp.client.Client.send_stream>`;
        ``fetch`` may be a coroutine function."""
        await self._reconnect()
        if self._transport is None:
            raise SMTPServerDisconnected("the session is closed")
        try:
            await self._run(self.client.send_stream(fetch, done, ending))
        finally:
            if not self.client.usable:
                self._close_transport()

    async def noop(self) -> Reply:
        await self._reconnect()
        return await self._run(self.client.noop())

    async def reset(self) -> Reply:
        await self._reconnect()
        return await self._run(self.client.reset())

    @property
    def extensions(self) -> dict[str, str]:
        return dict(self.client.conn.extensions)

    @property
    def closed(self) -> bool:
        return self._transport is None

    async def close(self) -> None:
        """QUIT (when the connection still works) and close. Never raises for a failed QUIT."""
        self._closed_by_caller = True
        await self._hang_up()

    async def _hang_up(self) -> None:
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
        await self._reconnect()
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
            await self._hang_up()
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
            now = link.loop.time()
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
