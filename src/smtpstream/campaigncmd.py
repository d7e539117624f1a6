"""``smtpstream campaign send|status|report|retry``: a durable bulk job from the shell.

Exit codes of ``send`` and ``retry`` (those of ``smtpstream send``, plus 3)::

    0   every recipient sent
    1   finished, but some recipients were refused or given up, or some
        messages have an unknown outcome (listed; see --resend-unknown)
    3   finished with deferred recipients still waiting for a retry: run
        ``smtpstream campaign retry`` later (from cron, say)
    64  usage error; a bad manifest row, template or journal (nothing sent)
    66  a manifest, body or attachment file is missing or unreadable
    75  some messages could not be sent (the server could not be reached,
        the run was stopped): run the same command again to resume
    130 stopped by SIGINT, 143 by SIGTERM (gracefully: every outcome known is journaled)
"""
from __future__ import annotations

import argparse
import sys
import time

from .sendcmd import (
    EXIT_NOINPUT,
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_TEMPFAIL,
    EXIT_USAGE,
    CommandError,
    add_connection_options,
    connection_fields,
    read_text,
)

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: typing takes milliseconds to import
    from typing import Any, TextIO

EXIT_DEFERRED = 3
EXIT_SIGTERM = 143
#: The sending options a later ``campaign retry`` reuses (never a password: its variable's name).
_REUSED = ("server", "tls", "starttls", "cafile", "capath", "insecure", "user", "password_env", "timeout",
           "connections", "rate",
           "retry_schedule", "give_up_after", "linger")


def add_campaign_parser(sub: Any) -> None:
    top = sub.add_parser("campaign", help="durable bulk jobs: send a manifest, show status, report, retry")
    cmds = top.add_subparsers(dest="campaign_command", required=True)
    send = cmds.add_parser("send", help="send one message per manifest row (rerun to resume)")
    send.add_argument("manifest", metavar="MANIFEST", help="CSV with a header row, or JSON Lines (.jsonl)")
    send.add_argument("--journal", required=True, metavar="FILE.db")
    send.add_argument("--from", dest="sender", required=True, metavar="ADDRESS")
    send.add_argument("--subject", required=True, help="with {column} placeholders")
    send.add_argument("--text-file", required=True, metavar="FILE", help="the text body, with {column} placeholders")
    send.add_argument("--html-file", metavar="FILE", help="an HTML alternative (values are HTML-escaped)")
    send.add_argument("--attach-all", action="append", default=[], metavar="PATH",
                      help="a file sent with every message (encoded once)")
    send.add_argument("--header", action="append", default=[], metavar="'NAME: VALUE'",
                      help="a header for every message")
    send.add_argument("--check", action="store_true", help="check every row; send nothing")
    send.add_argument("--engine", choices=("local", "celery"), default="local",
                      help="local (default): this process sends; celery: enqueue batches for"
                           " `celery -A smtpstream.celery worker` processes (needs --journal postgresql://...)")
    send.add_argument("--broker", metavar="URL", help="the Celery broker for --engine celery (redis://...)")
    send.add_argument("--batch-size", type=int, default=500, metavar="N", help="rows per Celery task (default 500)")
    _sending_options(send)
    send.set_defaults(run=run_campaign_send)
    retry = cmds.add_parser("retry", help="send what is due: deferred recipients, rows not sent yet")
    retry.add_argument("--journal", required=True, metavar="FILE.db")
    retry.add_argument("--resend-unknown", action="store_true",
                       help="also resend messages whose outcome is unknown (same Message-ID)")
    retry.add_argument("--password-env", metavar="VAR", help="the password's variable, if not the journaled one")
    retry.add_argument("--quiet", action="store_true")
    retry.set_defaults(run=run_campaign_retry)
    status = cmds.add_parser("status", help="counts per state")
    status.add_argument("--journal", required=True, metavar="FILE.db")
    status.add_argument("--json", action="store_true")
    status.set_defaults(run=run_campaign_status)
    report = cmds.add_parser("report", help="one CSV line per recipient")
    report.add_argument("--journal", required=True, metavar="FILE.db")
    report.add_argument("--csv", required=True, metavar="OUT", help="the file to write ('-': stdout)")
    report.set_defaults(run=run_campaign_report)


