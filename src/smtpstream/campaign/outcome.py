"""What one attempt's :class:`~smtpstream.smtp.bulk.BulkResult` means for each recipient.

* accepted: *sent*, with the end of data's reply and queue id;
* a 5xx to its RCPT, or a 5xx for the whole message: *refused*;
* a 4xx to its RCPT, or a temporary failure of the whole message (a 4xx, a
  timeout, a lost connection before the end of data): *deferred* until the
  :class:`~.retry.RetrySchedule` gives it up (*failed*, with that reply);
* the end of data written and no reply (RFC 1047): *unknown*;
* not attempted (the pool stopped, its circuit breaker opened) or stopped
  before its end of data was written: *pending* again, nothing counted;
* any other permanent error without a reply (a TLS or configuration error):
  *failed*.
"""
from __future__ import annotations

from typing import Any

from ..smtp.errors import SMTPInterrupted, SMTPRecipientsRefused
from .journal import Entry, Item, summarise
from .retry import RetrySchedule

__all__ = ["entries_for"]


def _reply_fields(reply: Any) -> dict[str, Any]:
    if reply is None:
        return {}
    return {"code": reply.code, "enhanced": getattr(reply, "enhanced", None) or None, "text": reply.text}


def _defer(rcpt: Any, fields: dict[str, Any], schedule: RetrySchedule, now: float) -> Entry:
    """A recipient's entry after a temporary failure: deferred, or failed once the schedule gives up."""
    first = rcpt.first_deferred if rcpt.first_deferred is not None else now
    due = schedule.next_attempt(rcpt.attempts + 1 if rcpt.state == "deferred" else 1, first, now)
    if due is None:
        return Entry(rcpt.address, "failed", first_deferred=first, **fields)
    return Entry(rcpt.address, "deferred", first_deferred=first, next_attempt=due, **fields)


def entries_for(item: Item, result: Any, schedule: RetrySchedule, now: float) -> tuple[str, list[Entry]]:
    """(the message's new state, one entry per recipient tried)."""
    entries: list[Entry] = []
    error = result.error
    if result.ok:
        sent = result.result
        final = sent.reply
        code, enhanced, text, queue_id = final.code, final.enhanced or None, final.text, sent.queue_id
        replies = sent.recipients
        for rcpt in item.recipients:
            reply = replies.get(rcpt.address)
            if reply is None or reply.positive:
                entries.append(Entry(rcpt.address, "sent", code, enhanced, text, queue_id))
            elif 400 <= reply.code < 500:
                entries.append(_defer(rcpt, _reply_fields(reply), schedule, now))
            else:
                entries.append(Entry(rcpt.address, "refused", **_reply_fields(reply)))
    elif not result.attempted or isinstance(error, SMTPInterrupted):
        entries = [Entry(r.address, r.state, attempted=False, first_deferred=r.first_deferred)
                   for r in item.recipients]
        if item.state == "deferred":  # tried too early by a stopped run: due again at once
            for e in entries:
                e.next_attempt = now
    elif result.unknown:
        for rcpt in item.recipients:
            entries.append(Entry(rcpt.address, "unknown", text=str(error)))
    elif isinstance(error, SMTPRecipientsRefused):
        refused = result.refused
        for rcpt in item.recipients:
            reply = refused.get(rcpt.address)
            if reply is not None and 400 <= reply.code < 500:
                entries.append(_defer(rcpt, _reply_fields(reply), schedule, now))
            else:
                entries.append(Entry(rcpt.address, "refused", **_reply_fields(reply)))
    else:
        fields = _reply_fields(getattr(error, "reply", None)) or {"code": getattr(error, "code", None)}
        fields.setdefault("text", str(error))
        fields["text"] = fields["text"] or str(error)
        fields.setdefault("enhanced", getattr(error, "enhanced", None))
        for rcpt in item.recipients:
            if getattr(error, "temporary", False):
                entries.append(_defer(rcpt, dict(fields), schedule, now))
            elif fields.get("code") is not None:
                entries.append(Entry(rcpt.address, "refused", **fields))
            else:
                entries.append(Entry(rcpt.address, "failed", **fields))
    return summarise({e.state for e in entries} | item.others), entries
