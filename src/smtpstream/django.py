"""A Django e-mail backend: ``EMAIL_BACKEND = "smtpstream.django.EmailBackend"``.

``pip install 'smtpstream[django]'``. It reads Django's settings as Django's
own SMTP backend does (``EMAIL_HOST``, ``EMAIL_PORT``, ``EMAIL_HOST_USER``,
``EMAIL_HOST_PASSWORD``, ``EMAIL_USE_TLS``, ``EMAIL_USE_SSL``,
``EMAIL_TIMEOUT``, ``EMAIL_SSL_CERTFILE``, ``EMAIL_SSL_KEYFILE``; the
constructor's arguments win) and honours ``fail_silently``. Differences:

* each Django message is built by :func:`smtpstream.message.message` (the
  filter core encodes the attachments), not by ``EmailMessage.message()``;
* ``send_messages`` sends the whole list over one connection with
  :meth:`~smtpstream.smtp.Session.send_many` (PIPELINING: one round trip per
  message) and goes on after a message the server refused; the first error
  is raised at the end (unless ``fail_silently``); a connection the server
  dropped is opened again and the messages it lost are sent once more;
* a file attached with :meth:`EmailMessage.attach_file` of *this* module's
  ``EmailMessage`` / ``EmailMultiAlternatives`` (drop-in subclasses of
  Django's) is read from its path while it is sent, never held in memory.
  Django's own ``attach_file`` reads the file when it is called: those
  messages still go through this backend, with their content in memory;
* errors are :class:`smtpstream.smtp.SMTPError`, which are also
  ``smtplib.SMTPException`` (and the matching smtplib subclasses), as the
  handlers written for Django's backend expect;
* ``EMAIL_USE_TLS`` False means no STARTTLS at all, as in Django (not
  smtpstream's "when offered"), and credentials are then sent in clear, as
  Django does; set ``EMAIL_USE_TLS`` or ``EMAIL_USE_SSL`` for anything real.
"""
from __future__ import annotations

import mimetypes
import os
import threading
from email.mime.base import MIMEBase
from pathlib import Path
from typing import Any, Sequence

from django.conf import settings
from django.core.mail import EmailMessage as DjangoEmailMessage
from django.core.mail import EmailMultiAlternatives as DjangoEmailMultiAlternatives
from django.core.mail.backends.base import BaseEmailBackend

from .message import alternative, attachment, message
from .message.fromemail import table as email_table
from .message.parts import text
from .smtp import Session, SMTPError, SMTPServerDisconnected

__all__ = ["EmailBackend", "EmailMessage", "EmailMultiAlternatives", "FileContent", "message_fields"]


class FileContent:
    """An attachment's content that is still on disk: read when the message is sent."""

    __slots__ = ("path",)

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)

    def __repr__(self) -> str:
        return f"FileContent({self.path!r})"


class _StreamingAttachFile:
    """``attach_file`` keeps the path; Django's own ``message()`` still works (it reads then)."""

    attachments: list[Any]

    def attach_file(self, path: str | os.PathLike[str], mimetype: str | None = None) -> None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"attachment not found: {path}")
        if mimetype is None:
            guessed, encoding = mimetypes.guess_type(path.name)
            mimetype = guessed if guessed and not encoding else None
        self.attachments.append((path.name, FileContent(path), mimetype))

    def message(self) -> Any:  # for the other backends: the files are read now
        saved = self.attachments
        self.attachments = []
        for item in saved:
            if isinstance(item, tuple) and isinstance(item[1], FileContent):
                DjangoEmailMessage.attach_file(self, item[1].path, item[2])  # type: ignore[arg-type]
            else:
                self.attachments.append(item)
        try:
            return super().message()  # type: ignore[misc]
        finally:
            self.attachments = saved


class EmailMessage(_StreamingAttachFile, DjangoEmailMessage):
    """Django's ``EmailMessage`` whose ``attach_file`` streams the file when sent by this backend."""


class EmailMultiAlternatives(_StreamingAttachFile, DjangoEmailMultiAlternatives):
    """Django's ``EmailMultiAlternatives`` whose ``attach_file`` streams the file when sent by this backend."""


def _joined(addresses: Sequence[str]) -> str | None:
    return ", ".join(addresses) if addresses else None


def _attachment_part(item: Any, encoding: str) -> Any:
    if isinstance(item, MIMEBase):
        return email_table(item)
    filename, content, mimetype = item[0], item[1], item[2]
    if isinstance(content, FileContent):
        return attachment(content.path, filename, mimetype)
    if isinstance(content, str):
        main = (mimetype or "text/plain").split("/", 1)
        if main[0] == "text":
            part = text(content, main[1] if len(main) > 1 else "plain", encoding)
            part["headers"]["content-disposition"] = attachment(b"", filename)["headers"]["content-disposition"]
            return part
        content = content.encode(encoding)
    return attachment(bytes(content), filename, mimetype)


