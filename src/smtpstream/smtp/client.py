"""The SMTP dialogue without I/O: which commands, in what order, and what the replies mean.

:class:`Client` drives a :class:`~smtpstream.smtp.protocol.ClientConnection`
through whole conversations (greet, STARTTLS, AUTH, a mail transaction,
RSET, QUIT). Its methods are generators that *yield I/O actions* and get
their results sent back::

    gen = client.open(hostname, local_ip)
    result = None
    while True:
        action = gen.send(result)      # Write / Read / Poll / UpgradeTLS
        result = transport.do(action)  # bytes read, or None; errors are thrown in

So every transport (blocking sockets, asyncio) shares the same logic and
only moves bytes: a transport performs the action, translates its I/O
errors into :mod:`smtpstream.smtp.errors` exceptions with the action's
``phase`` and throws them into the generator. Nothing here imports socket,
ssl, asyncio or time.

The fields of ``send()``, timeouts, the envelope and the result are in
``options.py``.
"""
from __future__ import annotations

import sys
from collections import deque

from ..idn import to_ascii
from . import auth
from ._state import State, Verb
from ._value import Value
from .errors import (
    LocalProtocolError,
    SMTPAuthenticationError,
    SMTPDataError,
    SMTPError,
    SMTPInterrupted,
    SMTPNotSupportedError,
    SMTPProtocolError,
    SMTPRecipientsRefused,
    SMTPReplyError,
    SMTPSenderRefused,
    SMTPServerDisconnected,
    SMTPSizeError,
    SMTPSourceError,
    SMTPUnknownOutcome,
)
from .protocol import (
    NEED_DATA,
    Auth,
    AuthResponse,
    ClientConnection,
    Command,
    ConnectionClosed,
    Data,
    Ehlo,
    Helo,
    Mail,
    Noop,
    Quit,
    Rcpt,
    Rset,
    StartTLS,
    check_address,
)
from .options import AsyncChunks, MessageSpec, SendResult, Settings, bad_chunk, default_domain
from .reply import Reply

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: typing takes milliseconds to import
    from typing import Any, Callable, Generator, Iterable, Iterator

__all__ = ["Client", "Write", "Read", "Poll", "UpgradeTLS", "Fetch", "LATER"]



_logger: Any = None


def _debug(text: str, *args: Any) -> None:
    """``logging.getLogger("smtpstream.smtp").debug(...)``, without importing logging.

    A process that has not imported logging has configured no handler; once
    it has, the logger decides as usual. Saves the import (about 10 ms).
    """
    global _logger
    logger = _logger
    if logger is None:
        logging = sys.modules.get("logging")
        if logging is None:
            return
        logger = _logger = logging.getLogger("smtpstream.smtp")
    if logger.isEnabledFor(10):  # DEBUG; asked first: a message costs a frame less when it is off
        logger.debug(text, *args)

_PHASE_OF: dict[Verb, str] = {
    Verb.GREETING: "greeting",
    Verb.EHLO: "ehlo",
    Verb.HELO: "helo",
    Verb.STARTTLS: "starttls",
    Verb.AUTH: "auth",
    Verb.AUTH_RESPONSE: "auth",
    Verb.MAIL: "mail",
    Verb.RCPT: "rcpt",
    Verb.DATA: "data",
    Verb.END_DATA: "end",
    Verb.BDAT: "body",
    Verb.BDAT_LAST: "end",
    Verb.RSET: "rset",
    Verb.NOOP: "noop",
    Verb.QUIT: "quit",
}

#: Body bytes gathered before one write (small chunks are joined, big ones
#: written as they are: no copy).
WRITE_SIZE = 65536
#: Body octets per BDAT command: each one costs a reply.
BDAT_SIZE = 1 << 20
#: While uploading, look for an early reply or a close this often (octets).
POLL_EVERY = 1 << 20
#: A source (or step) giving no byte this many times in a row is stuck: it
#: would spin without I/O, out of reach of every timeout.
MAX_IDLE_PULLS = 100_000
#: Rounds of 334 challenges before giving up on an AUTH exchange.
MAX_AUTH_ROUNDS = 5

_BYTES_LIKE = (bytes, bytearray, memoryview)
_IDLE = frozenset({State.REFUSED, State.GREETED, State.READY, State.MAIL, State.RCPT, State.BDAT})


# ------------------------------------------------------------------ I/O actions


class Write(Value):
    """Write these buffers, in order (join small ones; never copy big ones)."""

    __slots__ = _fields = ("buffers", "timeout", "phase")
    buffers: tuple
    timeout: float
    phase: str

    def __init__(self, buffers: tuple, timeout: float, phase: str) -> None:
        object.__setattr__(self, "buffers", buffers)
        object.__setattr__(self, "timeout", timeout)
        object.__setattr__(self, "phase", phase)


class Read(Value):
    """Read once (up to a block); send back the bytes, ``b""`` at end of stream.

    ``timeout`` is for the whole reply (RFC 5321 4.5.3.2), not for each read:
    with ``more`` this Read goes on with the reply the previous Read began, and
    only the time left of that Read's timeout applies (a server dripping its
    reply a byte at a time cannot hold the connection longer).
    """

    __slots__ = _fields = ("timeout", "phase", "more")
    timeout: float
    phase: str
    more: bool

    def __init__(self, timeout: float, phase: str, more: bool = False) -> None:
        object.__setattr__(self, "timeout", timeout)
        object.__setattr__(self, "phase", phase)
        object.__setattr__(self, "more", more)


