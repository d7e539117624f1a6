"""smtpstream's bulk sender: smtpstream.pool.Pool.send_many over N connections.

usage: python bulk_smtpstream.py HOST PORT KIND COUNT CONNECTIONS [ATTACHMENT] [--async] [--template]
(see bulk_common). Messages are built lazily, one per item the pool takes, with message() or,
with --template, from one smtpstream.message.template (To and Subject given per message);
exit 1 unless every BulkResult is ok.
With --async: smtpstream.pool.AsyncPool (N connections on one thread) instead of
Pool (one thread per connection).
"""
import asyncio
import sys

from smtpstream.message import attachment, message, template, text
from smtpstream.pool import AsyncPool, Pool

from bulk_common import ATTACH_TEXT, FROM, SMALL_BODY, parse, subject


def templated(job):
    """The same messages from a message template: layout and body built once."""
    if job.kind == "attach100k":
        body = {1: text(ATTACH_TEXT), 2: attachment(job.attachment)}
    else:
        body = text(SMALL_BODY)
    layout = template({"headers": {"from": FROM}, "body": body})
    for i in range(job.count):
        yield {"source": layout.message({"to": f"user{i}@example.com", "subject": subject(job.kind, i)})}


def messages(job):
    for i in range(job.count):
        headers = {"from": FROM, "to": f"user{i}@example.com", "subject": subject(job.kind, i)}
        if job.kind == "attach100k":
            table = {"headers": headers, "body": {1: text(ATTACH_TEXT), 2: attachment(job.attachment)}}
        else:
            part = text(SMALL_BODY)
            table = {"headers": {**headers, **part["headers"]}, "body": part["body"]}
        yield {"source": message(table)}


def main():
    use_async = "--async" in sys.argv
    build = templated if "--template" in sys.argv else messages
    job = parse([a for a in sys.argv[1:] if a not in ("--async", "--template")])
    kind = AsyncPool if use_async else Pool
    pool = kind(server=job.host, port=job.port, connections=job.connections, max_messages=1_000_000,
                domain="client.example.com")
    if use_async:
        results = asyncio.run(pool.send_many(build(job)))
    else:
        results = pool.send_many(build(job))
    failed = [r for r in results if not r.ok]
    for r in failed[:5]:
        print(f"message {r.index}: {r.error!r}", file=sys.stderr)
    if failed or len(results) != job.count:
        print(f"{len(failed)} of {len(results)} results not ok ({job.count} messages)", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
