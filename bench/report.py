"""Print MB/s per benchmark and ratios against the baselines, from pytest-benchmark JSON.

usage: python bench/report.py bench.json
"""
from __future__ import annotations

import json
import sys
from collections import defaultdict


def main(path: str) -> None:
    doc = json.load(open(path))
    size = doc.get("input_bytes", 64 * 1024 * 1024)
    groups = defaultdict(dict)
    jobs = defaultdict(dict)
    senders = defaultdict(dict)
    for b in doc["benchmarks"]:
        info = b["extra_info"]
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
        print(f"\n{group}  (whole sender process; CPU = user + sys)")
        for name, info in sorted(rows.items(), key=lambda kv: kv[1]["cpu_s"]):
            ratio = f"CPU {info['cpu_s'] / ours['cpu_s']:5.1f}x ours" if ours else ""
            print(f"  {name:20s} wall {info['wall_s']:7.2f} s  CPU {info['cpu_s']:6.2f} s  "
                  f"RSS {info['maxrss_mib']:7.1f} MiB  {info['msgs_per_s']:8.1f} msgs/s  {ratio}")
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