class Poll(Value):
    """Read only what has already arrived: send back bytes, ``b""`` (closed) or None."""

    __slots__ = _fields = ("timeout", "phase")
    timeout: float
    phase: str

    def __init__(self, timeout: float, phase: str) -> None:
        object.__setattr__(self, "timeout", timeout)
        object.__setattr__(self, "phase", phase)


class UpgradeTLS(Value):
    """Do the TLS handshake on the connection now (after STARTTLS's 220) and send back None.

    Bytes already received in clear and not yet given to the dialogue are
    sent back instead, without a handshake (``b""`` when the connection
    closed): the engine refuses them (RFC 3207 5).
    """

    __slots__ = _fields = ("timeout", "phase")
    timeout: float
    phase: str

    def __init__(self, timeout: float, phase: str = "starttls") -> None:
        object.__setattr__(self, "timeout", timeout)
        object.__setattr__(self, "phase", phase)


class Fetch(Value):
    """Call ``fetch(now)`` (awaiting its value when it is awaitable) and send back what it gives.

    How :meth:`Client.send_stream` asks for the next message: ``(key, MessageSpec)``,
    or None at the end. With ``now`` True the previous message's end of data is
    still held back, and ``fetch`` should give :data:`LATER` rather than wait
    (for a rate limit or a slow producer): the dialogue then finishes that
    message first and asks again with ``now`` False. An exception ``fetch``
    raises is thrown into the dialogue, which settles what is in flight and
    lets it propagate.
    """

    __slots__ = _fields = ("fetch", "now", "timeout", "phase")
    fetch: Callable[[bool], Any]
    now: bool
    timeout: float
    phase: str

    def __init__(self, fetch: Callable[[bool], Any], now: bool = False, timeout: float = 0.0,
                 phase: str = "fetch") -> None:
        object.__setattr__(self, "fetch", fetch)
        object.__setattr__(self, "now", now)
        object.__setattr__(self, "timeout", timeout)
        object.__setattr__(self, "phase", phase)


def _given(value: Any) -> Callable[[bool], Any]:
    """A Fetch's ``fetch`` that gives ``value`` (the transport awaits it when awaitable)."""
    return lambda now: value


class _Later:
    __slots__ = ()

    def __repr__(self) -> str:
        return "LATER"


#: What a stream's ``fetch(now=True)`` returns when the next message is not at hand.
LATER = _Later()

Action = Write | Read | Poll | UpgradeTLS | Fetch
if TYPE_CHECKING:
    Gen = Generator[Action, Any, Any]



class _Transaction:
    """One message on its way: its commands' replies, filed as they arrive."""

    def __init__(self, key: Any, spec: MessageSpec) -> None:
        self.key = key
        self.spec = spec
        #: Each RCPT command (by identity: an unhashed lookup) -> the recipient as given.
        self.originals: dict[int, str] = {}
        self.wanted = 0  # distinct recipients: every one answered when rcpt has this many
        self.replies: list[Reply] = []
        self.mail: Reply | None = None
        self.rcpt: dict[str, Reply] = {}
        self.data: Reply | None = None
        self.bdat_refusal: Reply | None = None
        self.final: Reply | None = None
        self.size = 0
        self.chunking = self.pipelining = False
        #: Set before the write that carries the end of data (or BDAT LAST):
        #: from then on a lost connection leaves the outcome unknown.
        self.end_written = False
        self.reported = False
        #: Sent in a window (BDAT LAST then RSET, no wait): its verdict is read later.
        self.windowed = False

    def record(self, reply: Reply) -> None:
        self.replies.append(reply)
        verb = reply.command.verb
        if verb is Verb.MAIL:
            self.mail = reply
        elif verb is Verb.RCPT:
            self.rcpt[self.originals[id(reply.command)]] = reply
        elif verb is Verb.DATA:
            self.data = reply
        elif verb is Verb.BDAT:
            if not reply.positive and self.bdat_refusal is None:
                self.bdat_refusal = reply
        elif verb in (Verb.END_DATA, Verb.BDAT_LAST):
            self.final = reply

    def _all_refused(self) -> bool:
        """Every recipient answered, none accepted."""
        if len(self.rcpt) != self.wanted:
            return False
        for reply in self.rcpt.values():
            if reply.positive:
                return False
        return True

    def hopeless(self) -> bool:
        """True when the server has already said this message cannot go through."""
        if self.mail is not None and not self.mail.positive:
            return True
        if self.bdat_refusal is not None:
            return True
        return self._all_refused()

    def check(self) -> None:
        """Raise the error the replies so far add up to, if any (in dialogue order)."""
        if self.mail is not None and not self.mail.positive:
            raise SMTPSenderRefused("the sender was refused", phase="mail", reply=self.mail)
        if self._all_refused():
            raise SMTPRecipientsRefused(f"all {len(self.rcpt)} recipient(s) refused", self.rcpt)
        if self.data is not None and not self.data.intermediate:
            raise SMTPDataError("DATA was refused", phase="data", reply=self.data)
        if self.bdat_refusal is not None:
            raise SMTPDataError("a BDAT chunk was refused", phase="body", reply=self.bdat_refusal)
        if self.final is not None and not self.final.positive:
            raise SMTPDataError("the message was refused", phase="end", reply=self.final)

    def verdict(self) -> tuple[SendResult | None, SMTPError | None]:
        """``(result, None)`` for a delivered message, ``(None, error)`` otherwise."""
        try:
            self.check()
        except SMTPError as exc:
            return None, exc
        result = SendResult(
            sender=self.spec.sender,
            recipients=dict(self.rcpt),
            reply=self.final,
            replies=tuple(self.replies),
            size=self.size,
            chunking=self.chunking,
            pipelining=self.pipelining,
        )
        return result, None


