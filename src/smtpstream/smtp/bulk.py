"""Many messages, one result each: :class:`BulkResult` and the bookkeeping behind it.

Shared by ``Session.send_many`` (one connection, both transports) and the
pools: a :class:`Batch` turns each message's fields into a checked
:class:`~smtpstream.smtp.options.MessageSpec` when it is its turn, files the
outcome, and says whether a message lost with its connection may be tried
once more on another. :func:`backs_off` is the one rule for which failures
slow a whole pool down. No I/O and no threads here.
"""
from __future__ import annotations

import _thread  # threading.Lock is _thread's lock; threading costs milliseconds to import
import itertools
from collections.abc import Mapping

from ._value import Value
from .errors import (
    SMTPError,
    SMTPInterrupted,
    SMTPRecipientsRefused,
    SMTPServerDisconnected,
    SMTPUnknownOutcome,
)
from .emailmsg import is_message
from .options import MESSAGE_FIELDS, MessageSpec, SendResult, is_message_source, message_spec, split_fields
from .reply import Reply

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: typing takes milliseconds to import
    from typing import Any, Callable, Iterable

__all__ = ["BulkResult", "Batch", "Job", "backs_off", "refuse_coroutine_function", "RATE_LIMIT_STATUS"]

#: RFC 3463 status codes of a 4xx end of data that name a rate or load limit
#: of the server as a whole (4.7.0 security or policy, 4.7.28 rate limited,
#: 4.3.2 system not accepting messages, 4.4.5 system congestion).
RATE_LIMIT_STATUS = frozenset({"4.7.0", "4.7.28", "4.3.2", "4.4.5"})
#: Phases whose 4xx concerns the session or the server, not one message.
_SERVER_PHASES = frozenset({"connect", "greeting", "ehlo", "helo", "starttls", "auth", "mail"})


def _is_mapping(fields: Any) -> bool:
    """``isinstance(fields, Mapping)``, a dict answered without the ABC's check (per message)."""
    return type(fields) is dict or isinstance(fields, Mapping)


def backs_off(error: BaseException) -> bool:
    """Should this failure slow the whole pool down?

    421 anywhere (the server is closing the connection); a 4xx to the
    greeting, EHLO, STARTTLS, AUTH or MAIL; a 4xx to DATA, a BDAT chunk or
    the end of data whose enhanced code names a rate or load limit
    (:data:`RATE_LIMIT_STATUS`). A 4xx to RCPT (greylisting, a full mailbox)
    concerns that recipient only: it never does.
    """
    code = getattr(error, "code", None)
    if code == 421:
        return True
    if code is None or not 400 <= code < 500 or isinstance(error, SMTPRecipientsRefused):
        return False
    phase = getattr(error, "phase", None)
    if phase in _SERVER_PHASES:
        return True
    return phase in ("data", "body", "end") and getattr(error, "enhanced", None) in RATE_LIMIT_STATUS

_CONSUMED = "the message source was already read; build the message again to resend it"


class BulkResult(Value, frozen=False):
    """The outcome of one message: ``result`` when delivered to someone, else ``error``.

    ``fields`` are the message's fields; once a message is delivered to every
    recipient its ``source`` is dropped from them, so that the results of a
    large batch do not hold every message. ``key`` is the caller's own
    ``key`` field (never sent). ``attempted`` is False for a message that
    never reached a server (a pool's circuit breaker was open, or the pool
    was stopped before its turn). ``unknown`` is True when its end of data
    was written and no reply came (the server may have it); a message resent
    after such a loss has ``possible_duplicate`` set.
    """

    _fields = ("index", "fields", "result", "error", "attempted", "possible_duplicate")
    _shown = ("index", "result", "error", "attempted", "possible_duplicate")
    index: int
    fields: Mapping[str, Any]
    result: SendResult | None
    error: SMTPError | None
    attempted: bool
    possible_duplicate: bool

    def __init__(self, index: int, fields: Mapping[str, Any], result: SendResult | None = None,
                 error: SMTPError | None = None, attempted: bool = True, possible_duplicate: bool = False) -> None:
        self.index = index
        self.fields = fields
        self.result = result
        self.error = error
        self.attempted = attempted
        self.possible_duplicate = possible_duplicate

    @property
    def ok(self) -> bool:
        return self.result is not None

    @property
    def key(self) -> Any:
        fields = self.fields
        return fields.get("key") if _is_mapping(fields) else None

    @property
    def unknown(self) -> bool:
        """True when the outcome is unknown: the server may or may not have the message."""
        return isinstance(self.error, SMTPUnknownOutcome)

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
    if is_message_source(source):
        return not source.started or source.replayable
    return isinstance(source, (list, tuple, bytes, bytearray, memoryview)) or is_message(source)


