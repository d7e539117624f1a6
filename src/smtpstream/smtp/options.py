"""The options of a send: LuaSocket's fields checked, the envelope, DSN, timeouts, the result.

``send(mailt)`` takes one table (or keywords) mixing connection fields and
message fields; :func:`split_fields` separates them, :func:`connection_settings`
and :func:`message_spec` check them *before anything is sent* (a CR, LF or
NUL in an address never reaches a socket). :class:`SendResult` is what a
delivered message returns. No I/O here.
"""
from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterable, Mapping

from .. import filters, ltn12
from ..defaults import lookup
from ..ltn12._common import not_a_chunk
from . import auth, emailmsg
from ._value import Value
from .errors import LocalProtocolError, SMTPSourceError, bind_smtplib
from .protocol import _refuse_controls, check_address, check_domain
from .reply import Reply
from .window import Window, window_of

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: typing takes milliseconds to import
    from typing import Any, Callable, Iterator

    from ..message import MessageSource

__all__ = [
    "DEFAULT_TIMEOUTS",
    "Settings",
    "MessageSpec",
    "SendResult",
    "DSN",
    "connection_settings",
    "message_spec",
    "split_fields",
    "default_domain",
]

#: Seconds per phase. RFC 5321 4.5.3.2: initial 220 greeting 5 min, MAIL 5 min,
#: RCPT 5 min, DATA initiation 2 min, data block 3 min (measured per write,
#: i.e. as inactivity), DATA termination 10 min. EHLO/AUTH/RSET get the
#: 5 minutes of an ordinary command; QUIT only 30 s, since the mail is
#: already delivered by then and a slow QUIT should not hold the caller.
DEFAULT_TIMEOUTS: dict[str, float] = {
    "connect": 300.0,
    "greeting": 300.0,
    "ehlo": 300.0,
    "helo": 300.0,
    "starttls": 300.0,
    "auth": 300.0,
    "mail": 300.0,
    "rcpt": 300.0,
    "data": 120.0,
    "body": 180.0,
    "end": 600.0,
    "rset": 300.0,
    "noop": 300.0,
    "quit": 30.0,
}


# ------------------------------------------------------------------ settings and fields

STARTTLS_POLICIES = ("required", "opportunistic", "off")

#: LuaSocket 3.1's ``tlsmode`` as this module's ``tls`` and ``starttls`` settings.
TLSMODES: dict[str, tuple[bool, str]] = {
    "none": (False, "off"),  # clear text, STARTTLS never tried
    "auto": (False, "opportunistic"),  # STARTTLS when the server offers it
    "starttls": (False, "required"),  # STARTTLS or nothing
    "tls": (True, "off"),  # implicit TLS from the first byte (port 465)
}

CONNECTION_FIELDS = frozenset({
    "server", "port", "domain", "create", "timeout", "tls", "tlsmode", "starttls", "ssl_context",
    "cafile", "capath", "verify", "user", "password", "token", "auth", "chunking", "pipelining", "window",
})
MESSAGE_FIELDS = frozenset({"from", "rcpt", "source", "step", "dsn", "size", "dkim"})


