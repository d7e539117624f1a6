"""A campaign against the bare pool on the same messages: what journaling costs.

usage: python campaign_smtpstream.py HOST PORT COUNT CONNECTIONS WORKDIR MODE
MODE ``pool``: AsyncPool.send_many over COUNT messages built by the campaign's
Template from the manifest's rows (no journal); ``campaign``: Campaign.run on
the same manifest and template (a fresh SQLite journal in WORKDIR: rows
checked and journaled, each message committed sending, then its outcome).
The manifest (COUNT rows) is written to WORKDIR first, outside the timing
that matters (both modes read it). Exit 1 unless every message was sent.
"""
import asyncio
import csv
import os
import sys

from smtpstream.campaign import Campaign, Template, read_manifest
from smtpstream.pool import AsyncPool

from bulk_common import FROM, SMALL_BODY


def manifest(workdir: str, count: int) -> str:
    path = os.path.join(workdir, f"rows-{count}.csv")
    if not os.path.exists(path):
        with open(path + ".tmp", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["id", "email", "name"])
            for i in range(count):
                writer.writerow([f"row-{i}", f"user{i}@example.com", f"User {i}"])
        os.replace(path + ".tmp", path)
    return path


def main():
    host, port, count, connections, workdir, mode = sys.argv[1:7]
    count, connections = int(count), int(connections)
    rows = read_manifest(manifest(workdir, count))
    template = Template(FROM, "Digest for {name}", "Dear {name},\n" + SMALL_BODY.replace("{", "{{").replace("}", "}}"))
    settings = dict(server=host, port=int(port), connections=connections, max_messages=1_000_000,
                    domain="client.example.com", starttls="off")
    if mode == "pool":
        cid = template.campaign_id()

        def messages():
            from smtpstream.campaign import message_id_for

            for row in rows:
                yield template.build(row, message_id_for(cid, row.key, template.domain))
        results = asyncio.run(AsyncPool(**settings).send_many(messages()))
        sent = sum(r.ok for r in results)
    else:
        journal = os.path.join(workdir, f"run-{os.getpid()}.db")
        with Campaign(journal, **settings) as campaign:
            sent = campaign.run(rows, template)["sent"]
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(journal + suffix):
                os.remove(journal + suffix)
    if sent != count:
        print(f"{sent} of {count} sent", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
