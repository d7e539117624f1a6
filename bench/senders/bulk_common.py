"""Shared by the bulk senders: arguments and the two message kinds.

usage of every bulk sender: HOST PORT KIND COUNT CONNECTIONS [ATTACHMENT]
KIND is ``attach100k`` (a short text and the 100 KiB attachment file, as in
the one-connection senders) or ``small2k`` (one text/plain part of about
2 KiB, no attachment). ATTACHMENT defaults to $SMTPSTREAM_BENCH_ATTACHMENT,
else $SMTPSTREAM_BENCH_DIR/attach-100k.bin (bench/test_message_bench.attachment_file).
bulk_nodemailer.js builds the same body the same way.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass

KINDS = ("attach100k", "small2k")
FROM = "Sender <sender@example.com>"
ATTACH_TEXT = "Please find the report attached.\n"


def small_body(size: int = 2048) -> str:
    """About ``size`` bytes of plain ASCII lines (LF), the same every run."""
    lines, total, n = [], 0, 0
    while total < size:
        line = f"Line {n:02d} of the daily digest: nothing to report, all systems normal.\n"
        lines.append(line)
        total += len(line)
        n += 1
    return "".join(lines)


SMALL_BODY = small_body()


@dataclass
class Job:
    host: str
    port: int
    kind: str
    count: int
    connections: int
    attachment: str


def parse(argv: list[str] | None = None) -> Job:
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (5, 6) or args[2] not in KINDS:
        sys.exit(f"usage: {os.path.basename(sys.argv[0])} HOST PORT {{{'|'.join(KINDS)}}} COUNT CONNECTIONS [ATTACHMENT]")
    default = os.environ.get("SMTPSTREAM_BENCH_ATTACHMENT") or os.path.join(
        os.environ.get("SMTPSTREAM_BENCH_DIR", "/tmp/smtpstream-bench"), "attach-100k.bin")
    return Job(args[0], int(args[1]), args[2], int(args[3]), int(args[4]), args[5] if len(args) == 6 else default)


def subject(kind: str, i: int) -> str:
    return f"Report {i}" if kind == "attach100k" else f"Digest {i}"


def check(delivered: int, job: Job) -> None:
    """Exit 1 unless every message was delivered."""
    if delivered != job.count:
        print(f"delivered {delivered} of {job.count} messages", file=sys.stderr)
        sys.exit(1)
