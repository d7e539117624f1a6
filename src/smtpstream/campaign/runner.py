"""A campaign run: rows into the journal, messages out through an AsyncPool, outcomes back in.

The order of one run (see :class:`Campaign`):

1. the journal is claimed for this campaign (another campaign's is refused);
2. rows left *sending* by a run that died become *unknown* (:meth:`Journal.recover`);
3. every row of the manifest is checked and journaled in one transaction:
   a bad row, a missing file or column, a changed row is an error before
   anything is sent, and leaves the journal as it was;
4. the journal's due messages are sent, in journal order: new rows, deferred
   recipients whose retry is due, unknown rows only with ``resend_unknown``
   (with their Message-ID unchanged). Each message is committed *sending*
   just before its end of data is written and its outcome as soon as its
   reply is read;
5. retries that come due within ``linger`` seconds of the end are waited for.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import signal
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from ..pool import AsyncPool
from .journal import Entry, Item, Journal, JournalError, open_journal
from .manifest import ManifestError, Row
from .outcome import entries_for
from .retry import RetrySchedule
from .writer import JournalWriter
from .template import MissingFile, Template, TemplateError, message_id_for

__all__ = ["Campaign", "CampaignError", "CampaignStopped"]

PAGE = 500  # journal rows fetched at a time: memory does not grow with the manifest


class CampaignError(Exception):
    """The campaign cannot start: nothing was sent. ``missing_file`` is True when
    the cause is a file that does not exist or cannot be read."""

    def __init__(self, message: str, missing_file: bool = False) -> None:
        super().__init__(message)
        self.missing_file = missing_file


def _refused(exc: Exception) -> CampaignError:
    return CampaignError(str(exc), missing_file=isinstance(exc, MissingFile))


class CampaignStopped(Exception):
    """SIGTERM stopped the run gracefully: every outcome known is journaled."""


def _stored(row: Row) -> dict[str, Any]:
    """The row's fields by name (the dataclass's own dict: the journal encodes it at once)."""
    return vars(row)


def _restored(data: Mapping[str, Any]) -> Row:
    return Row(**data)


class Campaign:
    """A durable bulk job over one journal (see the module doc).

    ``settings`` are :class:`~smtpstream.pool.AsyncPool`'s (server, port, TLS,
    AUTH, connections, rate, back-off...), checked now. Besides:
    ``resend_unknown`` (False): also send the rows whose outcome is unknown,
    Message-ID unchanged; ``retry``: the :class:`RetrySchedule`; ``linger``
    (0): seconds to wait after the last message for retries coming due;
    ``on_progress(counts)``: called with the message counts per state as they
    change (at most every ``progress_interval`` seconds, and at the end).
    """

    def __init__(self, journal: str, *, resend_unknown: bool = False, retry: RetrySchedule | None = None,
                 linger: float = 0.0, on_progress: Callable[[dict[str, int]], Any] | None = None,
                 progress_interval: float = 0.2, **settings: Any) -> None:
        self.path = str(journal)
        self.resend_unknown = bool(resend_unknown)
        self.schedule = retry or RetrySchedule()
        self.linger = float(linger)
        self.on_progress = on_progress
        self.progress_interval = progress_interval
        settings.setdefault("resend_unknown", False)
        # One message in flight per connection with CHUNKING too: a kill then leaves at
        # most two unknown outcomes per connection (the journal's promise), not a window.
        settings.setdefault("window", 1)
        if settings["resend_unknown"]:
            raise ValueError("Campaign: the pool must not resend by itself (use Campaign(resend_unknown=True))")
        self.settings = settings
        AsyncPool(**settings)  # the pool's checks, now: a typo fails before any row is read
        self._journal: Journal | None = None
        #: The error of the last message not sent at all (the pool's circuit breaker opened).
        self.last_error: Exception | None = None
        self._tally: dict[str, int] = {}
        self._shown = 0.0
        #: The writer thread of the run sending now: outcomes go there, not to the journal.
        self._writer: JournalWriter | None = None

    # ---- the journal

    @property
    def journal(self) -> Journal:
        if self._journal is None:
            self._journal = open_journal(self.path)
        return self._journal

    def close(self) -> None:
        journal, self._journal = self._journal, None
        if journal is not None:  # closed once, even when closing raises (a journal it could not write)
            journal.close()

    def __enter__(self) -> Campaign:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def status(self) -> dict[str, Any]:
        """Messages per state (and ``total``); ``recipients``: the same per recipient."""
        return self.journal.counts()

    def result(self, key: Any) -> dict[str, Any] | None:
        """A row's record by its key: state, Message-ID, attempts, each recipient's reply."""
        return self.journal.entry(str(key))

    def report(self) -> Iterator[tuple[Any, ...]]:
        """One tuple per recipient (:data:`~.journal.REPORT_FIELDS`)."""
        return self.journal.report()

    def template(self) -> Template:
        """The template journaled by the first run (for a retry without the manifest)."""
        definition = self.journal.get_json("definition")
        if definition is None:
            raise CampaignError(f"{self.path}: no campaign in this journal yet")
        return Template.from_definition(definition)

    # ---- checking and journaling rows

    def _ingest(self, rows: Iterable[Row], template: Template, run: int, keep: bool) -> tuple[int, int]:
        """Check every row and journal it, in one transaction (kept only when ``keep``)."""
        journal = self.journal
        campaign_id = journal.get("campaign")
        columns = getattr(rows, "columns", None)
        template.check_columns(columns, f"manifest {getattr(rows, 'path', '')}".strip())

        each_row_columns = columns is None  # else every row has the header's (a CSV manifest)

        def checked() -> Iterator[tuple[str, str | None, Any, str, list[str]]]:
            for row in rows:
                recipients = template.check(row, f"row {row.key!r} (row {row.number})", each_row_columns)
                # no digest: a row journaled before is compared with its stored row (values, number)
                yield (row.key, None, _stored(row), message_id_for(campaign_id, row.key, template.domain),
                       recipients)

        with journal.transaction(keep):
            return journal.add(run, checked())

    def _claim(self, template: Template) -> int:
        try:
            run = self.journal.claim(template.campaign_id(), template.definition())
        except JournalError as exc:
            raise CampaignError(str(exc)) from None
        self.journal.put("settings", json.dumps(_public(self.settings), sort_keys=True, default=str))
        return run

    def check(self, rows: Iterable[Row], template: Template) -> int:
        """Check every row as a run would, journal nothing, send nothing; the number of rows."""
        known = self.journal.get("campaign")
        if known is not None and known != template.campaign_id():
            self._claim(template)  # raises: another campaign's journal
        try:
            campaign_id = template.campaign_id()
            if known is None:  # a first check: the rows are checked under the id they will have
                self.journal.put("campaign", campaign_id)
            try:
                new, old = self._ingest(rows, template, int(self.journal.get("runs") or 0) + 1, keep=False)
            finally:
                if known is None:
                    self.journal.forget("campaign")
        except (ManifestError, TemplateError, JournalError) as exc:
            raise _refused(exc) from None
        return new + old

    # ---- running

    def run(self, rows: Iterable[Row] | None = None, template: Template | None = None) -> dict[str, Any]:
        """Journal ``rows`` (a :class:`~.manifest.Manifest` or Rows) with ``template``, then send
        what is due; without them, send what is due from the journal alone (a retry).
        Returns :meth:`status`. SIGINT raises KeyboardInterrupt and SIGTERM
        :class:`CampaignStopped`, each after a graceful stop (no unknown outcome)."""
        return _run_with_signals(self.run_async(rows, template))

    def retry(self) -> dict[str, Any]:
        """Send only what is due (deferred recipients; unknown rows with ``resend_unknown``)."""
        return self.run()

    def prepare(self, rows: Iterable[Row] | None, template: Template) -> int:
        """What a run does before sending: tie the journal to the campaign, recover the
        rows a dead run left *sending*, check and journal ``rows``. The run's number."""
        try:
            run = self._claim(template)
            self.journal.recover()
            if rows is not None:
                self._ingest(rows, template, run, keep=True)
        except (ManifestError, TemplateError, JournalError) as exc:
            raise _refused(exc) from None
        return run

    async def run_async(self, rows: Iterable[Row] | None = None, template: Template | None = None
                        ) -> dict[str, Any]:
        if template is None:
            if rows is not None:
                raise TypeError("Campaign.run: rows need a template")
            template = self.template()
        self.prepare(rows, template)
        self._tally = {k: v for k, v in self.journal.counts().items() if k != "recipients"}
        self._progress(force=True)
        await self._send(self._journal_pairs(template))
        deadline = time.time() + self.linger
        while True:
            due = self.journal.next_due()
            if due is None or due > deadline:
                break
            await asyncio.sleep(max(0.0, due - time.time()))
            await self._send(self._journal_pairs(template))
        self._progress(force=True)
        return self.status()

    async def run_messages(self, messages: Iterable[Mapping[str, Any]], name: str = "messages"
                           ) -> dict[str, Any]:
        """Ready message fields (``source``, ``from``, ``rcpt``...), each with a unique
        ``key``: a key the journal has as sent, refused or failed is skipped, an
        unknown one too unless ``resend_unknown``, a deferred one gets its due
        recipients only. ``name`` identifies the campaign in the journal. A retry
        is this call again with the same messages (their sources must be new)."""
        definition = {"messages": name}
        campaign_id = hashlib.sha256(json.dumps(definition).encode()).hexdigest()[:16]
        journal = self.journal
        try:
            run = journal.claim(campaign_id, definition)
        except JournalError as exc:
            raise _refused(exc) from None
        journal.recover()
        self._tally = {k: v for k, v in journal.counts().items() if k != "recipients"}

        def pairs() -> Iterator[tuple[Item, dict[str, Any]]]:
            from ..smtp.options import message_spec

            for fields in messages:
                fields = dict(fields)
                if "key" not in fields:
                    raise CampaignError("Campaign.run_messages: every message needs a 'key' field")
                key = str(fields.pop("key"))
                spec = message_spec(fields)  # checked before it is journaled
                rcpt = list(spec.recipients)
                message_id = getattr(fields.get("source"), "message_id", None) or ""
                # the envelope: a message() source has a new Date (and Message-ID unless given) each run
                digest = hashlib.sha256(json.dumps([spec.sender, rcpt]).encode()).hexdigest()
                with journal.transaction():
                    journal.add(run, [(key, digest, None, message_id, rcpt)])
                seq = journal.lookup(key)[0]
                item = journal.item(seq, time.time(), self.resend_unknown)
                if item is None or not item.recipients:
                    continue
                fields["rcpt"] = [r.address for r in item.recipients]
                fields["key"] = item.seq
                yield item, fields

        await self._send(pairs(), threaded=False)  # pairs() writes to the journal itself
        self._progress(force=True)
        return self.status()

    def _journal_pairs(self, template: Template) -> Iterator[tuple[Item, dict[str, Any]]]:
        """The due messages of the journal, in order, built from their rows."""
        journal = self.journal
        after = 0
        while True:
            page = journal.due(time.time(), after, self.resend_unknown, PAGE)
            if not page:
                return
            after = page[-1].seq
            for item in page:
                if not item.recipients:
                    continue
                try:
                    fields = item_fields(template, item)
                except Exception as exc:  # a file gone since the check: this row fails, the rest goes on
                    self._record(item, "failed", not_sent(item, exc))
                    continue
                yield item, fields

    async def _send(self, pairs: Iterator[tuple[Item, dict[str, Any]]], threaded: bool | None = None) -> None:
        """Send (item, fields) pairs through a pool, journaling each outcome (``fields``
        has the item's ``seq`` as its ``key``). The journal's
        writes are committed by a :class:`JournalWriter` thread when ``threaded``
        (by default when the journal says its commits wait on a network), else on
        the event loop."""
        journal = self.journal
        inflight: dict[int, Item] = {}
        schedule = self.schedule

        def messages() -> Iterator[dict[str, Any]]:
            for item, fields in pairs:
                inflight[item.seq] = item
                yield fields

        loop = asyncio.get_running_loop()
        flushing = []
        failed: list[BaseException] = []

        def flush() -> None:
            flushing.clear()
            try:
                journal.flush()
            except Exception as exc:  # a loop callback cannot stop the run: the next mark or outcome does
                failed.append(exc)

        def sending(seq: int) -> None:
            if failed:  # the journal cannot write: no end of data goes out unrecorded
                raise failed[0]
            journal.sending(seq)

        def on_result(result: Any) -> None:
            item = inflight.pop(result.fields["key"])  # the fields messages() gave
            if not result.attempted:
                self.last_error = result.error
            state, entries = entries_for(item, result, schedule, time.time())
            self._record(item, state, entries, commit=False)
            # On the loop: committed before the event loop next waits, with the other
            # outcomes read meanwhile (or sooner, with the next message's sending mark).
            if self._writer is None and not flushing:
                flushing.append(loop.call_soon(flush))
            if failed:  # the run stops (what was recorded is held until a write succeeds)
                raise failed[0]

        pool = AsyncPool(**self.settings)
        if threaded is None:
            threaded = journal.threaded_writes
        writer = self._writer = JournalWriter(journal, loop) if threaded else None
        try:
            await pool.send_many(messages(), on_result=on_result,
                                 before_end=sending if writer is None else writer.mark)
        finally:
            self._writer = None
            if writer is not None:
                writer.close()
            journal.flush()

    def _record(self, item: Item, state: str, entries: list[Entry], commit: bool = True) -> None:
        if self._writer is not None:
            self._writer.record(item.seq, state, entries)
        else:
            self.journal.record(item.seq, state, entries, commit)
        tally = self._tally
        tally[item.state] = tally.get(item.state, 0) - 1
        tally[state] = tally.get(state, 0) + 1
        item.state = state
        self._progress()

    def _progress(self, force: bool = False) -> None:
        if self.on_progress is None:
            return
        now = time.monotonic()
        if force or now - self._shown >= self.progress_interval:
            self._shown = now
            self.on_progress(dict(self._tally))


