"""The blocking transport: ``send()`` and ``Session`` over a socket (and ssl).

All SMTP logic is in :class:`~smtpstream.smtp.client.Client` (the dialogue)
and :class:`~smtpstream.smtp.protocol.ClientConnection` (the engine); this
module connects, performs the I/O actions the dialogue yields, and turns
socket and ssl errors into :mod:`~smtpstream.smtp.errors` exceptions.

Sockets get TCP_NODELAY (every command group goes out in one ``sendall``:
with Nagle on, LuaSocket stalls about 40 ms per message); large body chunks
are written as they come, small ones joined first.
"""
from __future__ import annotations

import select
import sys
import time
from collections.abc import Mapping

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover - annotations only: typing takes milliseconds to import
    import socket
    from typing import Any, Callable, Iterable, Unpack, overload

    from .fieldtypes import BulkFields, ConnectionFields, MessageFields, SendFields
    from .reply import Reply
else:
    def overload(function):  # typing.overload without typing: the implementation that follows replaces it
        return function

from ._ioerrors import translate
from .client import Client, Fetch, Poll, Read, UpgradeTLS, Write
from .options import SendResult, connection_settings, created_socket, message_spec, split_fields
from .bulk import Batch, BulkResult, refuse_coroutine_function
from .errors import SMTPError, SMTPServerDisconnected

__all__ = ["send", "Session", "RECV_SIZE"]

#: Bytes asked of each ``recv``.
RECV_SIZE = 65536
#: Over TLS (no ``sendmsg``), buffers of a write smaller than this in total are
#: joined into one ``sendall``; bigger ones are written one by one, uncopied.
JOIN_LIMIT = 262144
#: Buffers of a write totalling at most this many octets are joined into one
#: (a message's end and the next one's envelope): no vector to build.
COPY_LIMIT = 16384


def send(mailt: SendFields | Mapping[str, Any] | None = None, /, **fields: Unpack[SendFields]) -> SendResult:
    """Send one message: LuaSocket's ``smtp.send{...}``, with keyword arguments too.

    Fields (a mapping, keywords, or both; keywords win):

    * ``from`` (or ``from_``): the sender; "" or "<>" for the null sender.
      ``<...>`` is added when missing. Defaults to a MessageSource's sender.
    * ``rcpt``: an address or a list. Defaults to a MessageSource's
      recipients (To, Cc, Bcc).
    * ``source``: the whole message: an iterable of byte chunks, a LuaSocket
      style callable (chunks then None), or ``smtp.message(...)``.
    * ``user``, ``password`` (or ``token`` for XOAUTH2), ``auth`` (force a
      mechanism or an order: "PLAIN", "LOGIN", "CRAM-MD5", "XOAUTH2").
    * ``server`` (``smtp.SERVER``), ``port`` (``smtp.PORT``, or 465 with ``tls``),
      ``domain`` (``smtp.DOMAIN``, else the EHLO name: the host's FQDN, else
      the local address literal such as ``[192.0.2.1]``; never "localhost").
      The ``smtp.*`` defaults are read at each call.
    * ``tls``: True for TLS from the start (port 465 implies it).
      ``starttls``: "required" (the default when credentials are given),
      "opportunistic" (the default otherwise) or "off".
      ``ssl_context``: an ``ssl.SSLContext`` (default: certificates verified
      against the system's CAs). Without one, ``cafile`` (a PEM bundle) and
      ``capath`` (a hashed directory, ``openssl rehash``) add a private CA to
      trust, and ``verify=False`` encrypts without checking the certificate
      (anyone on the path could read the mail); an ``ssl_context`` wins over
      all three. A CA file that cannot be loaded is an ``SMTPTLSError``
      before connecting.
      ``tlsmode`` (LuaSocket 3.1, instead of ``tls``/``starttls``): "none",
      "auto" (opportunistic), "starttls" (required) or "tls" (implicit).
    * ``timeout``: seconds for every phase, or a mapping phase -> seconds
      (default ``smtp.TIMEOUT``; when that is None, ``options.DEFAULT_TIMEOUTS``,
      RFC 5321 4.5.3.2).
    * ``step``: an LTN12 pump step ``step(source, sink) -> bool`` used to move
      the body (like ``ltn12.pump.step``); by default chunks are iterated.
    * ``create``: a factory returning an unconnected socket (LuaSocket's
      ``socket.tcp``); we ``connect((server, port))`` it.
    * ``dsn``: a :class:`~smtpstream.smtp.options.DSN` or a mapping
      (notify/ret/envid/orcpt), used when the server offers DSN.
    * ``size``: the message size to declare when the source does not know it:
      the octets the server will receive, CRLF line ends (RFC 1870). A list
      of chunks is measured after normalisation; other raw sources declare none.
    * ``chunking``, ``pipelining``: set False to never use BDAT / PIPELINING.
    * ``window``: with CHUNKING and PIPELINING, how many messages of a
      ``send_many`` one connection keeps in flight (``MAIL RCPT... BDAT n LAST
      RSET`` each, no wait between them; default 16; 1: wait for each
      verdict). It drops to 1 for good when the server misbehaves
      (:mod:`smtpstream.smtp.window`). A :class:`~smtpstream.smtp.window.Window`
      object may be given to share that between sessions.

    Returns a :class:`~smtpstream.smtp.options.SendResult`; raises an
    :class:`~smtpstream.smtp.errors.SMTPError` (LuaSocket: ``nil, err``).
    Every argument is checked before connecting.
    """
    conn_fields, msg_fields = split_fields(mailt, fields)
    spec = message_spec(msg_fields)  # refuse bad addresses before connecting
    with Session(**conn_fields) as session:
        return session._send_spec(spec)


