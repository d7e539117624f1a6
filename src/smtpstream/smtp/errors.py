"""The exceptions of ``smtpstream.smtp``: one base class, each failure says where and whose.

Every exception is an :class:`SMTPError` carrying

* ``phase``: where the dialogue was ("connect", "greeting", "ehlo", "helo",
  "starttls", "auth", "mail", "rcpt", "data", "body", "end", "rset", "quit"),
  or ``None`` when nothing was sent yet;
* ``code`` and ``enhanced``: the server's reply code and its RFC 3463 status
  code ("5.1.1"), when a reply caused the failure (``reply`` is that reply);
* ``temporary`` / ``permanent``: whether retrying later may help (4xx, a
  timeout, a dropped connection) or not (5xx).

This maps LuaSocket's ``nil, err``: ``smtp.send`` returns a result object or
raises one of these; ``str(exc)`` is the readable message LuaSocket returned.
Messages never contain credentials: an AUTH payload is never formatted.

Handlers written for :mod:`smtplib` catch these too: :class:`SMTPError` is
an ``smtplib.SMTPException`` (so an ``OSError``, as smtplib's are), and
:class:`SMTPServerDisconnected`, :class:`SMTPConnectError`,
:class:`SMTPNotSupportedError`, :class:`SMTPAuthenticationError`,
:class:`SMTPSenderRefused`, :class:`SMTPRecipientsRefused` and
:class:`SMTPDataError` are also smtplib's classes of the same name, with
their attributes (``smtp_code``, ``smtp_error``, ``sender``,
``recipients``). Importing smtplib costs about as much as this whole package's
engine, so it is not imported with it: the smtplib classes are added to the
bases when smtplib is already loaded, else by the first connection
(``connection_settings``) or the first exception made, whichever comes first
-- before any of these can reach an ``except`` clause. :func:`bind_smtplib`
does it at once.
"""
from __future__ import annotations

import sys
TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover - annotations only: typing takes milliseconds to import
    from typing import Mapping

    from .reply import Reply

__all__ = [
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
    "bind_smtplib",
]


class _StandIn(OSError):
    """Where ``smtplib.SMTPException`` goes once bound: a Python-level OSError
    subclass like it (the same instance layout, which ``__bases__`` needs)."""


class SMTPError(_StandIn):
    """Base class: ``phase``, ``code``, ``enhanced``, ``reply``, ``temporary``, ``permanent``.

    Also an ``smtplib.SMTPException`` (see the module doc)."""

    #: Default for ``temporary`` when no reply code decides it.
    _temporary_default = False

    def __new__(cls, *args: object, **kwargs: object) -> SMTPError:
        if not _bound:
            bind_smtplib()
        return super().__new__(cls)  # no arguments: OSError would read two as (errno, strerror)

    def __init__(self, message: str, *, phase: str | None = None, reply: Reply | None = None) -> None:
        # OSError's own __init__, not super(): smtplib's classes in the MRO take other arguments.
        OSError.__init__(self, message)
        self.args = (message,)
        self.message = message
        self.phase = phase
        self.reply = reply

    @property
    def smtp_code(self) -> int:
        """smtplib's name for ``code`` (-1 when no reply caused the error)."""
        return -1 if self.reply is None else self.reply.code

    @property
    def smtp_error(self) -> bytes:
        """smtplib's: the reply's text as bytes (else the message)."""
        text = self.message if self.reply is None else "\n".join(self.reply.lines)
        return text.encode("utf-8", "replace")

    @property
    def code(self) -> int | None:
        return None if self.reply is None else self.reply.code

    @property
    def enhanced(self) -> str | None:
        return None if self.reply is None else self.reply.enhanced

    @property
    def temporary(self) -> bool:
        """True when the same attempt may succeed later (4xx, timeout, disconnect)."""
        if self.code is not None:
            return 400 <= self.code < 500
        return self._temporary_default

    @property
    def permanent(self) -> bool:
        """True when the server refused for good (5xx): do not retry as is."""
        return self.code is not None and 500 <= self.code < 600

    def __str__(self) -> str:
        where = f"{self.phase}: " if self.phase else ""
        if self.reply is not None:
            return f"{where}{self.message}: {self.reply}"
        return f"{where}{self.message}"


class SMTPProtocolError(SMTPError):
    """Someone broke the SMTP protocol; the subclass says who."""


class LocalProtocolError(SMTPProtocolError):
    """We did (or the caller asked for it): an illegal command in this state, a
    CR/LF/NUL in an argument. Raised before anything is written."""


class RemoteProtocolError(SMTPProtocolError):
    """The server did: a malformed or oversized reply, a reply that fits no
    command, bytes after the STARTTLS go-ahead. The connection is unusable."""


class SMTPServerDisconnected(SMTPError, ConnectionError):
    """The connection failed or the server closed it (a 421 reply included).
    Whatever was in progress was not delivered."""

    _temporary_default = True


