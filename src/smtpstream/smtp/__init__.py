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

TYPE_CHECKING = False
if TYPE_CHECKING:  # what __getattr__ below gives, for type checkers
    from ..message import message
    from .blocking import Session, send
    from .errors import (
        LocalProtocolError,
        RemoteProtocolError,
        SMTPAuthenticationError,
        SMTPConnectError,
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
        SMTPTimeoutError,
        SMTPTLSError,
        SMTPUnknownOutcome,
    )
    from .lowlevel import Connection, open  # noqa: A004 - LuaSocket's name
    from .options import DEFAULT_TIMEOUTS, DSN, SendResult
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


# The module each public name lives in. Each is imported on first use (PEP 562):
# ``import smtpstream.smtp`` costs next to nothing, and a program pays for what
# it uses (building messages alone never imports the transport or socket).
_HOME = {
    "message": "smtpstream.message",
    **dict.fromkeys(("Session", "send"), "smtpstream.smtp.blocking"),
    **dict.fromkeys(("Connection", "open"), "smtpstream.smtp.lowlevel"),
    **dict.fromkeys(("DEFAULT_TIMEOUTS", "DSN", "SendResult"), "smtpstream.smtp.options"),
    **dict.fromkeys(("NEED_DATA", "ClientConnection", "ConnectionClosed"), "smtpstream.smtp.protocol"),
    **dict.fromkeys(("MAX_REPLY_LINE", "MAX_REPLY_LINES", "Reply"), "smtpstream.smtp.reply"),
    **dict.fromkeys([name for name in __all__ if name.startswith("SMTP") or name.endswith("ProtocolError")],
                    "smtpstream.smtp.errors"),
}
# Submodules an eager import used to load: still attributes of the package (``smtp.options``).
_SUBMODULES = frozenset({"auth", "blocking", "bulk", "client", "emailmsg", "errors", "linelimit", "lowlevel",
                         "options", "protocol", "reply", "window"})

if not TYPE_CHECKING:  # hidden from type checkers: they see the imports above
    def __getattr__(name: str) -> object:
        import sys

        if name in _SUBMODULES:
            __import__(f"{__name__}.{name}")  # which sets the attribute too
            return sys.modules[f"{__name__}.{name}"]
        home = _HOME.get(name)
        if home is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        __import__(home)  # not importlib.import_module: that would import importlib first
        value = globals()[name] = getattr(sys.modules[home], name)  # found directly from now on
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *_HOME, *_SUBMODULES})