def item_fields(template: Template, item: Item) -> dict[str, Any]:
    """A journaled row's message fields: its message built again, its due recipients, its key."""
    return {"source": template.source(_restored(item.row), item.message_id),
            "rcpt": [r.address for r in item.recipients], "key": item.seq}


def not_sent(item: Item, exc: Exception) -> list[Entry]:
    """The entries of a row whose message could not be built (nothing was sent)."""
    return [Entry(r.address, "failed", text=f"not sent: {exc}", attempted=False) for r in item.recipients]


def _public(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The settings a later run may reuse: never a password (its variable's name only)."""
    return {k: v for k, v in settings.items() if k not in ("password", "ssl_context", "dkim", "auth", "socket")}


def _run_with_signals(coroutine: Any) -> Any:
    """asyncio.run, with SIGTERM cancelling the run as SIGINT does (a graceful stop)."""
    async def main() -> Any:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        terminated = []

        def terminate() -> None:
            terminated.append(True)
            task.cancel()
        try:
            loop.add_signal_handler(signal.SIGTERM, terminate)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, not POSIX
            pass
        try:
            return await coroutine
        except asyncio.CancelledError:
            if terminated:
                raise CampaignStopped("stopped by SIGTERM: every known outcome is in the journal") from None
            raise
        finally:
            try:
                loop.remove_signal_handler(signal.SIGTERM)
            except (NotImplementedError, RuntimeError, ValueError):
                pass
    return asyncio.run(main())