class Settings(Value):
    """Connection settings (see ``smtp.send`` for each field); the credentials are never shown.

    ``timeouts`` defaults to a copy of :data:`DEFAULT_TIMEOUTS`, ``window``
    to a new :class:`~smtpstream.smtp.window.Window`.
    """

    _fields = ("server", "port", "domain", "create", "timeouts", "tls", "starttls", "ssl_context", "user",
               "password", "token", "auth", "chunking", "pipelining", "window")
    _shown = ("server", "port", "domain", "create", "timeouts", "tls", "starttls", "ssl_context", "auth",
              "chunking", "pipelining", "window")
    server: str
    port: int
    domain: str | None
    create: Callable[[], Any] | None
    timeouts: Mapping[str, float]
    tls: bool
    starttls: str
    ssl_context: Any
    user: str | None
    password: str | None
    token: str | None
    auth: Any
    chunking: bool
    pipelining: bool
    #: Messages in flight per connection in BDAT mode (smtp/window.py); shared, it adapts.
    window: Window

    def __init__(self, server: str = "localhost", port: int = 25, domain: str | None = None,
                 create: Callable[[], Any] | None = None, timeouts: Mapping[str, float] | None = None,
                 tls: bool = False, starttls: str = "opportunistic", ssl_context: Any = None,
                 user: str | None = None, password: str | None = None, token: str | None = None,
                 auth: Any = None, chunking: bool = True, pipelining: bool = True,
                 window: Window | None = None) -> None:
        object.__setattr__(self, "__dict__", {
            "server": server, "port": port, "domain": domain, "create": create,
            "timeouts": dict(DEFAULT_TIMEOUTS) if timeouts is None else timeouts, "tls": tls,
            "starttls": starttls, "ssl_context": ssl_context, "user": user, "password": password,
            "token": token, "auth": auth, "chunking": chunking, "pipelining": pipelining,
            "window": Window() if window is None else window})

    @property
    def credentials(self) -> bool:
        return self.user is not None and (self.password is not None or self.token is not None)


def split_fields(mailt: Mapping | None, fields: Mapping[str, Any]) -> tuple[dict, dict]:
    """LuaSocket's table and keyword fields, merged (keywords win) and split into
    connection fields and message fields. ``from_`` is accepted for ``from`` (in both)."""
    merged: dict[str, Any] = {}
    if mailt is not None:
        if not isinstance(mailt, Mapping):
            raise TypeError(f"send: the mail table must be a mapping, got {type(mailt).__name__}")
        merged.update(mailt)
        if "from_" in merged:  # a send_many mapping written like the keywords
            merged["from"] = merged.pop("from_")
    for key, value in fields.items():
        merged["from" if key == "from_" else key] = value
    unknown = sorted(set(merged) - CONNECTION_FIELDS - MESSAGE_FIELDS)
    if unknown:
        raise TypeError(f"send: unknown field(s) {unknown}")
    conn = {k: v for k, v in merged.items() if k in CONNECTION_FIELDS}
    msg = {k: v for k, v in merged.items() if k in MESSAGE_FIELDS}
    return conn, msg


def _timeouts(value: Any) -> dict[str, float]:
    out = dict(DEFAULT_TIMEOUTS)
    if value is None:
        return out
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - set(out))
        if unknown:
            raise ValueError(f"unknown timeout phase(s) {unknown}; phases: {sorted(out)}")
        items = value.items()
    else:
        items = ((phase, value) for phase in out)
    for phase, seconds in items:
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 < seconds < math.inf:
            raise ValueError(f"timeout for {phase!r} must be a positive number of seconds, got {seconds!r}")
        out[phase] = float(seconds)
    return out


