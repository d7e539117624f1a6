"""``smtp.open(server, port, create)``: LuaSocket's low-level connection object.

A port of LuaSocket code that drives the dialogue by hand::

    c = smtp.open("mx.example.com", 25)
    ext = c.greet("client.example.com")
    c.mail("<me@example.com>")
    c.rcpt("<you@example.com>")
    c.data(smtp.message(mesgt))        # or c.send({...}) for all three
    c.quit()
    c.close()

It is a :class:`~smtpstream.smtp.Session` that stops after the greeting: the
same engine, transport, normalisation, dot-stuffing and line check, so the
server gets the bytes ``smtp.send`` would send. Every method raises an
:class:`~smtpstream.smtp.errors.SMTPError` on failure (LuaSocket raises
through ``try``), and returns the server's :class:`Reply` (``greet`` the EHLO
reply, whose ``text`` is LuaSocket's ``ext``).
"""
from __future__ import annotations

from .. import ltn12
from .blocking import Session
from .client import Client, _chunks
from .errors import SMTPDataError, SMTPError, SMTPRecipientsRefused, SMTPSenderRefused
from .options import _check_lines, default_domain
from .protocol import Data, Mail, Rcpt
from .reply import Reply

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: typing takes milliseconds to import
    from typing import Any, Callable

__all__ = ["open", "Connection"]


class _GreetingOnly(Client):
    """The dialogue up to the greeting; ``greet`` and the rest come when called."""

    default_domain: str | None = None

    def open(self, hostname: str | None = None, local_ip: str | None = None):
        self.default_domain = default_domain(hostname, local_ip)
        return (yield from self.read_greeting())


class Connection(Session):
    """An open connection, greeted by the server, driven command by command."""

    _dialogue = _GreetingOnly

    def greet(self, domain: str | None = None) -> Reply:
        """EHLO (HELO fallback) and STARTTLS per the ``starttls`` setting; the last hello reply."""
        name = domain or self.settings.domain or self.client.default_domain
        return self._run(self.client.greet(name))

    def auth(self, user: str, password: str, ext: Any = None, *, mechanism: str | None = None) -> Reply | None:
        """AUTH with the best mechanism the server offers (``ext`` is LuaSocket's EHLO text: unused,
        the engine has parsed the extensions)."""
        fields = {"user": user, "password": password}
        if mechanism is not None:
            fields["auth"] = mechanism
        self.client.settings = self.client.settings._replace(**fields)
        return self._run(self.client._authenticate())

    def login(self, user: str, password: str) -> Reply | None:
        return self.auth(user, password, mechanism="LOGIN")

    def plain(self, user: str, password: str) -> Reply | None:
        return self.auth(user, password, mechanism="PLAIN")

    def mail(self, from_: str) -> Reply:
        reply = self._run(self.client._exchange(Mail(from_)))
        if not reply.positive:
            raise SMTPSenderRefused("the sender was refused", phase="mail", reply=reply)
        return reply

    def rcpt(self, to: str) -> Reply:
        reply = self._run(self.client._exchange(Rcpt(to)))
        if not reply.positive:
            raise SMTPRecipientsRefused("the recipient was refused", {to: reply})
        return reply

    def data(self, src: Any, step: Callable | None = None) -> Reply:
        """DATA, the message from ``src`` (normalised, dot-stuffed, lines checked), the end of data."""
        client = self.client
        if _check_lines(src):
            client.conn.limit_lines()
        chunks = _chunks(ltn12.source.iterate(src), step)
        reply = self._run(client._exchange(Data()))
        if not reply.intermediate:
            raise SMTPDataError("DATA was refused", phase="data", reply=reply)
        try:
            reply = self._run(self._upload(chunks))
        except SMTPError:
            client._broken = True  # mid-DATA the only way to abort is to hang up
            self._close_socket()
            raise
        if not reply.positive:
            raise SMTPDataError("the message was refused", phase="end", reply=reply)
        return reply

    def _upload(self, chunks):
        client, conn = self.client, self.client.conn
        for chunk in chunks:
            yield from client._write((conn.send_body(chunk),), "body")
        yield from client._write((conn.end_body(),), "end")
        return (yield from client._reply())

    def quit(self) -> Reply | None:
        """QUIT; its reply (None when the connection no longer works)."""
        return self._run(self.client.quit())

    def close(self) -> None:
        """Close the connection (LuaSocket's ``close``: no QUIT; call :meth:`quit` first)."""
        self._close_socket()

    def __exit__(self, *exc_info: Any) -> None:
        if not self.closed and self.client.usable:
            self.quit()
        self.close()


def open(server: str | None = None, port: int | None = None, create: Callable | None = None,
         **fields: Any) -> Connection:
    """Connect and read the greeting: LuaSocket's ``smtp.open(server, port, create)``.

    ``server`` and ``port`` default to ``smtp.SERVER`` and ``smtp.PORT``; other
    connection fields of ``smtp.send`` (``timeout``, ``tls``, ``starttls``,
    ``ssl_context``, ``domain``...) may be given by keyword.
    """
    given = {"server": server, "port": port, "create": create}
    return Connection(**{k: v for k, v in given.items() if v is not None}, **fields)
