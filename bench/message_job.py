"""One message-building job, run in its own process so its peak RSS can be read.

usage: python bench/message_job.py IMPL JOB PATH
  IMPL: smtpstream | smtpstream-cached | stdlib
  JOB:  one (one message with the attachment at PATH)
        many (1,000 messages, each with the attachment at PATH)
Prints "bytes=<total produced> maxrss_kib=<peak RSS>".
"""
from __future__ import annotations

import resource
import sys


def smtpstream_messages(path, count, cached):
    from smtpstream.message import attachment, cached as cache, message, text

    shared = cache(attachment(path)) if cached else None
    total = 0
    for i in range(count):
        part = shared if cached else attachment(path)
        source = message({
            "headers": {"from": "Sender <sender@example.com>", "to": f"user{i}@example.com",
                        "subject": f"Report {i}"},
            "body": {1: text("Please find the report attached.\n"), 2: part},
        })
        for chunk in source:
            total += len(chunk)
    return total


def stdlib_messages(path, count):
    from email.generator import BytesGenerator
    from email.policy import SMTP

    from senders.smtplib_send import build  # the same message the sender benchmark sends

    class Null:
        total = 0

        def write(self, data):
            Null.total += len(data)

    for i in range(count):
        msg = build(path, i)
        BytesGenerator(Null(), policy=SMTP).flatten(msg)
    return Null.total


def main(impl, job, path):
    count = 1 if job == "one" else 1000
    if impl == "stdlib":
        total = stdlib_messages(path, count)
    else:
        total = smtpstream_messages(path, count, impl == "smtpstream-cached")
    print(f"bytes={total} maxrss_kib={peak_rss_kib()}")


def peak_rss_kib() -> int:
    # VmHWM belongs to this process image; ru_maxrss on Linux carries over the
    # forked parent's peak across exec, which would hide ours.
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


if __name__ == "__main__":
    main(*sys.argv[1:4])
