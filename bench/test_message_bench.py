"""Message building: smtpstream against the standard library, in the same run.

* one message with a short text and a 64 MiB random attachment;
* 1,000 messages, each with a 100 KiB attachment.
Each job runs in a fresh process (``message_job.py``), so wall time includes
interpreter start for both sides alike, and peak RSS is the whole process's.
extra_info carries ``maxrss_mib``; bench/report.py prints the ratios.
"""
from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import WORK

JOB = Path(__file__).with_name("message_job.py")
ATTACH_MB = int(__import__("os").environ.get("SMTPSTREAM_BENCH_ATTACH_MB", "64"))


def attachment_file(name: str, size: int) -> Path:
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / name
    if not path.exists() or path.stat().st_size != size:
        rnd = random.Random(size)
        with open(path, "wb") as handle:
            for at in range(0, size, 1 << 24):  # randbytes() overflows past 256 MiB at once
                handle.write(rnd.randbytes(min(1 << 24, size - at)))
    return path


def run_job(impl: str, job: str, path: Path) -> dict:
    done = subprocess.run([sys.executable, str(JOB), impl, job, str(path)], capture_output=True, text=True, check=True)
    fields = dict(item.split("=") for item in done.stdout.split())
    return {"bytes": int(fields["bytes"]), "maxrss_mib": int(fields["maxrss_kib"]) / 1024}


@pytest.mark.parametrize("impl", ["smtpstream", "stdlib"])
def test_one_big_attachment(benchmark, impl):
    path = attachment_file(f"attach-{ATTACH_MB}m.bin", ATTACH_MB << 20)
    benchmark.group = f"message/one-{ATTACH_MB}MiB"
    benchmark.name = impl
    benchmark.extra_info["impl"] = impl
    result = benchmark.pedantic(run_job, args=(impl, "one", path), rounds=3, iterations=1)
    benchmark.extra_info.update(result)


@pytest.mark.parametrize("impl", ["smtpstream", "smtpstream-cached", "stdlib"])
def test_thousand_messages(benchmark, impl):
    path = attachment_file("attach-100k.bin", 100 << 10)
    benchmark.group = "message/1000x100KiB"
    benchmark.name = impl
    benchmark.extra_info["impl"] = impl
    result = benchmark.pedantic(run_job, args=(impl, "many", path), rounds=2, iterations=1)
    benchmark.extra_info.update(result)