def _sending_options(p: argparse.ArgumentParser) -> None:
    add_connection_options(p)
    p.add_argument("--connections", type=int, default=4)
    p.add_argument("--rate", type=float, default=None, help="messages per second for the whole campaign")
    p.add_argument("--timeout", type=float, default=None, help="seconds for every phase")
    p.add_argument("--resend-unknown", action="store_true",
                   help="resend messages whose outcome is unknown (same Message-ID)")
    p.add_argument("--retry-schedule", default="60,300,900,3600", metavar="SECONDS,...",
                   help="delays before the 1st, 2nd... retry of a deferred recipient (default 1, 5, 15, 60 min)")
    p.add_argument("--give-up-after", type=float, default=86400.0, metavar="SECONDS",
                   help="a recipient still deferred this long after its first deferral fails (default 24 h)")
    p.add_argument("--linger", type=float, default=0.0, metavar="SECONDS",
                   help="wait this long after the last message for retries coming due (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress line")


def _campaign(args: Any, options: dict[str, Any]):
    from .campaign import Campaign, RetrySchedule

    fields = connection_fields(argparse.Namespace(**options))
    try:
        delays = [float(x) for x in str(options["retry_schedule"]).split(",")]
        schedule = RetrySchedule(delays, options["give_up_after"])
    except ValueError as exc:
        raise CommandError(EXIT_USAGE, f"bad --retry-schedule or --give-up-after: {exc}") from None
    progress = None if options.get("quiet") else Progress(sys.stderr)
    try:
        return Campaign(args.journal, resend_unknown=args.resend_unknown, retry=schedule,
                        linger=options["linger"], connections=options["connections"], rate=options["rate"],
                        on_progress=progress, max_messages=1000, **fields), progress
    except (TypeError, ValueError) as exc:
        raise CommandError(EXIT_USAGE, str(exc)) from None


def _template(args: argparse.Namespace):
    from .campaign import Template
    from .campaign.template import MissingFile, TemplateError

    headers = {}
    for item in args.header:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise CommandError(EXIT_USAGE, f"bad --header {item!r}: write 'Name: value'")
        headers[name.strip()] = value.strip()
    try:
        return Template(args.sender, args.subject, read_text(args.text_file),
                        read_text(args.html_file) if args.html_file else None, args.attach_all, headers)
    except MissingFile as exc:
        raise CommandError(EXIT_NOINPUT, str(exc)) from None
    except ValueError as exc:
        raise CommandError(EXIT_USAGE, str(exc)) from None


def _refusal(exc: Any) -> CommandError:
    return CommandError(EXIT_NOINPUT if getattr(exc, "missing_file", False) else EXIT_USAGE, str(exc))


def run_campaign_send(args: argparse.Namespace) -> int:
    from .campaign import CampaignError, ManifestError, read_manifest

    template = _template(args)
    try:
        manifest = read_manifest(args.manifest)
    except ManifestError as exc:
        raise CommandError(EXIT_NOINPUT if "No such file" in str(exc) or "ermission" in str(exc) else EXIT_USAGE,
                           str(exc)) from None
    options = {name: getattr(args, name) for name in _REUSED}
    options["quiet"] = args.quiet
    if args.engine == "celery" and not args.check:
        return _send_on_celery(args, options, template, manifest)
    campaign, progress = _campaign(args, options)
    if args.check:
        with campaign:
            try:
                rows = campaign.check(manifest, template)
            except CampaignError as exc:
                raise _refusal(exc) from None
            print(f"smtpstream campaign: {rows} rows checked, nothing sent")
            return EXIT_OK
    return _run(campaign, progress, lambda: campaign.run(manifest, template), options)


