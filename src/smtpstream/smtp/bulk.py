"""Many messages, one result each: :class:`BulkResult` and the bookkeeping behind it.

Shared by ``Session.send_many`` (one connection, both transports) and the
pools: a :class:`Batch` turns each message's fields into a checked
:class:`~smtpstream.smtp.options.MessageSpec` when it is its turn, files the
outcome, and says whether a message lost with its connection may be tried
once more on another. No I/O and no threads here.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from collections.abc import Mapping
from typing import Any, Callable

from ..message import MessageSource
from .errors import SMTPError, SMTPRecipientsRefused, SMTPServerDisconnected
from .options import MessageSpec, SendResult, message_spec, split_fields
from .reply import Reply

__all__ = ["BulkResult", "Batch", "Job", "BACKOFF_CODES"]

#: Reply codes that make a pool slow down (RFC 5321 4.2.2/4.2.3).
BACKOFF_CODES = frozenset({421, 451, 454})

_CONSUMED = "the message source was already read; build the message again to resend it"


@dataclass
class BulkResult:
    """The outcome of one message: ``result`` when delivered to someone, else ``error``.

    ``fields`` are the message's fields; once a message is delivered to every
    recipient its ``source`` is dropped from them, so that the results of a
    large batch do not hold every message.
    """

    index: int
    fields: Mapping[str, Any] = field(repr=False)
    result: SendResult | None = None
    error: SMTPError | None = None

    @property
    def ok(self) -> bool:
        return self.result is not None

    @property
    def accepted(self) -> tuple[str, ...]:
        return self.result.accepted if self.result is not None else ()

    @property
    def refused(self) -> dict[str, Reply]:
        """Recipients refused, with their replies (temporary and permanent)."""
        if self.result is not None:
            return self.result.refused
        if isinstance(self.error, SMTPRecipientsRefused):
            return dict(self.error.refused)
        return {}

    @property
    def deferred(self) -> tuple[str, ...]:
        """Recipients worth retrying: refused with a 4xx, or all of them after a temporary error."""
        temp = tuple(r for r, reply in self.refused.items() if 400 <= reply.code < 500)
        if temp or self.result is not None or isinstance(self.error, SMTPRecipientsRefused):
            return temp
        if self.error is not None and getattr(self.error, "temporary", False):
            rcpt = self.fields.get("rcpt") or getattr(self.fields.get("source"), "recipients", ()) or ()
            return (rcpt,) if isinstance(rcpt, str) else tuple(rcpt)
        return ()


def resendable(fields: Mapping[str, Any]) -> bool:
    """Can this message's source give the whole message again?

    Lists and bytes can; a ``message()`` source can when all its parts can be
    read again (:attr:`MessageSource.replayable`), else until it is first read;
    any other iterator or callable cannot, so a message is never sent again
    truncated after its first attempt consumed part of it.
    """
    source = fields.get("source")
    if isinstance(source, MessageSource):
        return not source.started or source.replayable
    return isinstance(source, (list, tuple, bytes, bytearray, memoryview))


def _started(fields: Mapping[str, Any]) -> bool:
    source = fields.get("source")
    return isinstance(source, MessageSource) and source.started


class Job:
    """One message of a batch: its place, its fields, how often it was tried."""

    __slots__ = ("index", "fields", "attempts", "error")

    def __init__(self, index: int, fields: Mapping[str, Any]) -> None:
        self.index = index
        self.fields = fields
        self.attempts = 0
        self.error: SMTPError | None = None


class Batch:
    """The messages of one ``send_many``: each gets exactly one :class:`BulkResult`.

    ``attempts``: how many connections a message may be tried on when the one
    carrying it is lost (2 for the pools: reconnect and retry once; 1 for a
    single session). ``backoff`` is called for a 421/451/454. With
    ``on_result`` each result goes to that callable as soon as it is final
    (in the order messages finish, one call at a time) and is not kept: a
    batch of millions of messages then needs no memory per message.
    """

    def __init__(self, attempts: int = 1, backoff: Callable[[], None] | None = None,
                 on_result: Callable[[BulkResult], Any] | None = None) -> None:
        self.attempts = attempts
        self.backoff = backoff
        self.on_result = on_result
        self._lock = threading.Lock()  # the pool's threads file results concurrently
        self.results: dict[int, BulkResult] = {}

    def spec(self, job: Job) -> MessageSpec | None:
        """The job's checked spec for its next attempt, or None when it already has its result."""
        fields = job.fields
        if (job.attempts or _started(fields)) and not resendable(fields):
            self._file(job, error=job.error or SMTPError(_CONSUMED))
            return None
        if _started(fields):
            fields["source"].rewind()  # the whole message again, byte for byte
        try:
            if not isinstance(fields, Mapping):
                raise TypeError(f"a message must be a mapping of fields, got {type(fields).__name__}")
            conn_fields, msg_fields = split_fields(fields, {})
            if conn_fields:
                raise TypeError(f"connection fields {sorted(conn_fields)} belong to the pool or session")
            spec = message_spec(msg_fields)
        except SMTPError as exc:
            self._file(job, error=exc)
            return None
        except Exception as exc:  # a bad message's fields: its own result, not everyone's
            self._file(job, error=SMTPError(f"{type(exc).__name__}: {exc}"))
            return None
        job.attempts += 1
        return spec

    def finish(self, job: Job, result: SendResult | None, error: SMTPError | None) -> bool:
        """File an outcome; True when the job should be tried again on another connection."""
        if error is not None:
            if self.backoff is not None and getattr(error, "code", None) in BACKOFF_CODES:
                self.backoff()
            if isinstance(error, SMTPServerDisconnected) and job.attempts < self.attempts:
                job.error = error
                return True
        self._file(job, result=result, error=error)
        return False

    def fail(self, job: Job, error: SMTPError) -> bool:
        """A job that never reached a server (the connection could not be made)."""
        job.attempts += 1
        return self.finish(job, None, error)

    def _file(self, job: Job, result: SendResult | None = None, error: SMTPError | None = None) -> None:
        fields = job.fields
        if result is not None and not result.refused and isinstance(fields, Mapping) and "source" in fields:
            # Delivered to everyone: nothing will be resent, so the result does
            # not keep the message (a million results, not a million messages).
            fields = {k: v for k, v in fields.items() if k != "source"}
        outcome = BulkResult(job.index, fields, result=result, error=error)
        if self.on_result is None:
            self.results[job.index] = outcome
            return
        with self._lock:
            self.on_result(outcome)

    def ordered(self) -> list[BulkResult] | None:
        """Every result in message order; None when they went to ``on_result``."""
        if self.on_result is not None:
            return None
        return [self.results[i] for i in sorted(self.results)]