def connection_settings(fields: Mapping[str, Any]) -> Settings:
    """Check connection fields and fill in the defaults."""
    bind_smtplib()  # before the first connection: handlers for smtplib's errors catch ours
    unknown = sorted(set(fields) - CONNECTION_FIELDS)
    if unknown:
        raise TypeError(f"unknown connection field(s) {unknown}")
    # smtp.SERVER, PORT, DOMAIN and TIMEOUT stand in for missing fields, read now.
    server = fields.get("server") or lookup("SERVER")
    if not isinstance(server, str):
        raise TypeError(f"server must be str, got {type(server).__name__}")
    tls, starttls = _tls_fields(fields)
    if tls not in (None, True, False, "implicit"):
        raise ValueError(f"tls must be True/'implicit' (TLS from the start, port 465) or False, got {tls!r}")
    port = fields.get("port")
    if port is None and not tls:
        port = lookup("PORT")
    if tls is None:
        tls = port == 465
    tls = bool(tls)
    if port is None:
        port = 465  # implicit TLS; smtp.PORT is the clear-text/STARTTLS port
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError(f"port must be an int in 1..65535, got {port!r}")
    domain = lookup("DOMAIN") if fields.get("domain") is None else fields["domain"]
    if domain is not None:
        check_domain(domain)
    user, password, token = fields.get("user"), fields.get("password"), fields.get("token")
    for name, value in (("user", user), ("password", password), ("token", token)):
        if value is not None and not isinstance(value, str):
            raise TypeError(f"{name} must be str, got {type(value).__name__}")  # value never shown
    if password is not None and token is not None:
        raise ValueError("give either password or token, not both")
    credentials = user is not None and (password is not None or token is not None)
    if starttls is None:
        starttls = "required" if credentials else "opportunistic"
    if starttls not in STARTTLS_POLICIES:
        raise ValueError(f"starttls must be one of {STARTTLS_POLICIES}, got {starttls!r}")
    create = fields.get("create")
    if create is not None and not callable(create):
        raise TypeError("create must be a callable returning an unconnected socket")
    context = fields.get("ssl_context")
    if context is not None and not all(hasattr(context, a) for a in ("wrap_socket", "check_hostname")):
        raise TypeError(f"ssl_context must be an ssl.SSLContext, got {type(context).__name__}")
    if context is None:
        context = _tls_context(fields.get("cafile"), fields.get("capath"), fields.get("verify"))
    wanted = fields.get("auth")
    if wanted is not None:
        auth.choose((), secure=True, token=False, wanted=wanted)  # checks the names
    return Settings(
        server=server,
        port=port,
        domain=domain,
        create=create,
        timeouts=_timeouts(lookup("TIMEOUT") if fields.get("timeout") is None else fields["timeout"]),
        tls=tls,
        starttls=starttls,
        ssl_context=context,
        user=user,
        password=password,
        token=token,
        auth=wanted,
        chunking=bool(fields.get("chunking", True)),
        pipelining=bool(fields.get("pipelining", True)),
        window=window_of(fields.get("window")),
    )


def _tls_context(cafile: Any, capath: Any, verify: Any) -> Any:
    """The context ``cafile``, ``capath`` and ``verify`` ask for (None: the default one).

    Built here, before connecting, so that a missing or unreadable CA file is
    an :class:`~smtpstream.smtp.errors.SMTPTLSError` before any byte is sent.
    """
    if verify is None:
        verify = True
    if not isinstance(verify, bool):
        raise TypeError(f"verify must be True or False, got {verify!r}")
    for name, value in (("cafile", cafile), ("capath", capath)):
        if value is not None and not isinstance(value, (str, os.PathLike)):
            raise TypeError(f"{name} must be a path, got {type(value).__name__}")
    if cafile is None and capath is None and verify:
        return None  # the transports make the default context (the system's CAs)
    from .tlscontext import client_context  # ssl only for those who ask: the engine stays I/O-free

    return client_context(None if cafile is None else os.fspath(cafile),
                          None if capath is None else os.fspath(capath), verify)


def _tls_fields(fields: Mapping[str, Any]) -> tuple[Any, Any]:
    """``tls`` and ``starttls`` as given, or as LuaSocket 3.1's ``tlsmode`` names them."""
    mode = fields.get("tlsmode")
    if mode is None:
        return fields.get("tls"), fields.get("starttls")
    if fields.get("tls") is not None or fields.get("starttls") is not None:
        raise ValueError("give tlsmode or tls/starttls, not both")
    if mode not in TLSMODES:
        raise ValueError(f"tlsmode must be one of {sorted(TLSMODES)}, got {mode!r}")
    return TLSMODES[mode]


def created_socket(create: Callable[[], Any]) -> Any:
    """The socket ``create()`` makes (LuaSocket's ``socket.tcp``), or TypeError saying what it gave."""
    sock = create()
    if not all(hasattr(sock, name) for name in ("connect", "settimeout", "setblocking", "close")):
        raise TypeError(f"create() must return an unconnected socket, got {type(sock).__name__}")
    return sock


def default_domain(hostname: str | None, local_ip: str | None) -> str:
    """The EHLO argument when none is given (RFC 5321 4.1.1.1: an FQDN or an address literal).

    The host's name when it is fully qualified, else the literal of the local
    address of the connection (``[192.0.2.1]``, ``[IPv6:2001:db8::1]``);
    never plain "localhost" (LuaSocket's default, spec 5.4 item 9).
    """
    name = (hostname or "").rstrip(".")
    if "." in name and not name.lower().startswith("localhost") and not name.replace(".", "").isdigit():
        try:
            return check_domain(name)
        except (LocalProtocolError, TypeError):
            pass
    ip = (local_ip or "127.0.0.1").split("%", 1)[0]
    return f"[IPv6:{ip}]" if ":" in ip else f"[{ip}]"