def _send_on_celery(args: argparse.Namespace, options: dict[str, Any], template: Any, manifest: Any) -> int:
    """Journal the rows, enqueue their batches, then show the journal's progress until done."""
    from .campaign import CampaignError

    if not args.journal.startswith(("postgresql://", "postgres://")):
        raise CommandError(EXIT_USAGE, "--engine celery needs a journal every worker reaches: --journal postgresql://...")
    if not args.broker:
        raise CommandError(EXIT_USAGE, "--engine celery needs --broker URL (the workers' SMTPSTREAM_BROKER)")
    try:
        from . import celery as engine
    except ImportError as exc:
        raise CommandError(EXIT_USAGE, f"--engine celery: {exc} (pip install 'smtpstream[celery]')") from None
    fields = connection_fields(argparse.Namespace(**options))
    fields.pop("password", None)  # the workers read it from options["password_env"]
    progress = None if options.get("quiet") else Progress(sys.stderr)
    started = time.monotonic()
    try:
        tasks = engine.enqueue(args.journal, manifest, template, broker=args.broker, batch_size=args.batch_size,
                               rate=options["rate"], password_env=options["password_env"],
                               resend_unknown=args.resend_unknown, connections=options["connections"],
                               max_messages=1000, **fields)
    except CampaignError as exc:
        raise _refusal(exc) from None
    except (TypeError, ValueError) as exc:
        raise CommandError(EXIT_USAGE, str(exc)) from None
    print(f"smtpstream campaign: {tasks} batch(es) enqueued; waiting for the workers", file=sys.stderr)
    try:
        counts = engine.progress(args.journal, on_progress=progress)
    finally:
        if progress is not None:
            progress.done()
    print(summary(counts, time.monotonic() - started))
    journal = engine.PgJournal(args.journal)
    try:
        unknown = journal.keys_in("unknown")
    finally:
        journal.close()
    return _conclude(counts, unknown, None)


def run_campaign_retry(args: argparse.Namespace) -> int:
    from .campaign import JournalError, open_journal

    try:
        journal = open_journal(args.journal)
        options = journal.get_json("cli")
        journal.close()
    except JournalError as exc:
        raise CommandError(EXIT_USAGE, str(exc)) from None
    if options is None:
        raise CommandError(EXIT_USAGE, f"{args.journal}: no campaign was sent with this journal yet")
    if args.password_env:
        options["password_env"] = args.password_env
    options["quiet"] = args.quiet
    options["linger"] = 0.0
    campaign, progress = _campaign(args, options)
    return _run(campaign, progress, campaign.retry, options)


def _run(campaign: Any, progress: Progress | None, call: Any, options: dict[str, Any]) -> int:
    """``call()`` (a run) with ``campaign`` open, and what it comes to: the summary, the exit code."""
    from .campaign import JournalWriteError

    try:
        with campaign:  # closing writes the journal too
            return _run_open(campaign, progress, call, options)
    except JournalWriteError as exc:  # mid-run (a full disk): no end of data went out unrecorded
        print(f"smtpstream campaign: stopped, the journal could not be written: {exc}; run the same command"
              " again once it can be (messages whose outcome it could not record are listed as unknown)",
              file=sys.stderr)
        return EXIT_TEMPFAIL


def _run_open(campaign: Any, progress: Progress | None, call: Any, options: dict[str, Any]) -> int:
    import json  # here, as csv below: --help and the other commands need neither

    from .campaign import CampaignError, CampaignStopped

    # Before sending: a retry after a crash needs them.
    campaign.journal.put("cli", json.dumps({k: v for k, v in options.items() if k != "quiet"}))
    started = time.monotonic()
    try:
        counts = call()
    except CampaignError as exc:
        raise _refusal(exc) from None
    except CampaignStopped as exc:
        print(f"smtpstream campaign: {exc}", file=sys.stderr)
        return EXIT_SIGTERM
    finally:
        if progress is not None:
            progress.done()
    elapsed = time.monotonic() - started
    print(summary(counts, elapsed))
    return _conclude(counts, campaign.journal.keys_in("unknown"), campaign.last_error)


