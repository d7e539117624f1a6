"""SMTP: LuaSocket's ``socket.smtp`` in Python.

``message(mesgt)`` builds a message source (see :mod:`smtpstream.message`);
``send(mailt)`` / ``send(**fields)`` delivers it and returns a
:class:`SendResult` (LuaSocket returns ``1``) or raises an :class:`SMTPError`
(LuaSocket returns ``nil, err``); :class:`Session` sends many messages over
one connection.

Layers: ``protocol`` is the sans-IO engine (bytes and commands in, bytes and
replies out; states in ``_state``), ``client`` the dialogue as generators of
I/O actions, ``options`` the fields, envelope and result, ``blocking`` the
socket transport. An asyncio transport only
needs to perform the same actions.
"""
from ..defaults import DOMAIN, PORT, SERVER, TIMEOUT, ZONE  # LuaSocket's; set them, read per call
from ..message import message
from .blocking import Session, send
from .lowlevel import Connection, open  # noqa: A004 - LuaSocket's name
from .options import DEFAULT_TIMEOUTS, DSN, SendResult
from .errors import (
    LocalProtocolError,
    RemoteProtocolError,
    SMTPAuthenticationError,
    SMTPConnectError,
    SMTPDataError,
    SMTPError,
    SMTPNotSupportedError,
    SMTPProtocolError,
    SMTPRecipientsRefused,
    SMTPReplyError,
    SMTPSenderRefused,
    SMTPInterrupted,
    SMTPServerDisconnected,
    SMTPSizeError,
    SMTPSourceError,
    SMTPTimeoutError,
    SMTPTLSError,
    SMTPUnknownOutcome,
)
from .protocol import NEED_DATA, ClientConnection, ConnectionClosed
from .reply import MAX_REPLY_LINE, MAX_REPLY_LINES, Reply

__all__ = [
    "SERVER",
    "PORT",
    "DOMAIN",
    "TIMEOUT",
    "ZONE",
    "message",
    "send",
    "open",
    "Connection",
    "Session",
    "SendResult",
    "DSN",
    "DEFAULT_TIMEOUTS",
    "Reply",
    "ClientConnection",
    "ConnectionClosed",
    "NEED_DATA",
    "MAX_REPLY_LINE",
    "MAX_REPLY_LINES",
    "SMTPError",
    "SMTPProtocolError",
    "LocalProtocolError",
    "RemoteProtocolError",
    "SMTPServerDisconnected",
    "SMTPConnectError",
    "SMTPUnknownOutcome",
    "SMTPInterrupted",
    "SMTPTimeoutError",
    "SMTPTLSError",
    "SMTPNotSupportedError",
    "SMTPSizeError",
    "SMTPSourceError",
    "SMTPReplyError",
    "SMTPAuthenticationError",
    "SMTPSenderRefused",
    "SMTPRecipientsRefused",
    "SMTPDataError",
]
