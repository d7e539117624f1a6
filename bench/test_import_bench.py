"""Import time of the public modules and of ``smtpstream --help``, against ``python -c pass``.

Each row runs its command and ``python -c pass`` interleaved, ROUNDS times
each, in fresh interpreters; ``extra_info`` has the best wall of both, their
ratio and the extra milliseconds (``ms_over_pass``), and ``importtime_ms``:
the cumulative time of the smtpstream modules as ``python -X importtime``
reports it. Bytecode is compiled first (a user's installed package has its
``.pyc``; the test machines set PYTHONDONTWRITEBYTECODE). Issue 16's targets,
with ``pass`` at 12 ms: ``smtpstream.smtp`` 20 ms, ``pool`` and ``aio``
30 ms, ``--help`` 60 ms.

``smtpstream.smtp`` loads each public name's module on first use, so its row
is the package alone; ``from smtpstream.smtp import *`` resolves every name:
what a program that builds and sends messages loads (socket comes with the
first connection). ``import asyncio`` is the floor under ``smtpstream.aio``.
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
    "from smtpstream.smtp import *": ["-c", "from smtpstream.smtp import *"],
    "import smtpstream.pool": ["-c", "import smtpstream.pool"],
    "import smtpstream.aio": ["-c", "import smtpstream.aio"],
    "import smtpstream.message": ["-c", "import smtpstream.message"],
    "smtpstream --help": ["-m", "smtpstream", "--help"],
    "import asyncio": ["-c", "import asyncio"],
}


def run(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def importtime_ms(code: str, top: str) -> float:
    """The cumulative times of the outermost imports of ``top`` and its submodules (those a
    package's lazy attributes import come after the package itself, each outermost)."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", code],
                          check=True, capture_output=True, text=True)
    total = 0
    for line in done.stderr.splitlines():  # "import time: self | cumulative | name", nested by indent
        fields = line.split("|")
        if len(fields) == 3 and fields[1].strip().isdigit():
            name = fields[2].rstrip()
            if name.lstrip() == name[1:] and name.split(".")[0].strip() == top:
                total += int(fields[1])
    assert total, f"{top} not in -X importtime's output"
    return total / 1000


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
        top = args[1].split()[1].split(".")[0]
        benchmark.extra_info["importtime_ms"] = round(importtime_ms(args[1], top), 1)
