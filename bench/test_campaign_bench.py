"""What a campaign's journal costs: Campaign.run against AsyncPool.send_many, same messages, same run.

10,000 small messages (a templated text part of about 2 KiB) to postfix's
smtp-sink on loopback over 2 connections; each mode a whole process under
``/usr/bin/time -v`` (wall, CPU, peak RSS), rounds interleaved. The
campaign also reads and checks the manifest, journals every row, commits
each message *sending* before its end of data and its outcome after its
reply (SQLite, WAL). Target (issue 13): the campaign's throughput at least
85% of the pool's. ``SMTPSTREAM_BENCH_CAMPAIGN_COUNT`` (10000) and
``SMTPSTREAM_BENCH_CAMPAIGN_ROUNDS`` (3) change the size of the run.
Also: peak RSS with 10x the rows, to show it does not grow with the manifest.
"""
from __future__ import annotations

import os
import sys
import tempfile

import pytest

from test_sender_bench import HERE, sink_port, timed_run  # noqa: F401  (sink_port: a fixture)

COUNT = int(os.environ.get("SMTPSTREAM_BENCH_CAMPAIGN_COUNT", "10000"))
ROUNDS = int(os.environ.get("SMTPSTREAM_BENCH_CAMPAIGN_ROUNDS", "3"))
WORK = tempfile.mkdtemp(prefix="smtpstream-campaign-bench-")
SCRIPT = str(HERE / "campaign_smtpstream.py")
_runs: dict[str, list[dict]] = {}


def _round(port: int, mode: str, count: int) -> dict:
    return timed_run([sys.executable, SCRIPT, "127.0.0.1", str(port), str(count), "2", WORK, mode])


@pytest.fixture(scope="module")
def interleaved(sink_port):  # noqa: F811
    """Both modes, rounds interleaved (a noisy machine hits both alike); the best of each."""
    _round(sink_port, "pool", COUNT)  # writes the manifest, warms the page cache
    for _ in range(ROUNDS):
        for mode in ("pool", "campaign"):
            _runs.setdefault(mode, []).append(_round(sink_port, mode, COUNT))
    return {mode: min(runs, key=lambda r: r["wall_s"]) for mode, runs in _runs.items()}


@pytest.mark.parametrize("mode", ["pool", "campaign"])
def test_campaign_overhead(benchmark, interleaved, mode):
    best = interleaved[mode]
    benchmark.group = f"campaign/{COUNT}x2KiB/2conn"
    benchmark.name = mode
    benchmark.extra_info.update(best, impl=mode, messages=COUNT, msgs_per_s=COUNT / max(best["wall_s"], 0.01),
                                cpu_ms_per_msg=1000 * best["cpu_s"] / COUNT)
    if mode == "campaign":
        pool = interleaved["pool"]
        benchmark.extra_info["throughput_vs_pool"] = pool["wall_s"] / best["wall_s"]
        benchmark.extra_info["cpu_vs_pool"] = best["cpu_s"] / pool["cpu_s"]
        print(f"\ncampaign vs AsyncPool, {COUNT} messages: throughput {pool['wall_s'] / best['wall_s']:.2f}x, "
              f"CPU {best['cpu_s'] / pool['cpu_s']:.2f}x, peak RSS {best['maxrss_mib']:.1f} vs {pool['maxrss_mib']:.1f} MiB")
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)


def test_campaign_memory_does_not_grow_with_rows(benchmark, sink_port):  # noqa: F811
    small, large = _round(sink_port, "campaign", COUNT // 10), _round(sink_port, "campaign", COUNT)
    benchmark.group = "campaign/peak-rss"
    benchmark.name = f"{COUNT // 10} vs {COUNT} rows"
    benchmark.extra_info.update(small_mib=small["maxrss_mib"], large_mib=large["maxrss_mib"])
    print(f"\npeak RSS: {COUNT // 10} rows {small['maxrss_mib']:.1f} MiB, {COUNT} rows {large['maxrss_mib']:.1f} MiB")
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