# ------------------------------------------------------------------ the message


def _xtext(value: str) -> str:
    """RFC 3461 4: xtext, with "+", "=" and anything outside ! .. ~ as +XX."""
    out = []
    for byte in value.encode("utf-8"):
        out.append(chr(byte) if 33 <= byte <= 126 and byte not in (43, 61) else f"+{byte:02X}")
    return "".join(out)


class DSN(Value):
    """Delivery status notification requests (RFC 3461), sent only when the server offers DSN.

    ``notify``: "NEVER" or some of "SUCCESS", "FAILURE", "DELAY"; ``ret``:
    "FULL" or "HDRS"; ``envid``: an envelope id; ``orcpt``: send each
    recipient's original address (ORCPT=rfc822;...) too.
    """

    _fields = ("notify", "ret", "envid", "orcpt")
    notify: tuple[str, ...] | None
    ret: str | None
    envid: str | None
    orcpt: bool

    def __init__(self, notify: tuple[str, ...] | str | None = None, ret: str | None = None,
                 envid: str | None = None, orcpt: bool = True) -> None:
        given = notify
        if isinstance(notify, str):
            notify = tuple(n.strip() for n in notify.split(","))
        if notify is not None:
            notify = tuple(n.upper() for n in notify)
            allowed = {"SUCCESS", "FAILURE", "DELAY"}
            if not notify or not (notify == ("NEVER",) or set(notify) <= allowed):
                raise ValueError(f"DSN notify must be 'NEVER' or some of {sorted(allowed)}, got {given!r}")
        if ret is not None:
            given, ret = ret, ret.upper()
            if ret not in ("FULL", "HDRS"):
                raise ValueError(f"DSN ret must be 'FULL' or 'HDRS', got {given!r}")
        if envid is not None:
            if not isinstance(envid, str) or not envid.isascii() or not envid.isprintable():
                raise LocalProtocolError(f"DSN envid must be printable ASCII, got {envid!r}")
        object.__setattr__(self, "__dict__", {"notify": notify, "ret": ret, "envid": envid, "orcpt": orcpt})

    def mail_params(self) -> list[str]:
        params = []
        if self.ret:
            params.append(f"RET={self.ret}")
        if self.envid:
            params.append(f"ENVID={_xtext(self.envid)}")
        return params

    def rcpt_params(self, address: str) -> list[str]:
        params = []
        if self.notify:
            params.append("NOTIFY=" + ",".join(self.notify))
        bare = check_address(address, "recipient")[1:-1]
        if self.orcpt and bare.isascii():  # a UTF-8 ORCPT needs RFC 6533's utf-8 type
            params.append(f"ORCPT=rfc822;{_xtext(bare)}")
        return params


def bad_chunk(chunk: Any) -> SMTPSourceError:
    """The error for a source that gave something other than bytes."""
    return SMTPSourceError(f"the message source failed: {not_a_chunk(chunk)}", phase="body")


class AsyncChunks:
    """An async iterable source, read chunk by chunk as the body is sent.

    The dialogue cannot await: it asks the transport to run :meth:`pull`
    (a :class:`~smtpstream.smtp.client.Fetch`), so only the asyncio
    transport can send such a source. Nothing is gathered in memory.
    """

    __slots__ = ("_it",)

    def __init__(self, source: Any) -> None:
        self._it = source.__aiter__()

    async def pull(self, now: bool = False) -> Any:
        """The next chunk, or None at the end; SMTPSourceError for what the source raises."""
        try:
            chunk = await self._it.__anext__()
        except StopAsyncIteration:
            return None
        except Exception as exc:
            raise SMTPSourceError(f"the message source failed: {exc!r}", phase="body") from exc
        if not isinstance(chunk, (bytes, bytearray, memoryview)):
            raise bad_chunk(chunk)
        return chunk


