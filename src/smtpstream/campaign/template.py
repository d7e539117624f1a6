"""A campaign's message template: ``{column}`` placeholders filled from each row.

Only plain names: ``{name}``, with ``{{`` and ``}}`` for literal braces; no
attribute or index access, no conversions or format specs (a manifest's
data must not reach into Python objects). Values put into the HTML body
are HTML-escaped. Shared attachments (``attach_all``) are encoded once for
the whole campaign (:func:`~smtpstream.message.cached`).
"""
from __future__ import annotations

import hashlib
import html as html_lib
import json
import os
import re
import string
from collections.abc import Sequence
from typing import Any

from ..message import MessageTemplate, alternative, attachment, cached, html, message, template, text
from ..message.headers import addresses, format_header
from .manifest import ManifestError, Row

__all__ = ["Template", "TemplateError", "MissingFile", "message_id_for"]


class TemplateError(ValueError):
    """A template that cannot be used (a bad placeholder, a missing file)."""


class MissingFile(TemplateError):
    """An attachment (or --attach-all file) that does not exist or cannot be read."""


def _pieces(template: str, where: str) -> tuple[tuple[str, str | None], ...]:
    out = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise TemplateError(f"{where}: {exc} (write {{{{ and }}}} for literal braces)") from None
    for literal, name, spec, conversion in parsed:
        if name is not None:
            if not name.strip() or any(c in name for c in ".[]") or spec or conversion:
                raise TemplateError(
                    f"{where}: placeholder {{{name}{'!' + conversion if conversion else ''}"
                    f"{':' + spec if spec else ''}}} is not a plain column name (no attribute, index or format)")
        out.append((literal, name))
    return tuple(out)


def _render(pieces: tuple[tuple[str, str | None], ...], values: dict[str, str], escape: bool) -> str:
    parts = []
    for literal, name in pieces:
        parts.append(literal)
        if name is not None:
            value = values[name]
            parts.append(html_lib.escape(value) if escape else value)
    return "".join(parts)


def message_id_for(campaign_id: str, key: str, domain: str) -> str:
    """The row's Message-ID: the same for the same campaign and key, in every run."""
    digest = hashlib.sha256(f"{campaign_id}\0{key}".encode()).hexdigest()[:32]
    return f"<{digest}.{campaign_id[:8]}@{domain}>"


_UNQUOTED_NAME = re.compile(r"[\w !#$%&'*+\-/=?^`{|}~]*")  # \w: what str.isalnum() takes, and "_"


