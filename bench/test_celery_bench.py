"""What the Celery engine costs per message: 1, 2 and 3 worker processes against the local engine.

``SMTPSTREAM_BENCH_CELERY_ROWS`` rows (default 6000) of about 2 KiB to
postfix's smtp-sink on loopback. The local engine is ``Campaign.run`` in
this process with a SQLite journal; the Celery rows use a PostgreSQL journal
and ``celery -A smtpstream.celery worker --pool solo`` processes; each
process has ``SMTPSTREAM_BENCH_CELERY_CONNECTIONS`` connections (2), started and ready before the clock starts:
the time is from ``enqueue`` (rows checked and journaled) to the journal
saying done. PostgreSQL, redis-server and smtp-sink are started here
(tests/services.py, tests/test_postfix_sink.py). ``extra_info``:
``msgs_per_s``, ``vs_local`` (throughput ratio, same run), ``per_worker_vs_local``
(throughput per worker process against the local engine's one process).
On this 2-core machine the local engine wins; the point is what claiming,
dispatch and PostgreSQL cost per message.
"""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

pytest.importorskip("celery")
pytest.importorskip("psycopg")

import smtpstream  # noqa: E402
from smtpstream.campaign import Campaign, Template, read_manifest  # noqa: E402

from services import fresh_database, postgres_server, redis_server  # noqa: E402
from test_postfix_sink import sink  # noqa: E402,F401

ROWS = int(os.environ.get("SMTPSTREAM_BENCH_CELERY_ROWS", "6000"))
#: Connections per process, the same for every engine: with 2, each message of a
#: worker waits for its journal commit; with more, the commits overlap the sending.
CONNECTIONS = int(os.environ.get("SMTPSTREAM_BENCH_CELERY_CONNECTIONS", "2"))
TEMPLATE = Template("statements@example.com", "Statement {id}",
                    "Dear {name},\n" + "A line of the statement, about seventy characters long, again.\n" * 30)
_results: dict[str, float] = {}


@pytest.fixture(scope="module")
def services():
    with postgres_server() as pg, redis_server() as broker:
        yield pg, broker


@pytest.fixture(scope="module")
def manifest():
    path = Path(tempfile.mkdtemp(prefix="smtpstream-celery-bench-")) / "rows.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "email", "name"])
        writer.writerows([f"row-{i}", f"r{i}@example.com", f"Customer {i}"] for i in range(ROWS))
    return str(path)


def _workers(n: int, journal: str, broker: str, log: Path) -> list[subprocess.Popen]:
    env = dict(os.environ, SMTPSTREAM_BROKER=broker, SMTPSTREAM_JOURNAL=journal,
               PYTHONPATH=os.pathsep.join([str(Path(smtpstream.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]))
    return [subprocess.Popen([sys.executable, "-m", "celery", "-A", "smtpstream.celery", "worker", "--pool", "solo",
                              "-n", f"bench{k}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat",
                              "--loglevel", "WARNING"], env=env, stdout=subprocess.DEVNULL, stderr=open(log, "ab"))
            for k in range(n)]


@pytest.mark.parametrize("engine", ["local", "celery-1", "celery-2", "celery-3"])
def test_celery_engine_throughput(benchmark, services, sink, manifest, engine, tmp_path):  # noqa: F811
    from smtpstream.celery import enqueue, progress

    pg, broker = services
    port, _ = sink
    if engine == "local":
        start = time.perf_counter()
        with Campaign(str(tmp_path / "run.db"), server="127.0.0.1", port=port, connections=CONNECTIONS) as campaign:
            counts = campaign.run(read_manifest(manifest), TEMPLATE)
        elapsed = time.perf_counter() - start
    else:
        import redis

        redis.Redis.from_url(broker).flushall()
        journal = fresh_database(pg, engine.replace("-", "_"))
        n = int(engine.split("-")[1])
        workers = _workers(n, journal, broker, tmp_path / "workers.log")
        try:
            time.sleep(5.0)  # imported and listening before the clock starts
            start = time.perf_counter()
            enqueue(journal, read_manifest(manifest), TEMPLATE, broker=broker, server="127.0.0.1", port=port,
                    connections=CONNECTIONS, batch_size=500)
            counts = progress(journal, interval=0.05)
            elapsed = time.perf_counter() - start
        finally:
            for w in workers:
                w.send_signal(signal.SIGTERM)
            for w in workers:
                w.wait(timeout=30)
    assert counts["sent"] == ROWS
    rate = ROWS / elapsed
    _results[engine] = rate
    benchmark.group = f"celery/{ROWS}x2KiB/{CONNECTIONS}conn"
    benchmark.name = engine
    benchmark.extra_info.update(msgs_per_s=rate, seconds=elapsed, rows=ROWS)
    if engine != "local" and "local" in _results:
        workers_n = int(engine.split("-")[1])
        benchmark.extra_info["vs_local"] = rate / _results["local"]
        benchmark.extra_info["per_worker_vs_local"] = rate / workers_n / _results["local"]
    print(f"\n{engine}: {rate:.0f} msgs/s" + (f" ({rate / _results['local']:.2f}x local)" if engine != "local" else ""))
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