def is_message_source(source: Any) -> bool:
    """Whether ``source`` is a ``message()`` source, without importing the message package:
    none can exist before it is imported (a sender that never builds one never loads it)."""
    builder = sys.modules.get("smtpstream.message.builder")
    return builder is not None and isinstance(source, builder.MessageSource)


def is_async_source(source: Any) -> bool:
    return hasattr(source, "__aiter__") and not hasattr(source, "__iter__")


class MessageSpec(Value):
    """One message's envelope and source, checked (see :func:`message_spec`)."""

    _fields = ("sender", "recipients", "chunks", "size", "step", "dsn", "eight_bit", "check_lines",
               "utf8_headers")
    _shown = ("sender", "recipients", "size", "dsn", "eight_bit", "check_lines", "utf8_headers")
    sender: str
    recipients: tuple[str, ...]
    chunks: Iterator[Any]
    size: int | None
    step: Callable | None
    dsn: DSN | None
    #: False when the body is known to be 7-bit: no BODY=8BITMIME then (RFC 6152).
    eight_bit: bool
    #: False when every line is known to fit RFC 5321's 1000 octets (a message()
    #: of encoded parts); else the engine checks each line as it goes.
    check_lines: bool
    #: True when the header section carries raw UTF-8 (RFC 6532): SMTPUTF8 or nothing.
    utf8_headers: bool

    def __init__(self, sender: str, recipients: tuple[str, ...], chunks: Iterator[Any], size: int | None = None,
                 step: Callable | None = None, dsn: DSN | None = None, eight_bit: bool = True,
                 check_lines: bool = True, utf8_headers: bool = False) -> None:
        object.__setattr__(self, "__dict__", {
            "sender": sender, "recipients": recipients, "chunks": chunks, "size": size, "step": step,
            "dsn": dsn, "eight_bit": eight_bit, "check_lines": check_lines, "utf8_headers": utf8_headers})

    @property
    def needs_smtputf8(self) -> bool:
        return self.utf8_headers or not (self.sender.isascii() and all(r.isascii() for r in self.recipients))


def mailbox(value: Any, what: str) -> str:
    """The address in ``value``: a bare or ``<...>`` address as it is, the address
    of ``"Display Name <addr>"`` (as in a header) without its name.

    Control characters are refused first (:class:`LocalProtocolError`), so a
    display name cannot smuggle a command in.
    """
    _refuse_controls(value, what)
    if "<" not in value or (value.startswith("<") and value.endswith(">") and value.count("<") == 1):
        return value
    from email.utils import getaddresses  # already imported by the message builder

    found = getaddresses([value])
    if len(found) != 1 or not found[0][1] or value.rstrip()[-1:] != ">":
        raise LocalProtocolError(f"{what} {value!r} is not one address (give 'addr' or 'Name <addr>')")
    return found[0][1]


def check_source(source: Any) -> None:
    """Refuse, before connecting, a source that could only fail once the body is on its way."""
    if isinstance(source, Mapping):
        raise TypeError("send: source is a mapping: a message table goes through smtp.message(table)")
    if isinstance(source, (str, bytes, bytearray, memoryview)):
        raise TypeError(f"send: source is a single {type(source).__name__}: give [data] (a list of byte"
                        " chunks), an iterable of byte chunks or smtp.message(...)")
    if isinstance(source, (list, tuple)):
        for index, chunk in enumerate(source):
            if not isinstance(chunk, (bytes, bytearray, memoryview)):
                raise TypeError(f"send: source item {index} is {type(chunk).__name__}, not a bytes chunk")
        return
    io = sys.modules.get("io")
    if io is not None and isinstance(source, io.TextIOBase):
        raise TypeError("send: source is a text file: open it in binary mode ('rb')")
    if not (callable(source) or hasattr(source, "__iter__") or hasattr(source, "__aiter__")):
        raise TypeError(f"send: source is {type(source).__name__}: expected an iterable of byte chunks, a"
                        " callable source, smtp.message(...) or an email.message.Message")


