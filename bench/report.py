"""Print MB/s per benchmark and ratios against the baselines, from pytest-benchmark JSON.

usage: python bench/report.py bench.json

Sender groups (send/..., bulk/...) show CPU ms per message and two ratios
against smtpstream's row: CPU per message (this / ours: above 1 costs more)
and messages per second (this / ours: below 1 is slower).
"""
from __future__ import annotations

import json
import sys
from collections import defaultdict


def cpu_ms_per_msg(info: dict) -> float | None:
    if "cpu_ms_per_msg" in info:
        return info["cpu_ms_per_msg"]
    if info.get("messages"):
        return 1000 * info["cpu_s"] / info["messages"]
    return None


def main(path: str) -> None:
    doc = json.load(open(path))
    size = doc.get("input_bytes", 64 * 1024 * 1024)
    groups = defaultdict(dict)
    jobs = defaultdict(dict)
    senders = defaultdict(dict)
    proxies = defaultdict(dict)
    steady = defaultdict(dict)
    for b in doc["benchmarks"]:
        info = b["extra_info"]
        if info.get("steady"):  # round trips per message through the delay proxy
            steady[b["group"]][b["name"]] = info
            continue
        if info.get("proxy"):  # bench/test_bulk_bench.py's checks of the delay proxy
            proxies[b["group"]][b["name"]] = info
            continue
        if "cpu_s" in info:  # a sender process: wall, CPU and RSS
            senders[b["group"]][info.get("impl", b["name"])] = info
            continue
        if "maxrss_mib" in info:  # a whole-process job: seconds and peak RSS
            jobs[b["group"]][info.get("impl", b["name"])] = (b["stats"]["min"], info["maxrss_mib"])
            continue
        groups[b["group"]][info.get("impl", b["name"])] = (
            size / b["stats"]["min"] / 1e6, info.get("same_bytes"),
        )
    for group in sorted(senders):
        rows = senders[group]
        ours = rows.get("smtpstream")
        print(f"\n{group}  (whole sender process; CPU = user + sys; ratios: this / smtpstream)")
        for name, info in sorted(rows.items(), key=lambda kv: kv[1]["cpu_s"]):
            per_msg = cpu_ms_per_msg(info)
            per_msg_s = f"{per_msg:7.2f} ms/msg" if per_msg is not None else " " * 14
            ratio = ""
            if ours:
                ours_per_msg = cpu_ms_per_msg(ours)
                if per_msg is not None and ours_per_msg:
                    ratio = f"CPU/msg {per_msg / ours_per_msg:5.2f}x"
                else:
                    ratio = f"CPU {info['cpu_s'] / ours['cpu_s']:5.1f}x ours"
                if info.get("msgs_per_s") and ours.get("msgs_per_s"):
                    ratio += f"  msgs/s {info['msgs_per_s'] / ours['msgs_per_s']:5.2f}x"
            print(f"  {name:20s} wall {info['wall_s']:7.2f} s  CPU {info['cpu_s']:6.2f} s  {per_msg_s}  "
                  f"RSS {info['maxrss_mib']:7.1f} MiB  {info['msgs_per_s']:8.1f} msgs/s  {ratio}")
    for group in sorted(steady):
        for name, info in sorted(steady[group].items()):
            print(f"\n{group}  (in-process, one session: slope between 50 and 150 messages)")
            print(f"  {name:20s} {info['ms_per_msg']:6.2f} ms per message = {info['round_trips_per_msg']:.2f} round trips"
                  f" of {info['rtt_ms']:.2f} ms (NOOP through the proxy): {info['steady_msgs_per_s']:.1f} msgs/s")
    for group in sorted(proxies):
        print(f"\n{group}  (the delay proxy itself)")
        for name, info in sorted(proxies[group].items()):
            if "proxied_ms" in info:
                print(f"  {name:20s} per NOOP exchange: {info['proxied_ms']:6.2f} ms through the proxy, "
                      f"{info['direct_ms']:6.2f} ms direct (RTT set: {info['rtt_ms_set']:g} ms)")
            if "mb_per_s" in info:
                print(f"  {name:20s} {info['bytes'] / 1e6:.0f} MB echoed in {info['seconds']:.2f} s: "
                      f"{info['mb_per_s']:.0f} MB/s each way, {'same bytes' if info['same_bytes'] else 'DIFFERS'}")
    for group in sorted(jobs):
        rows = jobs[group]
        base = rows.get("stdlib")
        print(f"\n{group}  (whole process: best wall time, peak RSS)")
        for name, (secs, rss) in sorted(rows.items(), key=lambda kv: kv[1][0]):
            ratio = f"{base[0] / secs:6.1f}x faster than stdlib" if base else ""
            print(f"  {name:24s} {secs:8.3f} s  {rss:7.1f} MiB   {ratio}")
    for group in sorted(groups):
        rows = groups[group]
        ours = [k for k in rows if k.startswith("smtpstream-c")]
        best = max(ours, key=lambda k: rows[k][0]) if ours else None
        print(f"\n{group}  (MB/s of input, best of rounds)")
        for name, (mbps, same) in sorted(rows.items(), key=lambda kv: -kv[1][0]):
            ratio = f"{rows[best][0] / mbps:6.2f}x" if best else ""
            same_s = "" if same is None else ("same bytes" if same else "differs")
            print(f"  {name:24s} {mbps:9.0f}   ours/this {ratio}  {same_s}")


if __name__ == "__main__":
    main(sys.argv[1])