class SMTPConnectError(SMTPServerDisconnected):
    """No connection could be made (refused, unreachable, no such host): nothing
    was ever sent, unlike a :class:`SMTPServerDisconnected` that is not this
    class, where a connection was made and then lost. Also smtplib's
    ``SMTPConnectError``."""


class SMTPUnknownOutcome(SMTPError):
    """The connection was lost after the message's end of data was written and
    before its reply was read (RFC 1047): the server may or may not have taken
    the message. Neither ``temporary`` nor ``permanent``: resending it may
    deliver it twice. ``__cause__`` is the failure that ended the connection."""


class SMTPInterrupted(SMTPError):
    """The caller stopped the send (Ctrl-C, a cancelled task, a pool told to
    stop) before this message's end of data was written: not delivered, and
    the connection was closed so that the server discards what it received."""

    _temporary_default = True


class SMTPTimeoutError(SMTPError, TimeoutError):
    """The server did not answer (or read) within the phase's time limit."""

    _temporary_default = True


class SMTPTLSError(SMTPError):
    """The TLS handshake failed (certificate verification included)."""


class SMTPNotSupportedError(SMTPError):
    """The server lacks something this message or the policy needs
    (SMTPUTF8, STARTTLS when required, a usable AUTH mechanism)."""


class SMTPSizeError(SMTPError):
    """The message is larger than the server's SIZE limit; nothing was uploaded."""

    @property
    def permanent(self) -> bool:
        return True


class SMTPSourceError(SMTPError):
    """The message source raised while the body was being sent (see ``__cause__``).
    No end of data was sent, so the server discards the partial message."""


class SMTPReplyError(SMTPError):
    """The server answered with a refusal; ``reply`` is that answer."""


class SMTPAuthenticationError(SMTPReplyError):
    """AUTH failed (wrong credentials, or the exchange went wrong)."""


class SMTPSenderRefused(SMTPReplyError):
    """MAIL FROM was refused."""

    def __init__(self, message: str, *, phase: str | None = "mail", reply: Reply | None = None,
                 sender: str | None = None) -> None:
        super().__init__(message, phase=phase, reply=reply)
        self._sender = sender

    @property
    def sender(self) -> str | None:
        """smtplib's attribute: the sender refused, as sent (``<a@b>``), when known."""
        if self._sender is not None:
            return self._sender
        command = getattr(self.reply, "command", None)
        return getattr(command, "address", None)


class SMTPRecipientsRefused(SMTPReplyError):
    """Every recipient was refused: ``refused`` maps each one to its reply."""

    def __init__(self, message: str, refused: Mapping[str, Reply], *, phase: str | None = "rcpt") -> None:
        first = next(iter(refused.values()), None)
        super().__init__(message, phase=phase, reply=first)
        self.refused = dict(refused)

    @property
    def recipients(self) -> dict[str, tuple[int, bytes]]:
        """smtplib's attribute: each refused recipient -> ``(code, text as bytes)``."""
        return {rcpt: (r.code, "\n".join(r.lines).encode("utf-8", "replace")) for rcpt, r in self.refused.items()}

    @property
    def temporary(self) -> bool:
        return any(r.code // 100 == 4 for r in self.refused.values())

    @property
    def permanent(self) -> bool:
        return bool(self.refused) and all(r.code // 100 == 5 for r in self.refused.values())

    def __str__(self) -> str:
        listed = "; ".join(f"{rcpt}: {reply}" for rcpt, reply in self.refused.items())
        where = f"{self.phase}: " if self.phase else ""
        return f"{where}{self.message}: {listed}"


class SMTPDataError(SMTPReplyError):
    """DATA, a BDAT chunk or the end of data was refused: not delivered."""


# ------------------------------------------------------------------ smtplib's classes as bases

_bound = False

#: Each class and the smtplib class it also is (by name), inserted after its own bases' first.
_SMTPLIB_TWINS = {
    "SMTPError": "SMTPException",
    "SMTPServerDisconnected": "SMTPServerDisconnected",
    "SMTPConnectError": "SMTPConnectError",
    "SMTPNotSupportedError": "SMTPNotSupportedError",
    "SMTPReplyError": "SMTPResponseException",
    "SMTPAuthenticationError": "SMTPAuthenticationError",
    "SMTPSenderRefused": "SMTPSenderRefused",
    "SMTPRecipientsRefused": "SMTPRecipientsRefused",
    "SMTPDataError": "SMTPDataError",
}


def bind_smtplib() -> None:
    """Make the classes of this module subclasses of their smtplib twins (idempotent)."""
    global _bound
    if _bound:
        return
    import smtplib

    here = globals()
    for name, twin_name in _SMTPLIB_TWINS.items():
        cls, twin = here[name], getattr(smtplib, twin_name)
        if issubclass(cls, twin):
            continue
        bases = cls.__bases__
        if name == "SMTPError":
            cls.__bases__ = (twin,)  # _StandIn -> smtplib.SMTPException (an OSError too)
        else:
            cls.__bases__ = (bases[0], twin, *bases[1:])
    _bound = True


if "smtplib" in sys.modules:  # already paid for: bind now
    bind_smtplib()