class Session:
    """One connection for many messages::

        with smtp.Session(server="mx.example", user=..., password=...) as s:
            for m in messages:
                s.send(source=m)       # RSET after a failed one; QUIT at the end

    Takes the connection fields of :func:`send`; :meth:`send` takes the message fields.
    The connection is opened by the constructor (greeting, EHLO, STARTTLS, AUTH:
    an error there raises from ``Session(...)``). When the server has closed
    it (a 421, a dropped connection, an idle timeout), the next call opens a
    new one; after :meth:`close`, only :meth:`open` does.
    """

    #: The dialogue run on the connection (``smtp.open`` opens with less of it).
    _dialogue = Client

    def __init__(self, mailt: ConnectionFields | Mapping[str, Any] | None = None, /,
                 **fields: Unpack[ConnectionFields]) -> None:
        conn_fields, msg_fields = split_fields(mailt, fields)
        if msg_fields:
            raise TypeError(f"Session: message fields {sorted(msg_fields)} belong in Session.send()")
        self.settings = connection_settings(conn_fields)
        self.client = self._dialogue(self.settings)
        self._sock: Any = None
        self._poller: Any = None
        self._closed_by_caller = False
        self._deadline = 0.0  # when the reply being read must be complete (see Read.more)
        self._connect()

    # ---- public

    def open(self) -> Session:
        """Connect again unless connected (the constructor connects the first time); returns the session."""
        self._closed_by_caller = False
        if self._sock is None:
            self.client = Client(self.settings)
            self._connect()
        return self

    def _reconnect(self) -> None:
        """Open a connection for a call made while none is open (unless the caller closed it)."""
        if self._sock is None and not self._closed_by_caller:
            self.open()

    def interrupt(self) -> None:
        """Abandon the message being uploaded (see :meth:`Client.interrupt
        <smtpstream.smtp.client.Client.interrupt>`); one whose end of data is written
        gets its reply. Safe to call from another thread."""
        self.client.interrupt()

    def send(self, mailt: MessageFields | Mapping[str, Any] | None = None, /,
             **fields: Unpack[MessageFields]) -> SendResult:
        """Send one message over this connection (message fields of :func:`send`)."""
        conn_fields, msg_fields = split_fields(mailt, fields)
        if conn_fields:
            raise TypeError(f"Session.send: connection fields {sorted(conn_fields)} belong in Session()")
        return self._send_spec(message_spec(msg_fields))

    @overload
    def send_many(self, messages: Iterable[BulkFields | Mapping[str, Any]], on_result: None = None
                  ) -> list[BulkResult]: ...

    @overload
    def send_many(self, messages: Iterable[BulkFields | Mapping[str, Any]],
                  on_result: Callable[[BulkResult], object]) -> None: ...

    def send_many(self, messages: Iterable[BulkFields | Mapping[str, Any]],
                  on_result: Callable[[BulkResult], object] | None = None) -> list[BulkResult] | None:
        """Send many messages over this connection; one :class:`BulkResult` each, in order.

        With ``on_result`` each result is passed to it as soon as it is known
        and not kept (None is returned): memory stays flat however many
        messages there are.

        ``messages`` gives mappings of message fields (as for :meth:`send`).
        With PIPELINING each message's end of data shares a write with the
        next one's envelope: one round trip per message. Never raises for one
        message: a refusal is that message's result; if the connection is
        lost, the messages not yet sent get that error (a
        :class:`~smtpstream.pool.Pool` would reconnect and go on).
        """
        refuse_coroutine_function(on_result)
        batch = Batch(on_result=on_result)
        take = batch.taker(messages)

        def fetch(now: bool) -> Any:
            while (job := take()) is not None:
                spec = batch.spec(job)
                if spec is not None:
                    return job, spec
            return None

        try:
            self.send_stream(fetch, batch.finish)
        except SMTPError as exc:
            lost = exc
        else:
            lost = SMTPServerDisconnected("the connection was lost before this message was sent")
        while (job := take()) is not None:
            batch.fail(job, lost)
        return batch.conclude()

    def send_stream(self, fetch: Callable[[bool], Any],
                    done: Callable[[Any, SendResult | None, SMTPError | None], None],
                    ending: Callable[[Any], None] | None = None) -> None:
        """Low level: :meth:`Client.send_stream <smtpstream.smtp.client.Client.send_stream>` on this connection."""
        self._reconnect()
        if self._sock is None:
            raise SMTPServerDisconnected("the session is closed")
        try:
            self._run(self.client.send_stream(fetch, done, ending))
        finally:
            if not self.client.usable:
                self._close_socket()

    def noop(self) -> Reply:
        """NOOP: the server's reply (reconnects when the server had closed the connection)."""
        self._reconnect()
        return self._run(self.client.noop())

    def reset(self) -> Reply:
        """RSET: the server's reply; SMTPReplyError when refused."""
        self._reconnect()
        return self._run(self.client.reset())

    @property
    def extensions(self) -> dict[str, str]:
        return dict(self.client.conn.extensions)

    @property
    def closed(self) -> bool:
        return self._sock is None

    def close(self) -> None:
        """QUIT (when the connection still works) and close. Never raises for a failed QUIT."""
        self._closed_by_caller = True
        self._hang_up()

    def _hang_up(self) -> None:
        if self._sock is None:
            return
        try:
            if self.client.usable:
                self._run(self.client.quit())
        except Exception:  # pragma: no cover - quit() swallows SMTP errors already
            pass
        finally:
            self._close_socket()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # ---- internals

    def _send_spec(self, spec) -> SendResult:
        self._reconnect()
        if self._sock is None:
            raise SMTPServerDisconnected("the session is closed")
        try:
            return self._run(self.client.send(spec))
        finally:
            if not self.client.usable:
                self._close_socket()

    def _connect(self) -> None:
        import socket  # here, not at import: socket takes milliseconds to import (its enums)

        s = self.settings
        timeout = s.timeouts["connect"]
        try:
            if s.create is not None:
                sock = created_socket(s.create)
                sock.settimeout(timeout)
                try:
                    sock.connect((s.server, s.port))
                except BaseException:
                    sock.close()
                    raise
            else:
                sock = socket.create_connection((s.server, s.port), timeout=timeout)
        except OSError as exc:
            raise translate(exc, "connect", timeout) from exc
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass  # not TCP (a create() may give a Unix socket): nothing to tune
        self._sock = sock
        try:
            if s.tls:
                self._start_tls(timeout, "connect")
            try:
                local_ip = sock.getsockname()[0]
            except (OSError, IndexError, TypeError):
                local_ip = None
            self._run(self.client.open(socket.gethostname(), local_ip if isinstance(local_ip, str) else None))
        except BaseException:
            self._hang_up()
            raise

    def _close_socket(self) -> None:
        sock, self._sock, self._poller = self._sock, None, None
        if sock is not None:
            try:
                sock.close()
            except OSError:  # pragma: no cover
                pass

    def _start_tls(self, timeout: float, phase: str) -> None:
        import ssl  # here: a session that never uses TLS never pays for importing it

        context = self.settings.ssl_context or ssl.create_default_context()
        self._sock.settimeout(timeout)
        try:
            self._sock = context.wrap_socket(self._sock, server_hostname=self.settings.server)
        except OSError as exc:
            raise translate(exc, phase, timeout) from exc
        self._poller = None

    def _run(self, gen):
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
                    if hasattr(result, "__await__"):  # nothing here could await it
                        getattr(result, "close", lambda: None)()
                        raise TypeError("an awaitable (an async message source or before_end) needs asyncio:"
                                        " use smtpstream.aio or AsyncPool")
                except Exception as exc:  # the caller's iterator: thrown back as it is
                    error = exc
                continue
            try:
                result = self._perform(action)
            except SMTPError as exc:
                error = exc
            except OSError as exc:
                error = translate(exc, action.phase, action.timeout)
                error.__cause__ = exc

    def _perform(self, action):
        sock = self._sock
        if sock is None:
            raise SMTPServerDisconnected("the connection is closed", phase=action.phase)
        if type(action) is Write:
            _set_timeout(sock, action.timeout)
            buffers = action.buffers
            if len(buffers) == 1:
                sock.sendall(buffers[0])
            else:
                size = sum(map(len, buffers))
                if size <= COPY_LIMIT:  # joining a few KiB costs less than a vector of views
                    sock.sendall(b"".join(buffers))
                elif not _is_tls(sock) and hasattr(sock, "sendmsg"):
                    _send_vector(sock, buffers)  # one syscall, no copy
                elif size <= JOIN_LIMIT:
                    sock.sendall(b"".join(buffers))
                else:
                    for buffer in buffers:
                        sock.sendall(buffer)
            return None
        if type(action) is Read:
            now = time.monotonic()
            if action.more:
                left = self._deadline - now
                if left <= 0:
                    raise TimeoutError("timed out")  # socket.timeout
            else:
                left = action.timeout
                self._deadline = now + left
            _set_timeout(sock, left)
            return sock.recv(RECV_SIZE)
        if type(action) is Poll:
            if not self._readable():
                return None
            _set_timeout(sock, action.timeout)
            return sock.recv(RECV_SIZE)
        if type(action) is UpgradeTLS:
            if self._readable():  # before our ClientHello the server has nothing to say
                return sock.recv(RECV_SIZE)
            self._start_tls(action.timeout, action.phase)
            return None
        raise TypeError(f"unknown action {action!r}")  # pragma: no cover

    def _readable(self) -> bool:
        sock = self._sock
        if _is_tls(sock) and sock.pending():
            return True
        if hasattr(select, "poll"):
            if self._poller is None:
                self._poller = select.poll()
                self._poller.register(sock.fileno(), select.POLLIN)
            return bool(self._poller.poll(0))
        return bool(select.select([sock], [], [], 0)[0])  # pragma: no cover - no poll() here


def _set_timeout(sock: Any, timeout: float) -> None:
    """``sock.settimeout(timeout)`` unless it is in force already: each call is a
    system call (the socket's blocking mode is set again), two a message otherwise."""
    if sock.gettimeout() != timeout:
        sock.settimeout(timeout)


def _is_tls(sock: Any) -> bool:
    ssl = sys.modules.get("ssl")  # not imported yet: no socket can be a TLS one
    return ssl is not None and isinstance(sock, ssl.SSLSocket)


def _send_vector(sock: socket.socket, buffers) -> None:
    """``sendall`` for several buffers: gathered by ``sendmsg``, partial sends resumed.

    The socket's timeout applies to each ``sendmsg``, so it limits inactivity,
    not the whole upload.
    """
    views = [memoryview(b).cast("B") for b in buffers]
    first = 0
    while first < len(views):
        sent = sock.sendmsg(views[first:first + 512])  # well under IOV_MAX
        while first < len(views) and sent >= len(views[first]):
            sent -= len(views[first])
            first += 1
        if sent:
            views[first] = views[first][sent:]