def message_spec(fields: Mapping[str, Any]) -> MessageSpec:
    """Check a message's fields before anything is sent.

    ``from`` and ``rcpt`` default to the ``sender`` and ``recipients`` of a
    :class:`~smtpstream.message.MessageSource` (To, Cc and Bcc). Every
    address is checked here: CR, LF, NUL or another control character is a
    :class:`LocalProtocolError` before any connection is made. A message()
    source read before is rewound, or refused (:class:`SMTPSourceError`)
    when it cannot be read again: it is sent whole or not at all.
    """
    if not fields.keys() <= MESSAGE_FIELDS:
        raise TypeError(f"unknown message field(s) {sorted(set(fields) - MESSAGE_FIELDS)}")
    source = fields.get("source")
    if source is None:
        raise TypeError("send: 'source' is required (an iterable of byte chunks or a callable source)")
    built = is_message_source(source)
    if not built:  # a message() source is one by construction
        if emailmsg.is_message(source):
            return _email_spec(source, fields)
        check_source(source)
    elif source.started:
        # Read before (a send that failed midway, or one that went through):
        # its tail under the whole message's SIZE would be stored as the message.
        if not source.replayable:
            raise SMTPSourceError(
                "this message() source was read before and has a part from a one-shot source:"
                " build it again to send it again (nothing was sent)", phase="mail")
        source.rewind()
    if fields.get("dkim") is not None:
        # The signer is passed in, never imported here: smtp stays free of cryptography.
        if not hasattr(source, "with_dkim"):
            raise TypeError("send: dkim= signs a message() source; this source is not one")
        source = source.with_dkim(fields["dkim"])
    sender = fields.get("from")
    if sender is None:
        sender = getattr(source, "sender", None)
    if sender is None:
        raise TypeError("send: 'from' is required")
    rcpt = fields.get("rcpt")
    if rcpt is None:
        rcpt = getattr(source, "recipients", None)
    if rcpt is None:
        raise TypeError("send: 'rcpt' is required (an address or a list of addresses)")
    sender, recipients = _envelope(sender, rcpt)
    size = fields.get("size")
    if size is None:
        size = getattr(source, "size", None)
        if size is None and isinstance(source, (list, tuple)) and all(
            isinstance(c, (bytes, bytearray, memoryview)) for c in source
        ):
            size = wire_size(source)
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise ValueError(f"size must be a non-negative int, got {size!r}")
    step = fields.get("step")
    if step is not None and not callable(step):
        raise TypeError("step must be callable like ltn12.pump.step(source, sink)")
    dsn = _dsn(fields.get("dsn"))
    if is_async_source(source):
        if step is not None:
            raise TypeError("step cannot move an async iterable source")
        return MessageSpec(sender, recipients, AsyncChunks(source), size, None, dsn,
                           check_lines=_check_lines(source))
    chunks = source if built else ltn12.source.iterate(source)  # a message() is its own iterator
    return MessageSpec(sender, recipients, chunks, size, step, dsn, _eight_bit(source), _check_lines(source))


def _envelope(sender: Any, rcpt: Any) -> tuple[str, tuple[str, ...]]:
    """The envelope checked: display names dropped, every address validated."""
    sender = mailbox(sender, "sender")
    if isinstance(rcpt, str):
        rcpt = (rcpt,)
    elif type(rcpt) is not list and type(rcpt) is not tuple and not isinstance(rcpt, Iterable):
        raise TypeError(f"rcpt must be an address or a list of addresses, got {type(rcpt).__name__}")
    recipients = tuple(mailbox(r, "recipient") for r in rcpt)
    if not recipients:
        raise ValueError("send: no recipients")
    check_address(sender, "sender", null_ok=True)
    for r in recipients:
        check_address(r, "recipient")
    return sender, recipients


