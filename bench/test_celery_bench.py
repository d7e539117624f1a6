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
dispatch and PostgreSQL cost per message. Per core, the CPU each engine
spends per message over the same clock: ``cpu_ms_per_msg`` (the local
engine's process, its SQLite work included; the worker processes for
Celery), ``cpu_ms_per_msg_all`` (Celery's workers, the enqueuing process's
``enqueue``, PostgreSQL's processes and redis-server together), and
``per_core_vs_local`` / ``per_core_all_vs_local``: messages per CPU-second
against the local engine's (the issue's "per core"). CPU is read from
``/proc/PID/stat`` (clock ticks).
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
_cpu: dict[str, dict[str, float]] = {}


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


_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int, children: bool = False) -> float:
    """User + system CPU seconds of process ``pid`` (and of its children it has reaped)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    own = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))
    return (own + (int(fields[13]) + int(fields[14]) if children else 0)) / _TICK


def _tree_cpu_s(root: int) -> float:
    """CPU seconds of ``root`` (with its reaped children) and of its live children:
    PostgreSQL's postmaster and the backends it forks."""
    total = _cpu_s(root, children=True)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
            if ppid == root:
                total += _cpu_s(int(entry))
        except (OSError, ValueError):  # gone meanwhile
            continue
    return total


def _service_pids(pg: str, broker: str) -> tuple[int, int]:
    """(PostgreSQL's postmaster, redis-server) by asking them."""
    import psycopg
    import redis

    with psycopg.connect(pg) as conn:  # its backend read while it lives: it exits with the connection
        backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        with open(f"/proc/{backend}/stat") as stat:
            postmaster = int(stat.read().rsplit(")", 1)[1].split()[1])
    return postmaster, int(redis.Redis.from_url(broker).info("server")["process_id"])


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
    cpu: dict[str, float] = {}
    if engine == "local":
        start, own = time.perf_counter(), time.process_time()
        with Campaign(str(tmp_path / "run.db"), server="127.0.0.1", port=port, connections=CONNECTIONS) as campaign:
            counts = campaign.run(read_manifest(manifest), TEMPLATE)
        elapsed = time.perf_counter() - start
        cpu["engine"] = cpu["all"] = time.process_time() - own
    else:
        import redis

        redis.Redis.from_url(broker).flushall()
        journal = fresh_database(pg, engine.replace("-", "_"))
        n = int(engine.split("-")[1])
        workers = _workers(n, journal, broker, tmp_path / "workers.log")
        try:
            time.sleep(5.0)  # imported and listening before the clock starts
            postmaster, redis_pid = _service_pids(pg, broker)
            before = ([_cpu_s(w.pid) for w in workers], _tree_cpu_s(postmaster), _cpu_s(redis_pid))
            start, own = time.perf_counter(), time.process_time()
            enqueue(journal, read_manifest(manifest), TEMPLATE, broker=broker, server="127.0.0.1", port=port,
                    connections=CONNECTIONS, batch_size=500)
            enqueuing = time.process_time() - own
            counts = progress(journal, interval=0.05)
            elapsed = time.perf_counter() - start
            cpu["engine"] = sum(_cpu_s(w.pid) for w in workers) - sum(before[0])
            cpu["all"] = (cpu["engine"] + enqueuing + _tree_cpu_s(postmaster) - before[1]
                          + _cpu_s(redis_pid) - before[2])
        finally:
            for w in workers:
                w.send_signal(signal.SIGTERM)
            for w in workers:
                w.wait(timeout=30)
    assert counts["sent"] == ROWS
    rate = ROWS / elapsed
    _results[engine] = rate
    _cpu[engine] = cpu
    benchmark.group = f"celery/{ROWS}x2KiB/{CONNECTIONS}conn"
    benchmark.name = engine
    benchmark.extra_info.update(msgs_per_s=rate, seconds=elapsed, rows=ROWS,
                                cpu_ms_per_msg=1000 * cpu["engine"] / ROWS, cpu_ms_per_msg_all=1000 * cpu["all"] / ROWS)
    line = f"\n{engine}: {rate:.0f} msgs/s, CPU {1000 * cpu['engine'] / ROWS:.3f} ms/msg ({1000 * cpu['all'] / ROWS:.3f} all)"
    if engine != "local" and "local" in _results:
        workers_n = int(engine.split("-")[1])
        local = _cpu["local"]["engine"]
        benchmark.extra_info["vs_local"] = rate / _results["local"]
        benchmark.extra_info["per_worker_vs_local"] = rate / workers_n / _results["local"]
        benchmark.extra_info["per_core_vs_local"] = local / cpu["engine"]
        benchmark.extra_info["per_core_all_vs_local"] = local / cpu["all"]
        line += (f" ({rate / _results['local']:.2f}x local; per core {local / cpu['engine']:.2f}x,"
                 f" with PostgreSQL, redis and enqueue {local / cpu['all']:.2f}x)")
    print(line)
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
