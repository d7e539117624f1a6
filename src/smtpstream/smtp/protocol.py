"""The SMTP client protocol engine: bytes and commands in, bytes and events out, no I/O.

This module imports no socket, ssl, asyncio or time: a transport (blocking
sockets in ``blocking.py``, asyncio later) moves the bytes. The shape is
h11's::

    conn = ClientConnection()
    conn.receive_data(sock.recv(65536))          # b"" means the server closed
    while (event := conn.next_event()) is not NEED_DATA:
        ...                                       # a Reply, or ConnectionClosed
    conn.send(Ehlo("client.example"))            # buffered ...
    sock.sendall(conn.data_to_send())            # ... and written as one group

Each command sent is queued (a FIFO); each reply parsed pairs with the
oldest queued command and names it in ``Reply.command``. That is what makes
pipelining safe: MAIL, every RCPT and DATA can go in one write and the
replies, however the segments split them, come back paired in order.

States and transitions are in ``_state.py`` (one table). Errors say whose
fault they are: :class:`LocalProtocolError` (ours: raised before anything is
buffered) and :class:`RemoteProtocolError` (the server's: the connection is
then in the sticky ``ERROR`` state).

The body: in DATA mode, :meth:`ClientConnection.send_body` passes each chunk
through :class:`~smtpstream.filters.NormalizeStuffer` (bare CR / LF become
CRLF, a ``.`` after any line break is doubled: the SMTP smuggling defence),
and :meth:`end_body` sends ``.\\r\\n`` when the output already ends in CRLF,
else ``\\r\\n.\\r\\n`` (LuaSocket always adds the CRLF: spec 5.4 item 5). In
BDAT mode (RFC 3030) :meth:`send_bdat` frames already-normalised chunks with
their length; nothing is stuffed.
"""
from __future__ import annotations

from collections import deque

from .. import filters
from .._lazyre import Pattern
from ._value import Value
from ._state import (
    COMPLETES,
    GROUP_ENDERS,
    NEUTRAL,
    NEW_TRANSACTION,
    OUTCOMES,
    REPLY,
    SEND,
    TLS_STARTED,
    Outcome,
    State,
    Verb,
    outcome_of,
)
from .errors import LocalProtocolError, RemoteProtocolError, SMTPProtocolError
from .linelimit import LineLimit
from .reply import Reply, ReplyParser, parse_ehlo

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: typing takes milliseconds to import
    from typing import ClassVar, Iterable, Sequence

__all__ = [
    "ClientConnection",
    "NEED_DATA",
    "ConnectionClosed",
    "Command",
    "Greeting",
    "Ehlo",
    "Helo",
    "StartTLS",
    "Auth",
    "AuthResponse",
    "Mail",
    "Rcpt",
    "Data",
    "EndOfData",
    "Bdat",
    "Rset",
    "Noop",
    "Quit",
    "State",
    "Verb",
    "check_address",
    "check_domain",
    "check_param",
]

Buffer = bytes | bytearray | memoryview


class _NeedData:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NEED_DATA"


#: Returned by :meth:`ClientConnection.next_event` when more bytes are needed.
NEED_DATA = _NeedData()


class ConnectionClosed(Value):
    """The server closed the connection; ``pending`` lists the commands left unanswered."""

    __slots__ = _fields = ("pending",)
    pending: tuple

    def __init__(self, pending: tuple = ()) -> None:
        object.__setattr__(self, "pending", pending)


# ------------------------------------------------------------------ argument checks

# C0 controls, DEL and C1 controls: CR, LF and NUL would inject commands or
# cut the line; the others have no business in an SMTP argument either.
_CONTROL = Pattern(r"[\x00-\x1f\x7f-\x9f]")
_PARAM = Pattern(r"[A-Za-z0-9][A-Za-z0-9-]*(?:=[^\x00-\x20=\x7f]+)?\Z")
_DOMAIN = Pattern(r"(?:\[[^\[\]\s]+\]|[^\s\[\]<>@]+)\Z")
_BASE64 = Pattern(r"[A-Za-z0-9+/]*={0,2}\Z")
_SPACE = Pattern(r"\s")
_QUOTED = Pattern(r'"(?:[^"\\]|\\.)*"')
_MECHANISM = Pattern(r"[A-Z0-9_-]{1,20}")