def _started(fields: Mapping[str, Any]) -> bool:
    source = fields.get("source")
    return is_message_source(source) and source.started


def refuse_coroutine_function(on_result: Any) -> None:
    if on_result is None:
        return
    if not callable(on_result):
        raise TypeError(f"on_result must be callable, got {type(on_result).__name__}")
    import inspect  # only when a callback is given: keeps the import light

    if inspect.iscoroutinefunction(on_result):
        raise TypeError("on_result is a coroutine function: blocking sends cannot await it"
                        " (use smtpstream.aio or AsyncPool, or a plain function)")


class Job:
    """One message of a batch: its place, its fields, how often it was tried."""

    __slots__ = ("index", "fields", "attempts", "error", "possible_duplicate")

    def __init__(self, index: int, fields: Mapping[str, Any]) -> None:
        self.index = index
        self.fields = fields
        self.attempts = 0
        self.error: SMTPError | None = None
        self.possible_duplicate = False


class Batch:
    """The messages of one ``send_many``: each gets exactly one :class:`BulkResult`.

    ``attempts``: how many connections a message may be tried on when the one
    carrying it is lost (2 for the pools: reconnect and retry once; 1 for a
    single session). A message lost after its end of data was written is
    tried again only with ``resend_unknown`` (its result then says
    ``possible_duplicate``); otherwise it is reported as unknown.
    ``backoff`` is called for each failure :func:`backs_off` names. With
    ``on_result`` each result goes to that callable as soon as it is final
    (in the order messages finish, one call at a time) and is not kept: a
    batch of millions of messages then needs no memory per message. If
    ``on_result`` raises, the batch stops (:meth:`stop`) and ``failure`` holds
    the exception, for the caller to raise once everything is reported.
    ``defaults`` are message fields given to every message that lacks them
    (a pool's ``dkim`` signer). ``before_end(key)`` is called with a message's
    ``key`` field just before its end of data is written (see
    :meth:`ending`): a journal commits there that the message is on its way
    (with an asyncio pool it may return an awaitable: a commit on a thread).
    """

    def __init__(self, attempts: int = 1, backoff: Callable[[], None] | None = None,
                 on_result: Callable[[BulkResult], Any] | None = None, resend_unknown: bool = False,
                 defaults: Mapping[str, Any] | None = None,
                 before_end: Callable[[Any], Any] | None = None) -> None:
        if before_end is not None and not callable(before_end):
            raise TypeError(f"before_end must be callable, got {type(before_end).__name__}")
        self.before_end = before_end
        #: What a connection's send_stream calls before each end of data (None: nothing).
        self.ending = None if before_end is None else self._ending
        self.attempts = attempts
        self.defaults = dict(defaults or {})  # message fields for every message that lacks them
        self.backoff = backoff
        self.on_result = on_result
        self.resend_unknown = resend_unknown
        self._lock = _thread.allocate_lock()  # the pool's threads file results concurrently
        self.results: dict[int, BulkResult] = {}
        #: Jobs handed to a connection and not yet filed, by index.
        self.open: dict[int, Job] = {}
        #: True once no new message may start (an interrupt, a failure of the caller's code).
        self.stopping = False
        #: True once the caller's iterator of messages raised.
        self.exhausted = False
        #: The exception to raise once every known outcome is reported.
        self.failure: BaseException | None = None
        self._closed = False

    def source_failed(self, failure: BaseException) -> None:
        """The caller's iterator of messages raised: take no more; the messages already
        taken are still sent, then ``failure`` is raised."""
        self.exhausted = True
        if self.failure is None:
            self.failure = failure

    def stop(self, failure: BaseException | None = None) -> None:
        """Start no new message; remember the first ``failure`` to raise at the end."""
        self.stopping = True
        if failure is not None and self.failure is None:
            self.failure = failure

    def _ending(self, job: Job) -> Any:
        """The end of data of ``job`` is about to be written: tell ``before_end``.
        If it raises, the batch stops (nothing more starts) and the exception
        propagates into the dialogue, which then never writes that end of data.
        An awaitable it returns (an asyncio pool's) is given back, to be
        awaited before that end of data, its failure stopping the batch too."""
        fields = job.fields
        try:
            waiting = self.before_end(fields.get("key") if _is_mapping(fields) else None)
        except BaseException as exc:
            self.stop(exc)
            raise
        return None if waiting is None else self._awaited(waiting)

    async def _awaited(self, waiting: Any) -> None:
        try:
            await waiting
        except BaseException as exc:
            self.stop(exc)
            raise

    def spec(self, job: Job) -> MessageSpec | None:
        """The job's checked spec for its next attempt, or None when it already has its result."""
        fields = job.fields
        if not _is_mapping(fields):
            self._file(job, error=SMTPError(
                f"TypeError: a message must be a mapping of fields, got {type(fields).__name__}"))
            return None
        if (job.attempts or _started(fields)) and not resendable(fields):
            self._file(job, error=job.error or SMTPError(_CONSUMED))
            return None
        try:
            if "key" in fields:  # the caller's own: comes back on the result, never sent
                fields = {k: v for k, v in fields.items() if k != "key"}
            if fields.keys() <= MESSAGE_FIELDS:  # the usual case: nothing to rename or to refuse
                msg_fields = fields
            else:
                conn_fields, msg_fields = split_fields(fields, {})
                if conn_fields:
                    raise TypeError(f"connection fields {sorted(conn_fields)} belong to the pool or session")
            spec = message_spec({**self.defaults, **msg_fields} if self.defaults else msg_fields)
        except SMTPError as exc:
            self._file(job, error=exc)
            return None
        except Exception as exc:  # a bad message's fields: its own result, not everyone's
            self._file(job, error=SMTPError(f"{type(exc).__name__}: {exc}"))
            return None
        job.attempts += 1
        self.open[job.index] = job
        return spec

    def finish(self, job: Job, result: SendResult | None, error: SMTPError | None) -> bool:
        """File an outcome; True when the job should be tried again on another connection."""
        if error is not None:
            if self.backoff is not None and backs_off(error):
                self.backoff()
            if job.attempts < self.attempts and not self.stopping:
                unknown = isinstance(error, SMTPUnknownOutcome)
                if (unknown and self.resend_unknown) or isinstance(error, SMTPServerDisconnected):
                    job.error = error
                    job.possible_duplicate = job.possible_duplicate or unknown
                    return True
        self._file(job, result=result, error=error)
        return False

    def fail(self, job: Job, error: SMTPError) -> bool:
        """A job that never reached a server (the connection could not be made)."""
        job.attempts += 1
        return self.finish(job, None, error)

    def abandon(self, job: Job, error: SMTPError) -> None:
        """File a job that will not be tried (again): not attempted unless it was."""
        self._file(job, error=job.error if job.attempts and job.error is not None else error,
                   attempted=job.attempts > 0)

    def interrupted(self, why: BaseException) -> SMTPInterrupted:
        return SMTPInterrupted(f"not sent: the send was stopped ({why!r})")

    def give_up(self, why: BaseException) -> None:
        """Stop waiting: each job still open is reported unknown (it may be on the
        wire), and outcomes filed after this are ignored."""
        for job in list(self.open.values()):
            self._file(job, error=SMTPUnknownOutcome(
                f"the caller stopped waiting for this message's reply ({why!r}): it may have been delivered"))
        self._closed = True

    def _file(self, job: Job, result: SendResult | None = None, error: SMTPError | None = None,
              attempted: bool = True) -> None:
        if self._closed:
            return
        self.open.pop(job.index, None)
        fields = job.fields
        if result is not None and not result.refused and _is_mapping(fields) and "source" in fields:
            # Delivered to everyone: nothing will be resent, so the result does
            # not keep the message (a million results, not a million messages).
            fields = {k: v for k, v in fields.items() if k != "source"}
        outcome = BulkResult(job.index, fields, result=result, error=error, attempted=attempted,
                             possible_duplicate=job.possible_duplicate)
        if self.on_result is None:
            self.results[job.index] = outcome
            return
        with self._lock:
            try:
                self.on_result(outcome)
            except Exception as exc:  # the caller's code: stop, raise it when all is reported
                self.stop(exc)

    def ordered(self) -> list[BulkResult] | None:
        """Every result in message order; None when they went to ``on_result``."""
        if self.on_result is not None:
            return None
        return [self.results[i] for i in sorted(self.results)]

    def taker(self, messages: Iterable[Any]) -> Callable[[], Job | None]:
        """A function giving the next :class:`Job` of ``messages`` (thread-safe), or None
        at the end or once stopping. An exception of the caller's iterator stops
        the batch: it is raised by :meth:`conclude`, after every known outcome."""
        items = iter(messages)
        counter = itertools.count()
        lock = _thread.allocate_lock()

        def take() -> Job | None:
            with lock:
                if self.stopping or self.exhausted:
                    return None
                try:
                    fields = next(items)
                except StopIteration:
                    return None
                except Exception as exc:
                    self.source_failed(exc)
                    return None
                return Job(next(counter), fields)
        return take

    def conclude(self) -> list[BulkResult] | None:
        """The results (see :meth:`ordered`); raises ``failure`` when the batch stopped on
        one, with the results known so far as its ``results`` attribute."""
        results = self.ordered()
        failure = self.failure
        if failure is not None:
            try:
                failure.results = results  # type: ignore[attr-defined]
            except AttributeError:  # pragma: no cover - an exception type with __slots__
                pass
            raise failure
        return results

