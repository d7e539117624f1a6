"""Campaigns on Celery workers with a PostgreSQL journal (issue 17), broken on purpose.

Real services started here: PostgreSQL and redis-server (tests/services.py),
postfix's smtp-sink ``-d`` keeping every message as a file; workers are
``celery -A smtpstream.celery worker --pool solo`` processes, configured by
SMTPSTREAM_BROKER and SMTPSTREAM_JOURNAL only. What the server stored,
counted by Message-ID, is compared with what the journal recorded.
Claims last 3 s and the broker redelivers an unacknowledged task after 6 s
here (120 s and an hour by default), so that a killed worker's batch comes
back within the test.
"""
from __future__ import annotations

import collections
import csv
import itertools
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("celery", reason="the celery extra is not installed (pip install 'smtpstream[celery]')")
pytest.importorskip("psycopg", reason="the celery extra is not installed (pip install 'smtpstream[celery]')")

import smtpstream  # noqa: E402
from smtpstream.campaign import Template, open_journal, read_manifest  # noqa: E402

from services import fresh_database, postgres_server, redis_server  # noqa: E402
from smtp_servers import HOST  # noqa: E402
from test_campaign_crash import stored  # noqa: E402  (Message-IDs of what smtp-sink wrote)
from test_postfix_sink import sink  # noqa: E402,F401  (a fixture: smtp-sink -d on 127.0.0.1)

TEMPLATE = Template("statements@example.com", "Statement {id}", "Dear {name},\nyour statement is ready.\n")
_names = itertools.count()


@pytest.fixture(scope="module")
def services():
    with postgres_server() as pg, redis_server() as broker:
        yield pg, broker


@pytest.fixture
def campaign_env(services, tmp_path):
    """(journal URL, broker URL, a function starting a worker); workers stopped after."""
    pg, broker = services
    import redis

    redis.Redis.from_url(broker).flushall()
    journal = fresh_database(pg, f"celery_{next(_names)}")
    workers: list[subprocess.Popen] = []
    env = dict(os.environ, SMTPSTREAM_BROKER=broker, SMTPSTREAM_JOURNAL=journal, SMTPSTREAM_LEASE="3",
               SMTPSTREAM_VISIBILITY_TIMEOUT="6",
               PYTHONPATH=os.pathsep.join([str(Path(smtpstream.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]))

    def start(name: str) -> subprocess.Popen:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "smtpstream.celery", "worker", "--pool", "solo",
             "-n", f"{name}-{len(workers)}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat",
             "--loglevel", os.environ.get("TEST_CELERY_LOGLEVEL", "WARNING")], env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / f"{name}.log", "ab"))
        workers.append(worker)
        return worker

    yield journal, broker, start
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    for worker in workers:
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def manifest(tmp_path: Path, n: int):
    path = tmp_path / f"rows-{n}.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "email", "name"])
        writer.writerows([f"row-{i}", f"r{i}@example.com", f"Customer {i}"] for i in range(n))
    return read_manifest(str(path))


def journal_ids(journal: str) -> dict[str, set[str]]:
    reader = open_journal(journal)
    try:
        out: dict[str, set[str]] = collections.defaultdict(set)
        for state, message_id in reader.db.execute("SELECT state, message_id FROM messages"):
            out[state].add(message_id)
        return out
    finally:
        reader.close()


def wait_done(journal: str, timeout: float = 180) -> dict:
    from smtpstream.celery import progress

    deadline = time.monotonic() + timeout
    while True:
        counts = progress(journal, idle=min(30.0, deadline - time.monotonic()))
        if counts["pending"] == 0 and counts["sending"] == 0:
            return counts
        assert time.monotonic() < deadline, f"the workers did not finish: {counts}"