# ------------------------------------------------------------------ the dialogue


class Client:
    """The sans-IO SMTP dialogue over one connection (see the module doc)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.conn = ClientConnection()
        self.secure = settings.tls
        self.authenticated = False
        self.greeting: Reply | None = None
        self.hello: Reply | None = None
        self._broken = False
        self._in_transaction = False
        self._phase = "greeting"
        #: Set by a transport that awaits what Fetch gives (asyncio): async sources need one.
        self.awaits = False
        # Pipelining across messages: replies are filed with the transaction
        # that sent their command; a message whose end of data is held back
        # (to share a write with the next message's commands) is in flight
        # until its verdict is read.
        self._owners: dict[int, _Transaction] = {}
        self._flight: _Transaction | None = None
        self._held: list[Any] = []
        self._done: Callable[[Any, SendResult | None, SMTPError | None], None] | None = None
        # The next message, fetched while the server works on this one's
        # envelope: ("item", (key, spec) or None) or ("error", exception).
        self._fetch: Callable[[bool], Any] | None = None
        self._ahead: tuple[str, Any] | None = None
        self._ending: Callable[[Any], None] | None = None
        self._interrupted = False
        # BDAT mode: messages written whole (BDAT LAST, then an RSET) whose
        # verdicts are still to be read, oldest first (smtp/window.py).
        self._window: deque[_Transaction] = deque()
        self._resets: set[int] = set()  # the RSETs sent after them, by id, until answered
        self._windowing = False  # a message was sent in a window on this connection

    def interrupt(self) -> None:
        """Stop before the next body write: a message whose end of data is not
        written yet is abandoned (the connection is dropped, so the server
        discards it) and fails with :class:`SMTPInterrupted`; one whose end of
        data is written still gets its reply. Safe to call from another thread."""
        self._interrupted = True

    @property
    def usable(self) -> bool:
        """True while the connection can carry another command."""
        return not self._broken and self.conn.state in _IDLE

    def _timeout(self, phase: str) -> float:
        return self.settings.timeouts[phase]

    # ---- I/O primitives

    def _act(self, action: Action) -> Gen:
        try:
            return (yield action)
        except SMTPError as exc:  # thrown in by the transport: the connection is gone
            self._broken = True
            if exc.phase is None:
                exc.phase = action.phase
            raise

    def _write(self, buffers: Iterable[Any], phase: str, ends: _Transaction | None = None) -> Gen:
        """Write ``buffers``; ``ends`` is the transaction whose end of data is among them."""
        if self._interrupted and phase == "body":
            self._broken = True  # mid-body the only way to abort is to hang up
            raise SMTPInterrupted("stopped before the end of data: not delivered", phase=phase)
        buffers = tuple([b for b in buffers if len(b)])
        self._phase = phase
        if ends is not None:
            if self._ending is not None and not ends.end_written:
                # The caller's record that this message may now reach the server
                # (a journal's commit): if it fails, the end of data is not written.
                waiting = self._ending(ends.key)
                if waiting is not None:  # committed elsewhere (a thread): wait for it here
                    yield Fetch(_given(waiting), phase=phase)
            ends.end_written = True
        if buffers:
            yield from self._act(Write(buffers, self._timeout(phase), phase))

    def _receive(self, data: bytes) -> None:
        try:
            self.conn.receive_data(data)
        except SMTPProtocolError as exc:  # e.g. bytes injected after STARTTLS's 220
            raise self._broken_by(exc)

    def _event(self):
        try:
            return self.conn.next_event()
        except SMTPProtocolError as exc:
            raise self._broken_by(exc)

    def _broken_by(self, exc: SMTPProtocolError) -> SMTPProtocolError:
        """The server broke the protocol: the connection is unusable; ``exc`` gets the phase."""
        self._broken = True
        exc.phase = exc.phase or self._phase
        return exc

    def _check(self, event: Any) -> Reply:
        if isinstance(event, ConnectionClosed):
            self._broken = True
            phase = _PHASE_OF[event.pending[0].verb] if event.pending else self._phase
            raise SMTPServerDisconnected("the server closed the connection", phase=phase)
        _debug("S: %s", event)
        if event.code == 421 and (event.command is None or event.command.verb is not Verb.QUIT):
            self._broken = True
            phase = _PHASE_OF[event.command.verb] if event.command is not None else self._phase
            raise SMTPServerDisconnected("the server is closing the connection", phase=phase, reply=event)
        return event

    def _reply(self) -> Gen:
        """Read until the next reply (paired with its command) is complete."""
        more = False
        conn = self.conn
        while True:
            try:
                event = conn.next_event()
            except SMTPProtocolError as exc:  # _event(), inlined: this runs once per reply
                raise self._broken_by(exc)
            if event is NEED_DATA:
                awaited = conn.awaited
                phase = _PHASE_OF[awaited.verb] if awaited is not None else self._phase
                data = yield from self._act(Read(self._timeout(phase), phase, more))
                more = True
                self._receive(data)
                continue
            return self._check(event)

    def _poll(self) -> Gen:
        """File whatever replies have already arrived (during an upload)."""
        data = yield from self._act(Poll(self._timeout(self._phase), self._phase))
        if data is None:
            return
        self._receive(data)
        while (event := self._event()) is not NEED_DATA:
            self._file(self._check(event))

    def _file(self, reply: Reply) -> Reply:
        """Give a reply to the transaction whose command it answers (if any)."""
        tx = self._owners.pop(id(reply.command), None)
        if tx is not None:
            tx.record(reply)
        elif self._resets and id(reply.command) in self._resets:
            self._resets.discard(id(reply.command))
            if not reply.positive:  # the server's transaction state is unknown now
                self._broken = True
                self.settings.window.shrink(f"the RSET after a message was refused ({reply.code})")
        return reply

    def _own(self, tx: _Transaction) -> None:
        """The command just queued (or end of data, or BDAT) belongs to ``tx``."""
        self._owners[id(self.conn.last_sent)] = tx

    def _send(self, command: Command, tx: _Transaction | None = None) -> None:
        self.conn.send(command)
        if tx is not None:
            self._own(tx)
        _debug("C: %r", command)  # AUTH payloads are hidden by the commands' repr

    def _exchange(self, command: Command, tx: _Transaction | None = None) -> Gen:
        self._send(command, tx)
        yield from self._write((self.conn.data_to_send(),), _PHASE_OF[command.verb])
        return (yield from self._reply())

    def _drain(self) -> Gen:
        """Read the replies of every command sent (writing any still buffered first)."""
        unsent = self.conn.data_to_send()
        if unsent:  # e.g. MAIL/RCPT queued for a BDAT that the source never delivered
            yield from self._write((unsent,), self._phase)
        while self.conn.awaited is not None:
            self._file((yield from self._reply()))

    # ---- opening

    def open(self, hostname: str | None = None, local_ip: str | None = None) -> Gen:
        """Greeting, EHLO (HELO fallback), STARTTLS per policy, AUTH when credentials are set."""
        yield from self.read_greeting()
        yield from self.greet(self.settings.domain or default_domain(hostname, local_ip))
        if self.settings.credentials:
            yield from self._authenticate()

    def read_greeting(self) -> Gen:
        """The server's greeting, which must be 2xx."""
        self.greeting = yield from self._reply()
        if not self.greeting.positive:
            raise SMTPReplyError("the server refused the session", phase="greeting", reply=self.greeting)
        return self.greeting

    def greet(self, domain: str) -> Gen:
        """EHLO (HELO fallback), then STARTTLS per policy and EHLO again; returns the last hello reply."""
        s = self.settings
        yield from self._say_hello(domain)
        if not self.secure and s.starttls != "off":
            if "STARTTLS" in self.conn.extensions:
                reply = yield from self._exchange(StartTLS())
                if reply.positive:
                    early = yield from self._act(UpgradeTLS(self._timeout("starttls")))
                    if early is not None:  # bytes in clear after the 220: the engine refuses them
                        self._receive(early)
                        self._broken = True
                        raise SMTPServerDisconnected("the server closed the connection instead of"
                                                     " starting TLS", phase="starttls")
                    self.conn.tls_started()
                    self.secure = True
                    yield from self._say_hello(domain)
                elif s.starttls == "required":
                    raise SMTPReplyError("STARTTLS was refused", phase="starttls", reply=reply)
            elif s.starttls == "required":
                why = "credentials are set" if s.credentials else "starttls='required'"
                raise SMTPNotSupportedError(
                    f"the server does not offer STARTTLS and {why}: refusing to continue in clear"
                    " (use tls=True for port 465, or starttls='off' to allow clear text)",
                    phase="starttls",
                )
        return self.hello

    def _say_hello(self, domain: str) -> Gen:
        reply = yield from self._exchange(Ehlo(domain))
        if not reply.positive and reply.permanent:
            # RFC 5321 3.2: a server that does not know EHLO says 500/502.
            reply = yield from self._exchange(Helo(domain))
            if not reply.positive:
                raise SMTPReplyError("HELO was refused", phase="helo", reply=reply)
        elif not reply.positive:
            raise SMTPReplyError("EHLO was refused", phase="ehlo", reply=reply)
        self.hello = reply

    def _authenticate(self) -> Gen:
        s, conn = self.settings, self.conn
        offered = conn.auth_mechanisms
        if not offered:
            raise SMTPNotSupportedError("credentials are set but the server offers no AUTH", phase="auth")
        name = auth.choose(offered, secure=self.secure, token=s.token is not None, wanted=s.auth)
        if name is None:
            raise SMTPNotSupportedError(
                f"no usable AUTH mechanism: the server offers {sorted(offered)}", phase="auth"
            )
        secret = s.token if s.token is not None else s.password
        mechanism = auth.MECHANISMS[name](s.user, secret)
        initial = mechanism.initial()
        reply = yield from self._exchange(Auth(name, None if initial is None else auth.b64(initial)))
        rounds = 0
        while reply.intermediate:
            rounds += 1
            try:
                if reply.code != 334:
                    raise LocalProtocolError(f"AUTH {name}: expected a 334 challenge, got {reply.code}")
                if rounds > MAX_AUTH_ROUNDS:
                    raise LocalProtocolError(f"AUTH {name}: more than {MAX_AUTH_ROUNDS} challenges")
                try:
                    challenge = auth.unb64(reply.lines[0].strip() if reply.lines else "")
                except ValueError:  # binascii.Error included
                    raise LocalProtocolError(f"AUTH {name}: the server's 334 challenge is not base64") from None
                answer = auth.b64(mechanism.respond(challenge))
            except LocalProtocolError as exc:
                # RFC 4954 4: "*" cancels the exchange; the server answers 501.
                yield from self._exchange(AuthResponse("*"))
                raise SMTPAuthenticationError(exc.message, phase="auth", reply=reply) from None
            reply = yield from self._exchange(AuthResponse(answer))
        if not reply.positive:
            raise SMTPAuthenticationError(f"AUTH {name} failed", phase="auth", reply=reply)
        self.authenticated = True

    # ---- messages

    def send(self, spec: MessageSpec) -> Gen:
        """One mail transaction; returns a :class:`SendResult` or raises.

        On failure the transaction is reset (RSET) when the connection is
        still usable, so the next message can follow.
        """
        if not self.usable:
            raise SMTPServerDisconnected("the connection is closed", phase=self._phase)
        items = iter(((None, spec),))
        outcome: list[tuple[SendResult | None, SMTPError | None]] = []
        yield from self.send_stream(lambda now: next(items, None), lambda key, res, err: outcome.append((res, err)))
        if not outcome:  # pragma: no cover - the connection was checked above
            raise SMTPServerDisconnected("the connection is closed", phase=self._phase)
        result, error = outcome[0]
        if error is not None:
            raise error
        return result

    def send_stream(
        self,
        fetch: Callable[[bool], Any],
        done: Callable[[Any, SendResult | None, SMTPError | None], None],
        ending: Callable[[Any], None] | None = None,
    ) -> Gen:
        """Send the messages ``fetch`` gives, one transaction each, pipelined across messages.

        ``fetch(now)`` (performed by the transport: see :class:`Fetch`) gives
        ``(key, MessageSpec)`` or None at the end. ``done(key, result, error)``
        is called once per message taken, in order, with exactly one of
        ``result`` / ``error`` set. Returns when ``fetch`` gives None or the
        connection can carry nothing more; an error never loses the verdicts
        of the messages before it.

        With PIPELINING (RFC 2920 3.1) a message's end of data is held back and
        written together with the next message's MAIL, RCPTs and DATA: one
        round trip per message. With CHUNKING the whole message goes as
        ``MAIL RCPT... BDAT n LAST`` in one write, followed by an ``RSET``, and
        up to ``settings.window.limit`` messages are in flight: the verdicts
        of the earlier ones are read while the later ones go out
        (smtp/window.py).

        ``ending(key)``, when given, is called just before the write that
        carries a message's end of data (or ``BDAT LAST``), once per
        transaction: the last moment to record that the server may get it.
        It may return an awaitable (asyncio transports only): the end of data
        is written once that is done. If it raises (or the awaitable does),
        that end of data is never written: the message fails with
        :class:`SMTPInterrupted` and the exception propagates.
        """
        self._done, self._fetch, self._ahead, self._ending = done, fetch, None, ending
        current: _Transaction | None = None
        try:
            while self.usable or (self._flight is not None and not self._broken):
                try:
                    item = yield from self._next_message(fetch)
                except SMTPError:
                    break  # settling the message in flight failed; it has its error
                if item is None:
                    break
                key, spec = item
                tx = current = _Transaction(key, spec)
                try:
                    yield from self._one(tx)
                except SMTPError as exc:
                    if isinstance(exc, SMTPServerDisconnected) and self._windowing:
                        self.settings.window.shrink(f"the connection was lost with messages in flight ({exc})")
                    yield from self._settle_window_quietly()  # the messages before it come first
                    self._report(tx, None, exc)
                else:
                    if self._flight is not tx and not tx.windowed:
                        self._report(tx, *tx.verdict())
                current = None
            yield from self._settle_window_quietly()
            try:
                yield from self._flush()
                if self._resets and not self._broken:
                    yield from self._drain()  # the last RSETs' replies: nothing is left unread
            except SMTPError:
                pass  # reported with the message it concerns
            ahead, self._ahead = self._ahead, None
            if ahead is not None and ahead[0] == "error":
                raise ahead[1]
            if ahead is not None and ahead[1] is not None:  # taken, never sent: the connection went
                key, _ = ahead[1]
                self._done(key, None, SMTPServerDisconnected(
                    "the connection was lost before this message was sent", phase=self._phase))
        except BaseException as exc:
            # Not an SMTP error: the caller's iterator failing (raised once
            # everything before it is settled: the connection stays usable), or
            # a bug or KeyboardInterrupt mid-transaction: what is in flight is lost.
            if self._flight is not None or self.conn.pending or self.conn.state not in _IDLE:
                self._broken = True
            flight, self._flight, self._held = self._flight, None, []
            window, self._window = list(self._window), deque()
            self._resets.clear()
            for tx in (*window, flight, current):
                if tx is not None and not tx.reported:
                    self._report(tx, None, SMTPInterrupted(f"the dialogue was abandoned: {exc!r}", phase="end"))
            ahead, self._ahead = self._ahead, None
            if ahead is not None and ahead[0] == "item" and ahead[1] is not None:
                self._done(ahead[1][0], None, SMTPInterrupted(
                    f"the dialogue was abandoned before this message was sent: {exc!r}", phase="mail"))
            raise
        finally:
            self._done = self._fetch = self._ahead = self._ending = None

    def _report(self, tx: _Transaction, result: SendResult | None, error: SMTPError | None) -> None:
        tx.reported = True
        if error is not None and tx.end_written and tx.final is None and error.reply is None \
                and not isinstance(error, (SMTPUnknownOutcome, SMTPProtocolError)):
            # RFC 1047: the end of data went out and no reply came back (a reply
            # that breaks the protocol is an answer, not a delivery: RFC 5321 4.3.2).
            cause = error
            error = SMTPUnknownOutcome(
                f"the end of data was sent but its reply never came ({cause}): the message may or may"
                " not have been delivered", phase="end")
            error.__cause__ = cause
        for command in [c for c, owner in self._owners.items() if owner is tx]:
            del self._owners[command]  # replies still to come are of no interest now
        if self._done is not None:
            self._done(tx.key, result, error)

    def _next_message(self, fetch: Callable[[bool], Any]) -> Gen:
        """The next ``(key, spec)`` or None; finishes the messages in flight first if it must wait."""
        if self._ahead is not None:
            (kind, value), self._ahead = self._ahead, None
            if kind == "item":
                return value
            yield from self._settle_window_quietly()
            yield from self._flush_quietly()
            raise value
        try:
            if self._flight is not None or self._window:
                item = yield Fetch(fetch, now=True)
                if item is not LATER:
                    return item
                yield from self._settle_window(0)
                yield from self._flush()
            return (yield Fetch(fetch, now=False))
        except SMTPError:
            raise
        except Exception:
            yield from self._settle_window_quietly()
            yield from self._flush_quietly()
            raise

    # ---- the window (BDAT mode)

    def _settle_window(self, keep: int) -> Gen:
        """Read replies until at most ``keep`` messages of the window wait for their verdict,
        reporting each, in order, as soon as it has one.

        If the connection fails meanwhile, each message still waiting is
        reported: with its refusal when its replies so far are one, else with
        the failure (unknown outcome: its BDAT LAST was written), and the
        window drops to 1 (smtp/window.py).
        """
        window = self._window
        try:
            while window:
                while window and window[0].final is not None:
                    self._report_windowed(window.popleft())
                if len(window) <= keep:
                    return
                self._file((yield from self._reply()))
        except SMTPError as exc:
            self.settings.window.shrink(f"{type(exc).__name__} with messages in flight: {exc}")
            self._resets.clear()
            first = True
            while window:
                tx = window.popleft()
                error: SMTPError = exc
                if not first and isinstance(exc, SMTPProtocolError):
                    # The reply that broke the protocol answered the oldest message's
                    # commands (replies come in order): the later ones had none.
                    error = SMTPServerDisconnected(f"the connection broke on an earlier message's reply: {exc}",
                                                   phase="end")
                first = False
                try:
                    tx.check()
                except SMTPError as refusal:  # refused already: not delivered, whatever followed
                    error = refusal
                self._report(tx, None, error)
            raise

    def _settle_window_quietly(self) -> Gen:
        try:
            yield from self._settle_window(0)
        except SMTPError:
            pass  # reported with the messages it concerns

    def _report_windowed(self, tx: _Transaction) -> None:
        if tx.mail is not None and tx.mail.code == 503:
            # RSET went before this MAIL: a server that still says "bad sequence"
            # does not take pipelined transactions; one at a time from now on.
            self.settings.window.shrink("503 to a pipelined MAIL")
        self._report(tx, *tx.verdict())

    def _look_ahead(self) -> Gen:
        """Fetch the next message now, while the server answers (if it is at hand at once)."""
        if self._fetch is None or self._ahead is not None:
            return
        try:
            item = yield Fetch(self._fetch, now=True)
        except SMTPError:
            raise
        except Exception as exc:
            self._ahead = ("error", exc)
            return
        if item is not LATER:
            self._ahead = ("item", item)

    def _flush(self) -> Gen:
        """Write the held end of data of the message in flight and read its verdict."""
        held, self._held = self._held, []
        if held:
            yield from self._write(held, "end", ends=self._flight)
        yield from self._settle()

    def _flush_quietly(self) -> Gen:
        try:
            yield from self._flush()
        except SMTPError:
            pass

    def _settle(self) -> Gen:
        """Read replies until the message in flight has its verdict; report it."""
        tx = self._flight
        if tx is None:
            return
        try:
            while tx.final is None:
                self._file((yield from self._reply()))
        except SMTPError as exc:
            self._flight = None
            self._report(tx, None, exc)
            raise
        self._flight = None
        self._report(tx, *tx.verdict())

    def _one(self, tx: _Transaction) -> Gen:
        """One transaction; on failure RSET when the connection still works, then raise."""
        try:
            yield from self._transaction(tx)
        except SMTPError as exc:
            if isinstance(exc, SMTPSourceError) and self.conn.state is State.BODY:
                self._broken = True  # mid-DATA the only way to abort is to hang up
            if self.usable and self._in_transaction:
                yield from self._reset_quietly()
            raise
        finally:
            self._in_transaction = False

    def _envelope(self, spec: MessageSpec) -> tuple[Mail, list[Rcpt], dict[int, str]]:
        ext = self.conn.extensions
        sender, recipients = spec.sender, list(spec.recipients)
        utf8 = spec.needs_smtputf8
        if utf8 and "SMTPUTF8" not in ext:
            if spec.utf8_headers:
                raise SMTPNotSupportedError("the message's headers are UTF-8 (RFC 6532) and the server does"
                                            " not offer SMTPUTF8: nothing was sent", phase="mail")
            sender = _ascii_address(sender, "sender")
            recipients = [_ascii_address(r, "recipient") for r in recipients]
            utf8 = False
        limit = self.conn.max_size
        if spec.size is not None and limit is not None and spec.size > limit:
            raise SMTPSizeError(
                f"the message is {spec.size} octets and the server accepts at most {limit} (SIZE):"
                " nothing was sent",
                phase="mail",
            )
        params = []
        if spec.size is not None and "SIZE" in ext:
            params.append(f"SIZE={spec.size}")
        # Declared when offered and the body may be 8-bit: a message() knows
        # (its parts are base64, quoted-printable or checked ASCII); a list of
        # chunks is checked; any other source is assumed 8-bit.
        if "8BITMIME" in ext and spec.eight_bit:
            params.append("BODY=8BITMIME")
        if utf8:
            params.append("SMTPUTF8")
        dsn = spec.dsn if "DSN" in ext else None
        if dsn is not None:
            params.extend(dsn.mail_params())
        mail = Mail(sender, tuple(params))
        rcpts: list[Rcpt] = []
        originals: dict[int, str] = {}
        for given, address in zip(spec.recipients, recipients):
            command = Rcpt(address, tuple(dsn.rcpt_params(address)) if dsn is not None else ())
            rcpts.append(command)
            originals[id(command)] = given  # looked up only with its own reply (which holds it)
        return mail, rcpts, originals

    def _transaction(self, tx: _Transaction) -> Gen:
        conn, s = self.conn, self.settings
        mail, rcpts, tx.originals = self._envelope(tx.spec)
        tx.wanted = len(set(tx.originals.values()))
        tx.pipelining = pipelining = s.pipelining and conn.pipelining
        tx.chunking = chunking = s.chunking and "CHUNKING" in conn.extensions
        chunks = _chunks(tx.spec.chunks, tx.spec.step)
        if type(chunks) is AsyncChunks and not self.awaits:
            raise SMTPSourceError(
                "an async iterable source needs the asyncio transport (smtpstream.aio): nothing was sent",
                phase="mail",
            )
        if chunking and self._flight is not None:
            yield from self._flush()  # DATA mode's message in flight first
        windowed = pipelining and chunking and s.window.limit > 1
        if self._window:
            # Room for this message, or (DATA mode, a window of 1 now) every verdict first.
            try:
                yield from self._settle_window(s.window.limit - 1 if windowed else 0)
            except SMTPError as exc:  # the earlier messages have it; this one was not sent
                raise SMTPServerDisconnected(f"the connection failed before this message was sent: {exc}",
                                             phase="mail") from exc
            windowed = windowed and s.window.limit > 1
        self._in_transaction = True  # from here on a failure needs RSET
        if pipelining:
            self._send(mail, tx)
            if tx.spec.check_lines:
                conn.limit_lines()
            for command in rcpts:
                self._send(command, tx)
            if chunking:
                # MAIL, RCPTs and the first BDAT (all of a small message) in one write.
                yield from self._upload_bdat(chunks, tx, pipelining=True, windowed=windowed)
                if tx.windowed:
                    return  # its verdict is read while the next messages go out
            else:
                self._send(Data(), tx)
                # The previous message's end of data, then this one's envelope: one write.
                held, self._held = self._held, []
                yield from self._write((*held, conn.data_to_send()), "mail", ends=self._flight if held else None)
                yield from self._look_ahead()  # building the next message overlaps the server's turn
                yield from self._settle()
                yield from self._drain()
                if tx.data is not None and tx.data.intermediate and (tx.hopeless()):
                    # RFC 2920 3.1: DATA accepted although nobody can receive it:
                    # end it empty, then report the refusals.
                    yield from self._write((self._end_body(tx),), "end")
                    yield from self._drain()
                tx.check()
                yield from self._upload_data(chunks, tx, hold=True)
        else:
            self._file((yield from self._exchange(mail, tx)))
            tx.check()
            if tx.spec.check_lines:
                conn.limit_lines()
            for command in rcpts:
                self._file((yield from self._exchange(command, tx)))
            tx.check()
            if chunking:
                yield from self._upload_bdat(chunks, tx, pipelining=False)
            else:
                self._file((yield from self._exchange(Data(), tx)))
                tx.check()
                yield from self._upload_data(chunks, tx, hold=False)
        tx.check()

    def _end_body(self, tx: _Transaction) -> bytes:
        end = self.conn.end_body()
        self._own(tx)
        tx.size = self.conn.body_size
        return end

    def _upload_data(self, chunks: Any, tx: _Transaction, hold: bool) -> Gen:
        """The body in DATA mode; with ``hold`` the end of data is kept for the next write."""
        conn = self.conn
        pull = chunks.pull if type(chunks) is AsyncChunks else None
        held: list[Any] = []  # small stuffed pieces waiting to be written together
        held_size = unpolled = 0
        while True:
            chunk = next(chunks, None) if pull is None else (yield Fetch(pull))
            if chunk is None:
                break
            out = conn.send_body(chunk)
            if not out:
                continue
            held.append(out)
            held_size += len(out)
            if held_size >= WRITE_SIZE:
                yield from self._write(held, "body")
                unpolled += held_size
                held, held_size = [], 0
                if unpolled >= POLL_EVERY:
                    unpolled = 0
                    yield from self._poll()  # an early reply here is the server giving up
        held.append(self._end_body(tx))
        if hold:
            self._held, self._flight = held, tx
            return
        yield from self._write(held, "body", ends=tx)
        self._file((yield from self._reply()))

    def _batch(self, chunks: Any) -> Gen:
        """``(chunks of at least BDAT_SIZE octets, False)``, or the rest and True at the end."""
        pull = chunks.pull if type(chunks) is AsyncChunks else None
        batch: list[Any] = []
        total = 0
        while total < BDAT_SIZE:
            chunk = next(chunks, None) if pull is None else (yield Fetch(pull))
            if chunk is None:
                return batch, True
            if not isinstance(chunk, bytes):
                # Framed only when the batch is full: a source that refills one
                # bytearray (the readinto pattern) would have overwritten it by then.
                chunk = bytes(chunk)
            batch.append(chunk)
            total += len(chunk)
        return batch, False

    def _upload_bdat(self, chunks: Any, tx: _Transaction, pipelining: bool, windowed: bool = False) -> Gen:
        """The body as BDAT commands of about BDAT_SIZE octets each, sent as soon as they
        are full; the rest (all of a small message) as ``BDAT n LAST`` -- ``BDAT 0 LAST``
        when the body ended exactly at a full one (RFC 3030 2).

        ``windowed``: an RSET follows BDAT LAST in the same write and the message
        joins the window, its replies unread."""
        conn = self.conn
        while True:
            batch, ended = yield from self._batch(chunks)
            if ended:
                break
            buffers = conn.send_bdat(batch)
            if not buffers:
                continue
            self._own(tx)
            yield from self._write(buffers, "body")
            if pipelining:
                yield from self._poll()
            else:
                self._file((yield from self._reply()))
            if tx.hopeless():
                yield from self._drain()
                return  # not LAST: the RSET after the error discards the chunks
        buffers = conn.send_bdat(batch, last=True)
        self._own(tx)
        tx.size = conn.body_size
        if windowed:
            # RSET after BDAT LAST: harmless after a success, a clean state after
            # a refusal (a server that kept the failed transaction open would
            # answer the next MAIL with 503).
            self._send(Rset())
            self._resets.add(id(conn.last_sent))
            buffers.append(conn.data_to_send())
            yield from self._write(buffers, "body", ends=tx)
            tx.windowed = self._windowing = True
            self._window.append(tx)
            return
        yield from self._write(buffers, "body", ends=tx)
        if pipelining:
            yield from self._look_ahead()  # the next message is built while the server answers
        yield from self._drain()

    # ---- reset and quit

    def _reset_quietly(self) -> Gen:
        try:
            yield from self._drain()
            reply = yield from self._exchange(Rset())
            if not reply.positive:
                self._broken = True  # the server's transaction state is unknown now
        except SMTPError:
            self._broken = True

    def reset(self) -> Gen:
        """RSET: abandon any transaction (RFC 5321 4.1.1.5)."""
        yield from self._drain()
        reply = yield from self._exchange(Rset())
        if not reply.positive:
            raise SMTPReplyError("RSET was refused", phase="rset", reply=reply)
        return reply

    def noop(self) -> Gen:
        """NOOP: check that the server is still there."""
        return (yield from self._exchange(Noop()))

    def quit(self) -> Gen:
        """QUIT; returns its reply or None. Never raises: a delivered message stays delivered."""
        if not self.usable:
            return None
        try:
            yield from self._drain()
            return (yield from self._exchange(Quit()))
        except SMTPError as exc:
            _debug("QUIT failed (ignored): %s", exc)
            self._broken = True
            return None