def _conclude(counts: dict[str, Any], unknown: list[str], last_error: Any) -> int:
    """What is left to say after a run, and its exit code."""
    if unknown:
        shown = ", ".join(unknown[:10]) + (" ..." if len(unknown) > 10 else "")
        print(f"smtpstream campaign: {len(unknown)} message(s) with an unknown outcome (the connection was lost"
              f" after their end of data): {shown}; rerun with --resend-unknown to send them again",
              file=sys.stderr)
    if counts["pending"]:
        why = f": {last_error}" if last_error is not None else ""
        print(f"smtpstream campaign: {counts['pending']} message(s) not sent{why}; run the same command again",
              file=sys.stderr)
        return EXIT_TEMPFAIL
    if counts["deferred"]:
        return EXIT_DEFERRED
    if counts["refused"] or counts["failed"] or counts["unknown"] or (
            counts["recipients"]["refused"] or counts["recipients"]["failed"]):
        return EXIT_PARTIAL
    return EXIT_OK


def summary(counts: dict[str, Any], elapsed: float | None = None) -> str:
    parts = [f"{counts[s]} {s}" for s in ("sent", "refused", "deferred", "failed", "unknown", "pending") if counts[s]]
    text = f"campaign: {counts['total']} messages: " + (", ".join(parts) or "none")
    if elapsed is not None:
        text += f" ({elapsed:.1f} s)"
    return text


class Progress:
    """Counts per state, rate and ETA on one line of a terminal; nothing on a pipe."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()
        self.start = time.monotonic()
        self.first_done: int | None = None
        self.shown = False

    def __call__(self, counts: dict[str, int]) -> None:
        if not self.tty:
            return
        total = sum(v for k, v in counts.items() if k != "total")
        done = sum(counts.get(s, 0) for s in ("sent", "refused", "failed", "unknown", "deferred"))
        if self.first_done is None:
            self.first_done = done
        elapsed = max(time.monotonic() - self.start, 1e-6)
        rate = (done - self.first_done) / elapsed
        left = total - done
        eta = f"{int(left / rate) // 60}:{int(left / rate) % 60:02d}" if rate > 0 else "--:--"
        states = " ".join(f"{s} {counts.get(s, 0)}" for s in ("sent", "refused", "deferred", "failed", "unknown"))
        self.out.write(f"\r{done}/{total} | {states} | {rate:.0f} msg/s | ETA {eta} ")
        self.out.flush()
        self.shown = True

    def done(self) -> None:
        if self.shown:
            self.out.write("\n")
            self.out.flush()


def run_campaign_status(args: argparse.Namespace) -> int:
    counts = _read_only(args.journal).counts()
    if args.json:
        import json

        print(json.dumps(counts, sort_keys=True))
    else:
        print(summary(counts))
        r = counts["recipients"]
        print("recipients: " + ", ".join(f"{r[s]} {s}" for s in r if s != "total" and r[s]) + f" of {r['total']}")
    return EXIT_OK


def run_campaign_report(args: argparse.Namespace) -> int:
    from .campaign import REPORT_FIELDS

    journal = _read_only(args.journal)
    import csv

    out = sys.stdout if args.csv == "-" else open(args.csv, "w", newline="", encoding="utf-8")
    try:
        writer = csv.writer(out)
        writer.writerow(REPORT_FIELDS)
        for row in journal.report():
            row = list(row)
            if row[-1] is not None:
                row[-1] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(row[-1]))
            writer.writerow(row)
    finally:
        if out is not sys.stdout:
            out.close()
    return EXIT_OK


def _read_only(path: str):
    import os

    from .campaign import JournalError, open_journal

    remote = path.startswith(("postgresql://", "postgres://"))
    if not remote and not os.path.exists(path):
        raise CommandError(EXIT_NOINPUT, f"no journal at {path}")
    try:
        return open_journal(path)
    except JournalError as exc:
        raise CommandError(EXIT_USAGE, str(exc)) from None