def _refuse_controls(value: str, what: str) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be str, got {type(value).__name__}")
    found = _CONTROL.search(value)
    if found:
        raise LocalProtocolError(
            f"{what} contains the control character {found.group()!r} (CR, LF and NUL would inject"
            " commands): refused before anything was sent"
        )


def check_address(address: str, what: str = "address", *, null_ok: bool = False) -> str:
    """Validate a mailbox and return its SMTP path: ``a@b`` and ``<a@b>`` give ``<a@b>``.

    Refused: control characters (CR, LF, NUL...), ``<``/``>`` inside, white
    space outside a quoted local part, and the empty address unless
    ``null_ok`` (the null reverse-path ``<>`` of MAIL FROM).
    """
    if type(address) is str:
        # Remembered: a bulk send checks the same sender, and each recipient
        # twice (its envelope, then its RCPT), for every message.
        key = (address, what, null_ok)
        path = _CHECKED.get(key)
        if path is None:
            path = _check_address(address, what, null_ok)
            if len(_CHECKED) >= _CHECKED_MAX:
                _CHECKED.clear()
            _CHECKED[key] = path
        return path
    return _check_address(address, what, null_ok)


_CHECKED: dict[tuple[str, str, bool], str] = {}
_CHECKED_MAX = 1024


def _check_address(address: str, what: str, null_ok: bool) -> str:
    _refuse_controls(address, what)
    inner = address[1:-1] if address.startswith("<") and address.endswith(">") else address
    if not inner:
        if null_ok:
            return "<>"
        raise LocalProtocolError(f"{what} is empty")
    if "<" in inner or ">" in inner:
        raise LocalProtocolError(f"{what} {address!r} has '<' or '>' inside: give a bare address")
    rest = inner
    if inner.startswith('"'):  # a quoted local part may hold spaces (RFC 5321 4.1.2)
        end = _QUOTED.match(inner)
        if end is None:
            raise LocalProtocolError(f"{what} {address!r} has an unterminated quoted local part")
        rest = inner[end.end():]
    if _SPACE.search(rest):
        raise LocalProtocolError(f"{what} {address!r} contains white space")
    return f"<{inner}>"


def check_domain(domain: str) -> str:
    """Validate the EHLO/HELO argument: a domain or an address literal, no spaces or controls."""
    _refuse_controls(domain, "EHLO domain")
    if not _DOMAIN.match(domain):
        raise LocalProtocolError(f"EHLO domain {domain!r} is not a domain or an address literal")
    return domain


def check_param(param: str) -> str:
    """Validate one ESMTP parameter, ``KEYWORD`` or ``KEYWORD=value`` (RFC 5321 4.1.2)."""
    _refuse_controls(param, "ESMTP parameter")
    if not _PARAM.match(param):
        raise LocalProtocolError(f"malformed ESMTP parameter {param!r}")
    return param


# ------------------------------------------------------------------ commands


class Command(Value):
    """Base class: a command knows its verb and its wire form. Frozen values (smtp/_value.py)."""

    __slots__ = ()
    verb: ClassVar[Verb]

    def encode(self) -> bytes:  # pragma: no cover - every command overrides it
        raise NotImplementedError


class Greeting(Command):
    """Not sent: the FIFO entry the server's first reply pairs with."""

    __slots__ = ()
    verb: ClassVar[Verb] = Verb.GREETING


class Ehlo(Command):
    __slots__ = _fields = ("domain",)
    domain: str
    verb: ClassVar[Verb] = Verb.EHLO

    def __init__(self, domain: str) -> None:
        object.__setattr__(self, "domain", check_domain(domain))

    def encode(self) -> bytes:
        return b"EHLO " + self.domain.encode("utf-8") + b"\r\n"


class Helo(Command):
    __slots__ = _fields = ("domain",)
    domain: str
    verb: ClassVar[Verb] = Verb.HELO

    def __init__(self, domain: str) -> None:
        object.__setattr__(self, "domain", check_domain(domain))

    def encode(self) -> bytes:
        return b"HELO " + self.domain.encode("utf-8") + b"\r\n"


class StartTLS(Command):
    __slots__ = ()
    verb: ClassVar[Verb] = Verb.STARTTLS

    def encode(self) -> bytes:
        return b"STARTTLS\r\n"