def settle(dump: Path, expected: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while len(list(dump.iterdir())) < expected and time.monotonic() < deadline:
        time.sleep(0.1)


def test_5000_rows_over_3_workers_are_each_delivered_once(campaign_env, sink, tmp_path):  # noqa: F811
    journal, broker, start = campaign_env
    port, dump = sink
    from smtpstream.celery import enqueue

    for k in range(3):
        start("w")
    tasks = enqueue(journal, manifest(tmp_path, 5000), TEMPLATE, broker=broker, server=HOST, port=port,
                    connections=2, batch_size=500)
    assert tasks == 10
    counts = wait_done(journal)
    settle(dump, 5000)
    found = stored(dump)
    ids = journal_ids(journal)
    assert counts["sent"] == 5000 and counts["unknown"] == 0
    assert set(found) == ids["sent"] and set(found.values()) == {1}  # every row, once


def test_a_duplicated_task_sends_nothing_twice(campaign_env, sink, tmp_path):  # noqa: F811
    journal, broker, start = campaign_env
    port, dump = sink
    from smtpstream.celery import enqueue, send_batch

    for k in range(3):
        start("w")
    enqueue(journal, manifest(tmp_path, 1200), TEMPLATE, broker=broker, server=HOST, port=port,
            connections=2, batch_size=400)
    for first, last in [(1, 400), (401, 800), (801, 1200)]:  # as a redelivery after a visibility timeout
        send_batch.apply_async((first, last, journal))
        send_batch.apply_async((first, last, journal))
    counts = wait_done(journal)
    time.sleep(1.0)  # the duplicates run to their end
    settle(dump, 1200)
    found = stored(dump)
    assert counts["sent"] == 1200 and len(found) == 1200 and set(found.values()) == {1}


def test_kill_9_of_workers_mid_batch_loses_and_duplicates_nothing(campaign_env, sink, tmp_path):  # noqa: F811
    journal, broker, start = campaign_env
    port, dump = sink
    from smtpstream.celery import enqueue

    rng = random.Random(17)
    workers = [start("w") for _ in range(3)]
    enqueue(journal, manifest(tmp_path, 3000), TEMPLATE, broker=broker, server=HOST, port=port,
            connections=2, batch_size=250, rate=400)
    kills = 0
    time.sleep(3.0)  # workers up and sending
    for _ in range(3):
        time.sleep(rng.uniform(0.3, 1.5))
        victim = rng.randrange(len(workers))
        workers[victim].kill()  # SIGKILL, mid-batch
        workers[victim].wait()
        kills += 1
        workers[victim] = start("w")
    counts = wait_done(journal, timeout=240)
    settle(dump, counts["sent"])
    found = stored(dump)
    ids = journal_ids(journal)
    unknown = ids["unknown"]
    assert counts["sent"] + counts["unknown"] == 3000
    assert ids["sent"] <= set(found)                       # every row journaled sent is there...
    assert all(found[m] == 1 for m in ids["sent"])         # ...once
    assert set(found) <= ids["sent"] | unknown              # nothing stored that the journal does not name
    assert all(found[m] <= 1 for m in unknown)             # an unknown row was never resent
    assert len(unknown) <= kills * 2 * 2                     # kills x connections x 2
    print(f"\n{kills} kills: {len(unknown)} unknown outcomes, {len(set(found) & unknown)} of them stored")


def test_the_campaign_rate_holds_across_workers(campaign_env, sink, tmp_path):  # noqa: F811
    journal, broker, start = campaign_env
    port, dump = sink
    from smtpstream.celery import enqueue

    for k in range(3):
        start("w")
    time.sleep(3.0)  # all three ready before the first message, so that they share the work
    rate, n = 25.0, 150
    enqueue(journal, manifest(tmp_path, n), TEMPLATE, broker=broker, server=HOST, port=port,
            connections=1, batch_size=50, rate=rate)
    counts = wait_done(journal)
    settle(dump, n)
    assert counts["sent"] == n
    times = sorted(p.stat().st_mtime for p in dump.iterdir())
    measured = (len(times) - 1) / (times[-1] - times[0])
    print(f"\nrate {rate}/s asked, {measured:.1f}/s measured at the server over {len(times)} messages")
    assert rate * 0.8 <= measured <= rate * 1.2


def test_the_command_line_enqueues_and_shows_the_journal(campaign_env, sink, tmp_path):  # noqa: F811
    journal, broker, start = campaign_env
    port, dump = sink
    for k in range(2):
        start("w")
    body = tmp_path / "body.txt"
    body.write_text("Dear {name},\nyour statement is ready.\n")
    manifest(tmp_path, 300)
    base = [sys.executable, "-m", "smtpstream", "campaign", "send", str(tmp_path / "rows-300.csv"),
            "--from", "statements@example.com", "--subject", "Statement {id}", "--text-file", str(body),
            "--server", f"{HOST}:{port}", "--quiet", "--engine", "celery", "--broker", broker, "--batch-size", "100"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(smtpstream.__file__).parents[1]),
                                                      os.environ.get("PYTHONPATH", "")]))
    refused = subprocess.run(base + ["--journal", str(tmp_path / "local.db")], capture_output=True, text=True,
                             env=env, timeout=60)
    assert refused.returncode == 64 and "postgresql://" in refused.stderr
    done = subprocess.run(base + ["--journal", journal], capture_output=True, text=True, env=env, timeout=180)
    assert done.returncode == 0, done.stderr
    assert "3 batch(es) enqueued" in done.stderr and "300 sent" in done.stdout
    status = subprocess.run([sys.executable, "-m", "smtpstream", "campaign", "status", "--journal", journal,
                             "--json"], capture_output=True, text=True, env=env, timeout=60)
    import json

    assert json.loads(status.stdout)["sent"] == 300
    settle(dump, 300)
    assert len(stored(dump)) == 300


ROWS_DROPPED = 4200  # 14 s at 300/s: every drop lands in the middle of the campaign


def test_workers_come_back_when_the_journal_drops_their_connections(campaign_env, sink, tmp_path):  # noqa: F811
    """PostgreSQL drops every worker connection mid-campaign (pg_terminate_backend, as a
    restart or a failover does), three times: the workers open new ones and the batches
    that failed run again, so the campaign finishes; every row is delivered once, except
    rows left unknown (at most 2 per connection and drop), which were never resent."""
    import psycopg

    journal, broker, start = campaign_env
    port, dump = sink
    from smtpstream.celery import enqueue

    for _ in range(3):
        start("w")
    enqueue(journal, manifest(tmp_path, ROWS_DROPPED), TEMPLATE, broker=broker, server=HOST, port=port,
            connections=2, batch_size=200, rate=300)
    time.sleep(2.5)  # workers up and sending
    ended = []
    with psycopg.connect(journal, autocommit=True) as admin:
        for _ in range(3):
            ended.append(admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid != pg_backend_pid()").fetchone()[0])
            time.sleep(2.5)
    drops = len(ended)
    assert ended[0] >= 6, ended  # each worker's two: the drops hit workers in the middle of batches
    counts = wait_done(journal, timeout=120)
    settle(dump, counts["sent"])
    found = stored(dump)
    ids = journal_ids(journal)
    unknown = ids["unknown"]
    assert counts["sent"] + counts["unknown"] == ROWS_DROPPED  # the rows after the drops went out too
    assert ids["sent"] <= set(found) and all(found[m] == 1 for m in ids["sent"])
    assert set(found) <= ids["sent"] | unknown
    assert all(found[m] <= 1 for m in unknown)
    assert len(unknown) <= drops * 3 * 2 * 2                 # drops x workers x connections x 2
