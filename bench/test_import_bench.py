"""Import time of the public modules and of ``smtpstream --help``, against ``python -c pass``.

Each row runs its command and ``python -c pass`` interleaved, ROUNDS times
each, in fresh interpreters; ``extra_info`` has the best wall of both, their
ratio and the extra milliseconds (``ms_over_pass``), and ``importtime_ms``:
the module's cumulative time as ``python -X importtime`` reports it. Bytecode
is compiled first (a user's installed package has its ``.pyc``; the test
machines set PYTHONDONTWRITEBYTECODE). Issue 16's targets, with ``pass`` at
12 ms: ``smtpstream.smtp`` 20 ms, ``pool`` and ``aio`` 30 ms, ``--help`` 60 ms.
"""
from __future__ import annotations

import compileall
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import smtpstream

ROUNDS = int(os.environ.get("SMTPSTREAM_BENCH_ROUNDS", "15"))
PACKAGE = Path(smtpstream.__file__).parent
ROWS = {
    "import smtpstream.smtp": ["-c", "import smtpstream.smtp"],
    "import smtpstream.pool": ["-c", "import smtpstream.pool"],
    "import smtpstream.aio": ["-c", "import smtpstream.aio"],
    "import smtpstream.message": ["-c", "import smtpstream.message"],
    "smtpstream --help": ["-m", "smtpstream", "--help"],
}


def run(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def importtime_ms(module: str) -> float:
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"],
                          check=True, capture_output=True, text=True)
    for line in done.stderr.splitlines():  # "import time: self | cumulative | name"
        fields = [f.strip() for f in line.split("|")]
        if len(fields) == 3 and fields[2] == module:
            return int(fields[1]) / 1000
    raise AssertionError(f"{module} not in -X importtime's output")


@pytest.fixture(scope="module", autouse=True)
def bytecode() -> None:
    compileall.compile_dir(str(PACKAGE), quiet=1)
    run(["-c", "pass"])  # warm the page cache


@pytest.mark.parametrize("name", list(ROWS))
def test_import(benchmark, name):
    args = ROWS[name]
    assert subprocess.run([sys.executable, *args], capture_output=True).returncode == 0
    base, own = [], []

    def once() -> None:
        base.append(run(["-c", "pass"]))
        own.append(run(args))

    benchmark.group = "import"
    benchmark.pedantic(once, rounds=ROUNDS, iterations=1)
    best_base, best_own = min(base), min(own)
    benchmark.extra_info.update(pass_ms=round(best_base * 1e3, 1), best_ms=round(best_own * 1e3, 1),
                                ratio_vs_pass=round(best_own / best_base, 2),
                                ms_over_pass=round((best_own - best_base) * 1e3, 1))
    if args[0] == "-c":
        benchmark.extra_info["importtime_ms"] = round(importtime_ms(args[1].split()[1]), 1)