class Auth(Command):
    """``AUTH mechanism [initial-response]``; the response is secret and never shown."""

    __slots__ = _fields = ("mechanism", "initial_response")
    _shown = ("mechanism",)
    mechanism: str
    initial_response: str | None
    verb: ClassVar[Verb] = Verb.AUTH

    def __init__(self, mechanism: str, initial_response: str | None = None) -> None:
        if not _MECHANISM.fullmatch(mechanism):
            raise LocalProtocolError(f"malformed SASL mechanism name {mechanism!r}")
        if initial_response is not None:
            _check_sasl(initial_response, allow_equals=True)
        object.__setattr__(self, "mechanism", mechanism)
        object.__setattr__(self, "initial_response", initial_response)

    def encode(self) -> bytes:
        line = "AUTH " + self.mechanism
        if self.initial_response is not None:
            # RFC 4954 4: an empty initial response is sent as "=".
            line += " " + (self.initial_response or "=")
        return line.encode("ascii") + b"\r\n"


class AuthResponse(Command):
    """A base64 answer to a 334 challenge (``*`` cancels). Secret: never shown."""

    __slots__ = _fields = ("response",)
    _shown = ()
    response: str
    verb: ClassVar[Verb] = Verb.AUTH_RESPONSE

    def __init__(self, response: str) -> None:
        if response != "*":
            _check_sasl(response, allow_equals=False)
        object.__setattr__(self, "response", response)

    def encode(self) -> bytes:
        return self.response.encode("ascii") + b"\r\n"


def _check_sasl(data: str, allow_equals: bool) -> None:
    # The message names no part of the data: it may be a credential.
    if not isinstance(data, str) or not _BASE64.match(data) or (data == "=" and not allow_equals):
        raise LocalProtocolError("a SASL response must be base64 text (contents not shown)")


class Mail(Command):
    """``MAIL FROM:<address> params``; ``address`` may be "" for the null sender.
    ``path`` is the checked ``<address>`` (not compared)."""

    __slots__ = _fields = ("address", "params", "path")
    __match_args__ = ("address", "params")
    address: str
    params: tuple[str, ...]
    path: str
    verb: ClassVar[Verb] = Verb.MAIL

    def __init__(self, address: str, params: Iterable[str] = ()) -> None:
        object.__setattr__(self, "path", check_address(address, "sender", null_ok=True))
        object.__setattr__(self, "address", address)
        object.__setattr__(self, "params", tuple(check_param(p) for p in params))

    def encode(self) -> bytes:
        return _with_params("MAIL FROM:" + self.path, self.params)


class Rcpt(Command):
    """``RCPT TO:<address> params``. ``path`` is the checked ``<address>`` (not compared)."""

    __slots__ = _fields = ("address", "params", "path")
    __match_args__ = ("address", "params")
    address: str
    params: tuple[str, ...]
    path: str
    verb: ClassVar[Verb] = Verb.RCPT

    def __init__(self, address: str, params: Iterable[str] = ()) -> None:
        object.__setattr__(self, "path", check_address(address, "recipient"))
        object.__setattr__(self, "address", address)
        object.__setattr__(self, "params", tuple(check_param(p) for p in params))

    def encode(self) -> bytes:
        return _with_params("RCPT TO:" + self.path, self.params)


def _with_params(line: str, params: Sequence[str]) -> bytes:
    if params:
        line += " " + " ".join(params)
    return line.encode("utf-8") + b"\r\n"


class Data(Command):
    __slots__ = ()
    verb: ClassVar[Verb] = Verb.DATA

    def encode(self) -> bytes:
        return b"DATA\r\n"


class EndOfData(Command):
    """The ``.`` line ending DATA (made by :meth:`ClientConnection.end_body`)."""

    __slots__ = ()
    verb: ClassVar[Verb] = Verb.END_DATA


class Bdat(Command):
    """``BDAT size [LAST]`` (made by :meth:`ClientConnection.send_bdat`)."""

    __slots__ = _fields = ("size", "last")
    size: int
    last: bool

    def __init__(self, size: int, last: bool = False) -> None:
        object.__setattr__(self, "size", size)
        object.__setattr__(self, "last", last)

    @property
    def verb(self) -> Verb:  # type: ignore[override]
        return Verb.BDAT_LAST if self.last else Verb.BDAT

    def encode(self) -> bytes:
        return b"BDAT %d%s\r\n" % (self.size, b" LAST" if self.last else b"")