# ------------------------------------------------------------------ helpers


def _chunks(it: Any, step: Callable | None) -> Any:
    """The source's chunks; anything it raises becomes SMTPSourceError (with the cause).

    An async source (:class:`AsyncChunks`) is returned as it is: it is pulled
    through Fetch actions.
    """
    if type(it) is AsyncChunks:
        return it
    return _sync_chunks(it, step)


def _sync_chunks(it: Iterator[Any], step: Callable | None) -> Iterator[Any]:
    idle = 0  # chunks (or steps) in a row that gave no byte

    def stalled() -> SMTPSourceError:
        return SMTPSourceError(
            f"the message source gave no byte in {MAX_IDLE_PULLS} pulls in a row: given up", phase="body")

    if step is None:
        while True:
            try:
                chunk = next(it)
            except StopIteration:
                return
            except Exception as exc:
                raise SMTPSourceError(f"the message source failed: {exc!r}", phase="body") from exc
            if not isinstance(chunk, _BYTES_LIKE):
                raise bad_chunk(chunk)
            idle = 0 if len(chunk) else idle + 1
            if idle > MAX_IDLE_PULLS:
                raise stalled()
            yield chunk
        return
    box: list[Any] = []
    ended: list[bool] = []

    def sink(chunk: Any) -> int:
        (ended.append(True) if chunk is None else box.append(chunk))
        return 1

    while True:
        try:
            more = step(it, sink)
        except Exception as exc:
            raise SMTPSourceError(f"the message source failed: {exc!r}", phase="body") from exc
        for chunk in box:
            if not isinstance(chunk, _BYTES_LIKE):
                raise bad_chunk(chunk)
            yield chunk
        idle = 0 if any(map(len, box)) else idle + 1
        if idle > MAX_IDLE_PULLS:  # a step that never calls the sink would spin for ever
            raise stalled()
        box.clear()
        if not more or ended:
            return


def _ascii_address(address: str, what: str) -> str:
    """A non-ASCII address for a server without SMTPUTF8: IDNA for the domain, or an error."""
    if address.isascii():
        return address
    inner = check_address(address, what)[1:-1]
    local, at, domain = inner.rpartition("@")
    if not at or not local.isascii():
        raise SMTPNotSupportedError(
            f"the {what} {address!r} has a non-ASCII local part and the server does not offer"
            " SMTPUTF8 (RFC 6531): nothing was sent",
            phase="mail",
        )
    try:
        ascii_domain = to_ascii(domain)
    except UnicodeError:
        raise SMTPNotSupportedError(
            f"the {what} {address!r} has a domain that cannot be IDNA-encoded and the server"
            " does not offer SMTPUTF8",
            phase="mail",
        ) from None
    return f"{local}@{ascii_domain}"
