"""A run's journal writes on a thread of their own, so that commits never stall the event loop.

For a journal whose commit waits on a network (PostgreSQL: a round trip per
transaction, the GIL released meanwhile; ``Journal.threaded_writes``): on a
thread the wait runs beside the sending instead of in it. SQLite's commit is
CPU work, cheaper on the loop than handed over (measured). The journal's
commit rule is unchanged. :meth:`JournalWriter.mark` gives the pool's ``before_end`` an
awaitable that is done once the message is committed *sending*, and the
pool writes the end of data only then; :meth:`JournalWriter.record` hands
an outcome to the thread, which commits it at once, together with every
mark and outcome that arrived meanwhile (one transaction for all of them:
the busier the run, the fewer commits per message).

After a failed commit nothing more is written: every later mark fails (so
no end of data is written that the journal does not know of), and the
outcomes not committed go back to the journal, whose :meth:`~.journal.Journal.flush`
tries them once more and raises if it cannot.
"""
from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from typing import Any

from .journal import Entry, Journal

__all__ = ["JournalWriter"]


class JournalWriter:
    """Commits a journal's sending marks and outcomes on a thread and a connection of
    its own (see the module doc). Made, used and closed on the event loop's thread."""

    def __init__(self, journal: Journal, loop: asyncio.AbstractEventLoop) -> None:
        self._journal = journal
        self._loop = loop
        journal.sync()  # what was recorded before comes first
        self._db = journal.connect()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._marks: list[tuple[int, asyncio.Future[None]]] = []
        self._outcomes: list[tuple[int, str, Sequence[Entry]]] = []
        self._callbacks: list[Callable[[BaseException | None], Any]] = []
        self._busy = False  # the thread is committing a batch
        self._closing = False
        #: The first failed commit: from then on nothing is written.
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="smtpstream-journal-writer", daemon=True)
        self._thread.start()

    def mark(self, seq: int) -> asyncio.Future[None]:
        """``seq`` is about to have its end of data written: done once it is committed
        *sending* (failed, and the end of data not written, if it cannot be)."""
        future = self._loop.create_future()
        with self._lock:
            if self.error is not None:
                raise self.error
            self._marks.append((seq, future))
            self._changed.notify()
        return future

    def record(self, seq: int, state: str, entries: Sequence[Entry],
               committed: Callable[[BaseException | None], Any] | None = None) -> None:
        """The outcome of one attempt (as :meth:`Journal.record`), committed at once;
        then ``committed(None)`` is called on the loop (``committed(error)`` if the
        commit failed)."""
        with self._lock:
            self._outcomes.append((seq, state, entries))
            if committed is not None:
                if self.error is not None:  # never committed by this writer: say so now
                    self._loop.call_soon(committed, self.error)
                else:
                    self._callbacks.append(committed)
            self._changed.notify()

    def drain(self) -> None:
        """Wait until everything handed over is committed; raise the failed commit's error."""
        with self._lock:
            while (self._marks or self._outcomes or self._busy) and self.error is None:
                self._changed.wait()
            if self.error is not None:
                raise self.error

    def close(self) -> None:
        """Commit what is waiting, stop the thread; outcomes it could not commit go back
        to the journal (its next flush tries them, and raises if it cannot)."""
        with self._lock:
            self._closing = True
            self._changed.notify_all()
        self._thread.join()
        self._db.close()
        with self._lock:
            outcomes, self._outcomes = self._outcomes, []
        if outcomes:
            for outcome in outcomes:
                self._journal.record(*outcome, commit=False)
            self._journal.flush()

    # ---- the thread

    def _run(self) -> None:
        journal, db = self._journal, self._db
        while True:
            with self._lock:
                while not (self._marks or self._outcomes) and not self._closing:
                    self._changed.wait()
                if self.error is not None or not (self._marks or self._outcomes):
                    # closing with everything committed, or stopped by a failed commit:
                    # a mark that came meanwhile fails (its end of data is not written)
                    marks, self._marks = self._marks, []
                    callbacks, self._callbacks = self._callbacks, []
                    self._hand_back(marks, [], self.error, callbacks)
                    return
                marks, self._marks = self._marks, []
                outcomes, self._outcomes = self._outcomes, []
                callbacks, self._callbacks = self._callbacks, []
                self._busy = True
            changed: list[int] = []
            error: BaseException | None = None
            try:
                changed = journal.write(db, outcomes, [seq for seq, _ in marks])
            except Exception as exc:  # a full disk, a lost database: stop writing
                error = exc
            with self._lock:
                self._busy = False
                if error is not None:
                    self.error = error
                    self._outcomes[:0] = outcomes
                self._changed.notify_all()
            self._hand_back(marks, changed, error, callbacks)

    def _hand_back(self, marks: list[tuple[int, asyncio.Future[None]]], changed: list[int],
                   error: BaseException | None, callbacks: list[Callable[[BaseException | None], Any]]) -> None:
        """From the thread: :meth:`_settle` these on the loop."""
        if marks or callbacks:
            try:
                self._loop.call_soon_threadsafe(self._settle, marks, changed, error, callbacks)
            except RuntimeError:  # the loop is closed: nobody waits for these
                pass

    def _settle(self, marks: list[tuple[int, asyncio.Future[None]]], changed: list[int],
                error: BaseException | None, callbacks: list[Callable[[BaseException | None], Any]]) -> None:
        """On the loop: each mark's future done, or failed (its end of data is not
        written); then the outcomes' ``committed`` callbacks."""
        for index, (seq, future) in enumerate(marks):
            if future.done():  # cancelled: that message was abandoned
                continue
            if error is not None:
                future.set_exception(error)
                continue
            try:
                self._journal.check_marked(seq, changed[index])
            except Exception as exc:
                future.set_exception(exc)
            else:
                future.set_result(None)
        for callback in callbacks:
            callback(error)