class Rset(Command):
    __slots__ = ()
    verb: ClassVar[Verb] = Verb.RSET

    def encode(self) -> bytes:
        return b"RSET\r\n"


class Noop(Command):
    __slots__ = ()
    verb: ClassVar[Verb] = Verb.NOOP

    def encode(self) -> bytes:
        return b"NOOP\r\n"


class Quit(Command):
    __slots__ = ()
    verb: ClassVar[Verb] = Verb.QUIT

    def encode(self) -> bytes:
        return b"QUIT\r\n"


# ------------------------------------------------------------------ the engine


class ClientConnection:
    """The client side of one SMTP connection, as a state machine without I/O.

    Attributes worth reading: ``state`` (a :class:`State`), ``extensions``
    (EHLO keywords, upper case, -> parameter string; empty after HELO),
    ``pending`` (commands awaiting replies, oldest first), ``body_size``
    (octets of message data written in the current/last body).
    """

    def __init__(self) -> None:
        self._state = State.CONNECTED
        self._pending: deque[Command] = deque([Greeting()])
        self._epochs: deque[int] = deque([0])  # the transaction each pending command belongs to
        self._epoch = 0
        self._parser = ReplyParser()
        self._out = bytearray()
        self._eof = False
        self._closed_reported = False
        self._error: SMTPProtocolError | None = None
        self._stuffer = None  # NormalizeStuffer in DATA mode
        self._normalizer = None  # EOLNormalizer in BDAT mode
        self._bdat_tail = b""  # the last 2 bytes of BDAT data so far
        self._lines: LineLimit | None = None  # this transaction's line check, if asked for
        self.extensions: dict[str, str] = {}
        self.esmtp = False
        self.body_size = 0

    # ---- inspection

    @property
    def state(self) -> State:
        return self._state

    @property
    def pending(self) -> tuple[Command, ...]:
        return tuple(self._pending)

    @property
    def awaited(self) -> Command | None:
        """The command whose reply comes next (the oldest unanswered), if any."""
        return self._pending[0] if self._pending else None

    @property
    def last_sent(self) -> Command | None:
        """The command queued last (a body's end of data and BDAT included), if unanswered."""
        return self._pending[-1] if self._pending else None

    @property
    def pipelining(self) -> bool:
        return "PIPELINING" in self.extensions

    @property
    def auth_mechanisms(self) -> frozenset[str]:
        return frozenset(self.extensions.get("AUTH", "").upper().split())

    @property
    def max_size(self) -> int | None:
        """The server's SIZE limit in octets; None when it declares none (or 0: no limit)."""
        value = self.extensions.get("SIZE", "")
        return int(value) if value.isdigit() and int(value) > 0 else None

    # ---- receiving

    def receive_data(self, data: Buffer) -> None:
        """Buffer bytes from the server; ``b""`` means it closed the connection."""
        if self._eof:
            if data:
                raise LocalProtocolError("received data after the end of the connection")
            return
        if not data:
            self._eof = True
            return
        if self._state is State.TLS_HANDSHAKE:
            # RFC 3207 5: nothing may arrive in clear between 220 and the
            # handshake; bytes here were injected (CVE-2011-0411 class).
            self._fail(RemoteProtocolError("data arrived in clear after the STARTTLS go-ahead"))
        self._parser.feed(data)

    def next_event(self) -> Reply | ConnectionClosed | _NeedData:
        """The next :class:`Reply` (paired with its command), :class:`ConnectionClosed`, or NEED_DATA."""
        if self._error is not None:
            raise self._error
        try:
            parsed = self._parser.next_reply()
        except RemoteProtocolError as exc:
            self._fail(exc)
        if parsed is None:
            if self._eof:
                if self._closed_reported:
                    return NEED_DATA
                self._closed_reported = True
                pending = tuple(self._pending)
                self._pending.clear()
                self._epochs.clear()
                self._state = State.CLOSED
                return ConnectionClosed(pending)
            return NEED_DATA
        code, lines = parsed
        if not self._pending:
            if code == 421:  # RFC 5321 3.8: the server may say 421 and close at any time
                self._state = State.CLOSED
                return Reply(code, lines, None)
            self._fail(RemoteProtocolError(f"unsolicited reply {code} {' / '.join(lines)[:200]!r}"))
        command = self._pending.popleft()
        epoch = self._epochs.popleft()
        reply = Reply(code, lines, command)
        self._on_reply(reply, stale=epoch != self._epoch)
        return reply

    def _on_reply(self, reply: Reply, stale: bool) -> None:
        verb = reply.command.verb
        outcome = outcome_of(reply.code)
        if outcome not in OUTCOMES[verb]:
            self._fail(RemoteProtocolError(f"reply {reply.code} cannot answer {verb.value}"))
        completes = COMPLETES.get(verb)
        if outcome is not Outcome.NO and completes is not None and reply.code not in completes:
            self._fail(RemoteProtocolError(
                f"reply {reply.code} cannot answer {verb.value}: only {'/'.join(map(str, sorted(COMPLETES[verb])))}"
                " completes it (RFC 5321 4.3.2)"))
        if reply.code == 421:
            self._state = State.CLOSED
            return
        if verb in NEUTRAL or stale:
            return
        key = (self._state, verb, outcome)
        if key not in REPLY:  # pragma: no cover - a hole in the table is our bug
            self._fail(LocalProtocolError(f"no transition for a {verb.value} reply in state {self._state.value}"))
        following = REPLY[key]
        if following is not None:
            self._state = following
        if verb in (Verb.EHLO, Verb.HELO) and outcome is Outcome.OK:
            self.esmtp = verb is Verb.EHLO
            self.extensions = parse_ehlo(reply.lines) if self.esmtp else {}
        if following is State.TLS_HANDSHAKE and self._parser.buffered:
            self._fail(RemoteProtocolError("data arrived in clear after the STARTTLS go-ahead"))

    def _fail(self, exc: SMTPProtocolError):
        self._state = State.ERROR
        self._error = exc
        raise exc

    # ---- sending commands

    def send(self, command: Command) -> None:
        """Queue a command: its bytes go to :meth:`data_to_send`, its reply will pair with it."""
        if not isinstance(command, Command) or isinstance(command, (Greeting, EndOfData, Bdat)):
            raise TypeError(f"not a command one sends: {command!r} (use end_body() / send_bdat())")
        self._advance(command)
        self._out += command.encode()

    def data_to_send(self) -> bytes:
        """The bytes of every command queued since the last call (one write)."""
        out = bytes(self._out)
        self._out.clear()
        return out

    def _advance(self, command: Command) -> None:
        verb = command.verb
        nxt = self._check_send(verb)
        if verb in NEW_TRANSACTION:
            self._epoch += 1
        if verb is Verb.MAIL:  # no body filter state carries over
            self._stuffer = self._normalizer = None
            self._bdat_tail = b""
            self._lines = None
            self.body_size = 0
        self._state = nxt
        self._pending.append(command)
        self._epochs.append(self._epoch)

    def _check_send(self, verb: Verb) -> State:
        """The state sending ``verb`` leads to, or LocalProtocolError."""
        if self._error is not None:
            raise LocalProtocolError(f"cannot send {verb.value}: the connection is in error")
        nxt = SEND.get((self._state, verb))
        if nxt is None:
            raise LocalProtocolError(f"{verb.value} is not allowed in state {self._state.value}")
        if self._pending:
            last = self._pending[-1].verb
            if last in GROUP_ENDERS:
                raise LocalProtocolError(f"{verb.value} sent before the reply to {last.value} (RFC 2920 3.1)")
            if not self.pipelining:
                raise LocalProtocolError(
                    f"{verb.value} sent before the reply to {last.value}: the server did not offer PIPELINING"
                )
        return nxt

    def tls_started(self) -> None:
        """The transport finished the TLS handshake: forget what was said in clear (RFC 3207 4.2)."""
        nxt = TLS_STARTED.get(self._state)
        if nxt is None:
            raise LocalProtocolError(f"tls_started() in state {self._state.value}")
        self._state = nxt
        self.extensions = {}
        self.esmtp = False

    def limit_lines(self) -> None:
        """Check the current transaction's body against RFC 5321's 1000-octet line limit.

        A longer line raises :class:`~smtpstream.smtp.errors.SMTPSourceError`
        from :meth:`send_body` or :meth:`end_body` (in state BODY: only hanging up
        aborts DATA now), or from :meth:`send_bdat` before the BDAT is framed.
        For sources whose lines may be long: ``message()`` output never needs it.
        """
        if self._state not in (State.MAIL, State.RCPT):
            raise LocalProtocolError(f"limit_lines() belongs after MAIL, not in state {self._state.value}")
        self._lines = LineLimit()

    # ---- the body, DATA mode

    def send_body(self, chunk: Buffer) -> bytes:
        """Normalise and dot-stuff one body chunk; return the bytes to write now (maybe b"")."""
        if self._state is not State.BODY:
            raise LocalProtocolError(f"body data is not allowed in state {self._state.value}")
        stuffer = self._stuffer
        if stuffer is None:
            stuffer = self._stuffer = filters.NormalizeStuffer()
        kind = type(chunk)
        if kind is filters.StuffedLines and stuffer.state == 2 and stuffer.eol_state == 0 and chunk.holds():
            # Whole lines from a line start, none beginning with ".": the stuffer
            # would give them back unchanged and end where it is now.
            if self._lines is not None:
                self._lines(chunk, stuffed=True)
            self.body_size += len(chunk)
            return chunk
        if kind is filters.CleanLines and stuffer.eol_state == 0 and chunk.holds():
            # Base64 lines: the stuffer would give them back unchanged. Skip the
            # scan and only restart the stuffer in the state the chunk leaves.
            if chunk:
                self._stuffer = stuffer = filters.NormalizeStuffer()  # at a line start
                if not chunk.endswith(b"\r\n"):
                    stuffer(chunk[-1:])  # mid-line: one byte of the line puts it there
                self.body_size += len(chunk)
            if self._lines is not None:
                self._lines(chunk, stuffed=False)  # base64 lines need no stuffing
            return chunk
        out = stuffer(chunk)
        if self._lines is not None:
            self._lines(out, stuffed=True)
        self.body_size += len(out)
        return out

    def end_body(self) -> bytes:
        """The end of data: ``.\\r\\n`` if the body ended with CRLF (or was empty), else ``\\r\\n.\\r\\n``."""
        if self._state is not State.BODY:
            raise LocalProtocolError(f"end of data is not allowed in state {self._state.value}")
        stuffer = self._stuffer
        self._stuffer = None
        if stuffer is None:  # empty body: the stuffer starts "at a line start"
            ends_with_crlf = True
        else:
            tail = stuffer(None)
            self.body_size += len(tail)
            ends_with_crlf = stuffer.state == 2
        if self._lines is not None:
            self._lines.end()
        self._advance(EndOfData())
        return b".\r\n" if ends_with_crlf else b"\r\n.\r\n"

    # ---- the body, BDAT mode (RFC 3030)

    def send_bdat(self, chunks: Iterable[Buffer], last: bool = False) -> list[Buffer]:
        """Frame ``chunks`` (line breaks normalised to CRLF, never stuffed) as one BDAT.

        With ``last`` a message whose last line lacks its CRLF gets one, as in DATA mode.

        Returns the buffers to write, in order: any queued commands plus the
        ``BDAT n`` line, then the chunks themselves, uncopied. A non-last BDAT
        of zero octets is skipped (returns ``[]``).
        """
        self._check_send(Verb.BDAT_LAST if last else Verb.BDAT)
        if self._normalizer is None:
            self._normalizer = filters.EOLNormalizer()
        normalizer = self._normalizer
        parts = [p for p in map(normalizer, chunks) if p]
        if parts:
            self._bdat_tail = (self._bdat_tail + parts[-1][-2:])[-2:]
        if last:
            parts.append(normalizer(None))  # eol() emits nothing here; the filter contract wants the call
            self._normalizer = None
            # End the last line as DATA's terminator would (".\r\n" after the
            # body's own CRLF, else "\r\n.\r\n"): the server gets the same
            # message whichever way it was sent.
            if (self.body_size or any(parts)) and self._bdat_tail != b"\r\n":
                parts.append(b"\r\n")
            parts = [p for p in parts if p]
        if self._lines is not None:
            for part in parts:
                self._lines(part, stuffed=False)
            if last:
                self._lines.end()
        size = sum(map(len, parts))
        if not size and not last:
            return []
        command = Bdat(size, last)
        self._advance(command)
        self.body_size += size
        self._out += command.encode()
        return [self.data_to_send(), *parts]