def _email_spec(msg: Any, fields: Mapping[str, Any]) -> MessageSpec:
    """The spec of an ``email.message.Message``: envelope from its headers unless given
    (see :mod:`smtpstream.smtp.emailmsg`), Bcc never sent, written part by part."""
    if fields.get("dkim") is not None:
        raise TypeError("send: dkim= signs a message() source: convert it with message.from_email(msg)")
    if fields.get("step") is not None:
        raise TypeError("send: step= moves a chunk source, not an email.message.Message")
    sender, rcpt = fields.get("from"), fields.get("rcpt")
    if sender is None or rcpt is None:
        found_sender, found_rcpt = emailmsg.envelope(msg)
        if sender is None:
            sender = found_sender
        if rcpt is None:
            rcpt = found_rcpt
    if sender is None:
        raise TypeError("send: 'from' is required (the message has no From or Sender header)")
    if not rcpt:
        raise ValueError("send: no recipients (the message has no To, Cc or Bcc header; give rcpt)")
    sender, recipients = _envelope(sender, rcpt)
    international = not (sender.isascii() and all(r.isascii() for r in recipients))
    prepared = emailmsg.prepare(msg, international)
    size = fields.get("size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise ValueError(f"size must be a non-negative int, got {size!r}")
    return MessageSpec(sender, recipients, prepared.chunks(), size, None, _dsn(fields.get("dsn")),
                       prepared.eight_bit, True, prepared.utf8_headers)


def _dsn(dsn: Any) -> DSN | None:
    if isinstance(dsn, Mapping):
        return DSN(**dsn)
    if dsn is not None and not isinstance(dsn, DSN):
        raise TypeError("dsn must be a DSN or a mapping with notify/ret/envid/orcpt")
    return dsn


def _check_lines(source: Any) -> bool:
    """Whether the lines must be checked as they go: unless the source knows
    they are short (a message() whose parts it encoded itself)."""
    return getattr(source, "short_lines", None) is not True


def wire_size(chunks: Iterable[Any]) -> int:
    """The message size of raw chunks as RFC 1870 counts it: what the server
    receives after CRLF normalisation, the last line ended, without the
    stuffing dots (which the server removes). Never less than what is sent."""
    normalizer = filters.EOLNormalizer()
    total, tail = 0, b""
    for out in (*map(normalizer, chunks), normalizer(None)):
        if out:
            total += len(out)
            tail = (tail + out[-2:])[-2:]
    return total + 2 if total and tail != b"\r\n" else total


def _eight_bit(source: Any) -> bool:
    """Whether the message may hold 8-bit bytes: known for a message() and for
    a list of byte chunks; assumed for any other source."""
    seven_bit = getattr(source, "seven_bit", None)
    if isinstance(seven_bit, bool):
        return not seven_bit
    if isinstance(source, (bytes, bytearray)):
        return not source.isascii()
    if isinstance(source, (list, tuple)) and all(isinstance(c, (bytes, bytearray)) for c in source):
        return not all(c.isascii() for c in source)
    return True


class SendResult(Value):
    """What the server said about one delivered message.

    ``recipients`` maps every recipient (as given) to its RCPT reply;
    ``accepted`` / ``refused`` split them; ``reply`` is the final reply
    (after the end of data); ``replies`` are all the transaction's replies
    in order; ``size`` the octets of message data sent (CRLF-normalised; in
    DATA mode including the dots added by stuffing); ``queue_id`` the
    server's id when the final reply names one.
    """

    _fields = ("sender", "recipients", "reply", "replies", "size", "chunking", "pipelining")
    sender: str
    recipients: dict[str, Reply]
    reply: Reply
    replies: tuple[Reply, ...]
    size: int
    chunking: bool
    pipelining: bool

    def __init__(self, sender: str, recipients: dict[str, Reply], reply: Reply, replies: tuple[Reply, ...],
                 size: int, chunking: bool = False, pipelining: bool = False) -> None:
        object.__setattr__(self, "__dict__", {
            "sender": sender, "recipients": recipients, "reply": reply, "replies": replies, "size": size,
            "chunking": chunking, "pipelining": pipelining})

    @property
    def accepted(self) -> tuple[str, ...]:
        return tuple(r for r, reply in self.recipients.items() if reply.positive)

    @property
    def refused(self) -> dict[str, Reply]:
        return {r: reply for r, reply in self.recipients.items() if not reply.positive}

    @property
    def code(self) -> int:
        return self.reply.code

    @property
    def queue_id(self) -> str | None:
        return self.reply.queue_id
