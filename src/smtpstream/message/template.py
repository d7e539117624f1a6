"""``template(mesgt)``: a message layout built once, sent many times with a few fields changed.

A bulk job sends the same body and most of the same headers to every
recipient; only To, the Subject, a greeting header... change. ``message()``
would check, lower and format every header and look at the body's shape
again for each message. A template does that once::

    layout = template({"headers": {"from": "Shop <shop@example.com>",
                                   "subject": "Your invoice"},
                       "body": text("Please find ...")})
    for row in rows:
        send({"source": layout.message({"to": row.email})})

``layout.message(headers)`` gives the bytes ``message()`` gives for the same
table with ``headers`` merged into its headers (case-insensitively: a field
named again replaces the template's in its place, a new one comes after
them), its body shared (:func:`~smtpstream.message.shared`): encoded once,
the same bytes and boundaries in every message. Each message still gets its
own Date and Message-ID, and every field given per message is checked as
``message()`` checks it, so a bad value raises there and nothing is sent.
"""
from __future__ import annotations

from collections.abc import Mapping

from . import headers as hdr
from .builder import (
    MessageError,
    MessageSource,
    SharedBody,
    _TABLE_KEYS,
    _date,
    _lower_headers,
    _shared_message,
    shared,
    unsubscribe_headers,
)

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: typing takes milliseconds to import
    from typing import Any

__all__ = ["template", "MessageTemplate"]


class MessageTemplate:
    """A message table prepared once: see the module doc and :func:`template`."""

    __slots__ = ("body", "zone", "_given", "_lines")

    def __init__(self, mesgt: Mapping[Any, Any]) -> None:
        if not isinstance(mesgt, Mapping):
            raise MessageError(f"template() needs a mapping, got {type(mesgt).__name__}")
        if not mesgt.keys() <= _TABLE_KEYS:
            raise MessageError(f"template: unknown keys {sorted(map(str, set(mesgt) - _TABLE_KEYS))}")
        given = _lower_headers(mesgt.get("headers"), "template")
        self.zone = mesgt.get("zone")
        _date(self.zone)  # a bad zone is refused now, not at the first message
        #: The body every message carries, built once.
        self.body: SharedBody = shared(mesgt.get("body"))
        # Formatted now: a bad value fails here, and no message formats it again.
        # Bcc and MIME-Version are never written: message() drops them.
        self._lines = {name: hdr.format_header(name, value) for name, value in given.items()
                       if name not in ("bcc", "mime-version")}
        self._given = given
        self.message()  # everything a message needs is checked (Content-Type given, an address list)

    def message(self, headers: Mapping[str, Any] | None = None, *, dkim: Any = None,
                unsubscribe: Any = None) -> MessageSource:
        """One message: the template's headers with ``headers`` merged in (see the module doc).

        ``dkim`` and ``unsubscribe`` as for :func:`~smtpstream.message.message`.
        """
        own = _lower_headers(headers, "template.message") if headers else {}
        given = {**self._given, **own} if own else dict(self._given)
        if unsubscribe is not None:
            own.update(unsubscribe_headers(unsubscribe, given))
            given.update(own)
        return _shared_message(given, self.body, self.zone, self._lines, dkim, "template.message",
                               fresh=own)


def template(mesgt: Mapping[Any, Any]) -> MessageTemplate:
    """Prepare ``mesgt`` (a message table, as for ``message()``) for many messages."""
    return MessageTemplate(mesgt)