def _quote_name(name: str) -> str:
    if _UNQUOTED_NAME.fullmatch(name):
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Template:
    """``subject``, ``text`` and optional ``html`` with placeholders; the ``from_``
    address; ``attach_all`` paths sent with every message; ``headers`` for every
    message (a row's ``header:NAME`` columns override them)."""

    def __init__(self, from_: str, subject: str, text: str, html: str | None = None,
                 attach_all: Sequence[str] = (), headers: dict[str, str] | None = None) -> None:
        for name, value in (("from_", from_), ("subject", subject), ("text", text)):
            if not isinstance(value, str):
                raise TypeError(f"Template {name} must be str, got {type(value).__name__}")
        found = addresses(from_)
        if len(found) != 1:
            raise TemplateError(f"the From address {from_!r} must name one mailbox")
        self.from_ = from_
        self.sender = found[0]
        self.domain = self.sender.rpartition("@")[2]
        self.subject, self.text, self.html = subject, text, html
        self.attach_all = [os.path.abspath(p) for p in attach_all]
        self.headers = dict(headers or {})
        self._subject = _pieces(subject, "the subject")
        self._text = _pieces(text, "the text body")
        self._html = None if html is None else _pieces(html, "the HTML body")
        self.names = {n for pieces in (self._subject, self._text, self._html or ()) for _, n in pieces if n}
        for path in self.attach_all:
            check_file(path, "--attach-all")
        self._shared: list[dict] | None = None
        self._same_body = not any(name for pieces in (self._text, self._html or ()) for _, name in pieces)
        self._template: MessageTemplate | None = None

    def definition(self) -> dict[str, Any]:
        """What identifies the campaign (and what a retry rebuilds the template from)."""
        return {"from": self.from_, "subject": self.subject, "text": self.text, "html": self.html,
                "attach_all": self.attach_all, "headers": self.headers}

    @classmethod
    def from_definition(cls, d: dict[str, Any]) -> Template:
        return cls(d["from"], d["subject"], d["text"], d.get("html"), d.get("attach_all", ()), d.get("headers"))

    def campaign_id(self) -> str:
        return hashlib.sha256(json.dumps(self.definition(), sort_keys=True).encode()).hexdigest()[:16]

    def check_columns(self, columns: Sequence[str] | None, where: str) -> None:
        """A placeholder naming a column the manifest does not have."""
        if columns is None:
            return
        missing = sorted(self.names - set(columns))
        if missing:
            raise TemplateError(f"the template uses {', '.join('{' + m + '}' for m in missing)}, "
                                f"which {where} does not have (columns: {', '.join(columns)})")

    def check(self, row: Row, where: str, columns: bool = True) -> list[str]:
        """Everything about a row that would fail while sending, found before anything is
        sent: its columns (unless ``columns`` is False: every row has the columns
        of a manifest's header, checked once), its files, its addresses and header
        values (the bodies cannot fail: any text is encoded)."""
        if columns:
            self.check_columns(list(row.values), where)
        for path in row.attach:
            check_file(path, f"{where}: attachment")
        try:
            recipients = self.recipients(row)
            for name, value in self._row_headers(row).items():
                format_header(name, value)
        except ValueError as exc:
            raise ManifestError(f"{where}: {exc}") from None
        return recipients

    def _row_headers(self, row: Row) -> dict[str, Any]:
        """The headers a row brings: To, Cc, Reply-To, the subject, its own header: columns."""
        headers: dict[str, Any] = {}
        headers["to"] = f"{_quote_name(row.name)} <{row.email}>" if row.name else row.email
        if row.cc:
            headers["cc"] = ", ".join(row.cc)
        if row.reply_to:
            headers["reply-to"] = row.reply_to
        headers["subject"] = _render(self._subject, row.values, False)
        headers.update(row.headers)
        return headers

    def build(self, row: Row, message_id: str) -> dict[str, Any]:
        """The message fields for one row: ``source`` (a ``message()``) and ``rcpt``."""
        return {"source": self.source(row, message_id), "rcpt": self.recipients(row)}

    def source(self, row: Row, message_id: str) -> Any:
        """The row's message: a ``message()`` source."""
        values = row.values
        own = self._row_headers(row)
        headers: dict[str, Any] = {"from": self.from_, "message-id": message_id}
        headers.update(self.headers)
        headers.update(own)
        if not row.attach and self._same_body:
            # Every row's body is the same: its layout is built once (message.template).
            return self._layout().message({"message-id": message_id, **own})
        part = self._part(values)
        files = [attachment(p) for p in row.attach] + self._shared_parts()
        if files:
            table = {"headers": headers, "body": {"parts": [part, *files]}}
        else:
            table = {"headers": {**headers, **part["headers"]}, "body": part["body"]}
        return message(table)

    def _part(self, values: dict[str, str]) -> dict[str, Any]:
        part = text(_render(self._text, values, False))
        if self._html is not None:
            part = alternative(part, html(_render(self._html, values, True)))
        return part

    def _layout(self) -> MessageTemplate:
        """The message template of a body with no placeholder (rows without attachments)."""
        if self._template is None:
            files = self._shared_parts()
            part = self._part({})
            body = {"parts": [part, *files]} if files else part
            self._template = template({"headers": {"from": self.from_, **self.headers}, "body": body})
        return self._template

    @staticmethod
    def recipients(row: Row) -> list[str]:
        """The row's envelope recipients (``email``, then ``cc``), as the envelope writes them."""
        out: list[str] = []
        for address in (row.email, *row.cc):
            try:
                found = addresses(address)
            except ValueError as exc:
                raise ManifestError(f"bad address {address!r}: {exc}") from None
            if len(found) != 1 or "@" not in found[0] or "<" in address:
                raise ManifestError(f"bad address {address!r}: one plain address (local@domain) is expected")
            if found[0] not in out:
                out.append(found[0])
        return out

    def _shared_parts(self) -> list[dict]:
        if self._shared is None:
            self._shared = [cached(attachment(p)) for p in self.attach_all]
        return self._shared


def check_file(path: str, what: str) -> None:
    if not os.path.isfile(path):
        raise MissingFile(f"{what} {path}: no such file")
    if not os.access(path, os.R_OK):
        raise MissingFile(f"{what} {path}: not readable")