def message_fields(msg: DjangoEmailMessage) -> dict[str, Any]:
    """The ``send`` fields (from, rcpt, source) for a Django message, built by ``message()``."""
    encoding = msg.encoding or settings.DEFAULT_CHARSET
    headers: dict[str, Any] = {"from": msg.from_email, "subject": msg.subject}
    for name, value in (("to", _joined(msg.to)), ("cc", _joined(msg.cc)), ("reply-to", _joined(msg.reply_to))):
        if value:
            headers[name] = value
    for name, value in msg.extra_headers.items():
        headers[name.lower()] = str(value)
    subtype = getattr(msg, "content_subtype", "plain")
    body: Any = text(msg.body, subtype, encoding)
    alternatives = getattr(msg, "alternatives", None) or []
    if alternatives:
        parts = [body]
        for content, mimetype in alternatives:
            main, _, sub = (mimetype or "text/plain").partition("/")
            if isinstance(content, str) and main == "text":
                parts.append(text(content, sub or "plain", encoding))
            else:
                parts.append(attachment(content if isinstance(content, bytes) else str(content).encode(encoding),
                                        None, mimetype, disposition="inline"))
        body = alternative(*parts)
        body["headers"]["content-type"] = f"multipart/{getattr(msg, 'alternative_subtype', 'alternative')}"
    if msg.attachments:
        parts = [body] if (msg.body or alternatives) else []
        parts.extend(_attachment_part(a, encoding) for a in msg.attachments)
        table: dict[str, Any] = {"headers": {**headers, "content-type": f"multipart/{msg.mixed_subtype}"},
                                 "body": {"parts": parts}}
    else:
        table = {"headers": {**body["headers"], **headers}, "body": body["body"]}
    return {"from": msg.from_email, "rcpt": msg.recipients(), "source": message(table)}


class EmailBackend(BaseEmailBackend):
    """A drop-in ``EMAIL_BACKEND`` sending with smtpstream (see the module doc)."""

    def __init__(self, host: str | None = None, port: int | None = None, username: str | None = None,
                 password: str | None = None, use_tls: bool | None = None, fail_silently: bool = False,
                 use_ssl: bool | None = None, timeout: float | None = None, ssl_keyfile: str | None = None,
                 ssl_certfile: str | None = None, **kwargs: Any) -> None:
        super().__init__(fail_silently=fail_silently)
        self.host = host or settings.EMAIL_HOST
        self.port = port or settings.EMAIL_PORT
        self.username = settings.EMAIL_HOST_USER if username is None else username
        self.password = settings.EMAIL_HOST_PASSWORD if password is None else password
        self.use_tls = settings.EMAIL_USE_TLS if use_tls is None else use_tls
        self.use_ssl = settings.EMAIL_USE_SSL if use_ssl is None else use_ssl
        self.timeout = settings.EMAIL_TIMEOUT if timeout is None else timeout
        self.ssl_keyfile = settings.EMAIL_SSL_KEYFILE if ssl_keyfile is None else ssl_keyfile
        self.ssl_certfile = settings.EMAIL_SSL_CERTFILE if ssl_certfile is None else ssl_certfile
        if self.use_ssl and self.use_tls:
            raise ValueError("EMAIL_USE_TLS/EMAIL_USE_SSL are mutually exclusive, so only set one of those"
                             " settings to True.")
        #: Extra smtpstream connection fields (``cafile``, ``verify``, ``pipelining``...).
        self.options: dict[str, Any] = dict(kwargs.pop("smtpstream_options", None) or {})
        self.connection: Session | None = None
        self._lock = threading.RLock()

    def connection_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {"server": self.host, "port": int(self.port), **self.options}
        if self.use_ssl:
            fields["tls"] = True
        else:
            fields["tls"] = False
            fields["starttls"] = "required" if self.use_tls else "off"
        if self.username and self.password:
            fields["user"], fields["password"] = self.username, self.password
        if self.timeout is not None:
            fields["timeout"] = self.timeout
        if (self.ssl_certfile or self.ssl_keyfile) and "ssl_context" not in fields:
            import ssl

            context = ssl.create_default_context(cafile=fields.pop("cafile", None))
            context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
            fields["ssl_context"] = context
        return fields

    def open(self) -> bool | None:
        """Connect unless connected: True when a connection was opened, False when one was
        open already, None when opening failed silently."""
        if self.connection is not None:
            return False
        try:
            self.connection = Session(**self.connection_fields())
        except OSError:  # SMTPError included (an smtplib.SMTPException, an OSError)
            if not self.fail_silently:
                raise
            return None
        return True

    def close(self) -> None:
        connection, self.connection = self.connection, None
        if connection is not None:
            connection.close()  # QUIT; never raises

    def send_messages(self, email_messages: Sequence[DjangoEmailMessage]) -> int:
        """Send the messages over one connection; return how many were sent."""
        if not email_messages:
            return 0
        with self._lock:
            new = self.open()
            if self.connection is None or new is None:
                return 0
            try:
                return self._send_all(list(email_messages))
            finally:
                if new:
                    self.close()

    def _send_all(self, email_messages: list[DjangoEmailMessage]) -> int:
        jobs: list[dict[str, Any]] = []
        first_error: BaseException | None = None
        for msg in email_messages:
            if not msg.recipients():
                continue
            try:
                jobs.append(message_fields(msg))
            except (ValueError, TypeError, OSError) as exc:  # a message that cannot be built
                first_error = first_error or exc
        assert self.connection is not None
        sent = 0
        retried = False
        while jobs:
            # The session reopens a connection the server dropped; the messages
            # that connection lost before their end of data go again, as long as
            # each connection delivers something (or once, if none did).
            results = self.connection.send_many(jobs)
            again = [job for job, result in zip(jobs, results)
                     if not result.ok and type(result.error) is SMTPServerDisconnected and _fresh(job)]
            delivered = sum(result.ok for result in results)
            sent += delivered
            if again and (delivered or not retried):
                retried = retried or not delivered
                jobs = again
                continue
            first_error = first_error or next((r.error for r in results if not r.ok), None)
            break
        if first_error is not None and not self.fail_silently:
            raise first_error
        return sent


def _fresh(job: dict[str, Any]) -> bool:
    """Can this message be sent again (its source was not consumed, or can be rewound)?"""
    source = job["source"]
    return not source.started or source.replayable


SMTPError = SMTPError  # re-exported: ``except smtpstream.django.SMTPError``
