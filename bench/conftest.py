"""Inputs and helpers shared by the benchmarks.

Benchmarks are not tests: run them with ``python -m pytest bench/`` (see
bench/README.md). Every benchmark checks its output once before timing.
"""
from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from smtpstream.speed import stream  # noqa: F401  (the benchmarks' streaming loop)

SIZE = int(os.environ.get("SMTPSTREAM_BENCH_MB", "64")) * 1024 * 1024
CHUNKS = [8 * 1024, 64 * 1024]
WORK = Path(os.environ.get("SMTPSTREAM_BENCH_DIR", "/tmp/smtpstream-bench"))

WORDS = (
    "the of and to in is that for it as was with be by on not he this are or his from at "
    "which but have an they you were her she there been one all we their has would when "
    "message attachment stream filter chunk encode mail server body header caf\u00e9 na\u00efve "
    "\u00fcber r\u00e9sum\u00e9 = 100% \u2014 done."
).split()


def make_text(size: int, eol: bytes) -> bytes:
    """English-like lines of 40-100 bytes, some UTF-8, some starting with '.'."""
    rnd = random.Random(1)
    lines = []
    total = 0
    while total < size:
        words = []
        length = rnd.randint(40, 100)
        n = 0
        while n < length:
            w = rnd.choice(WORDS)
            words.append(w)
            n += len(w) + 1
        line = " ".join(words).encode()
        if rnd.random() < 0.05:
            line = b"." + line
        lines.append(line)
        total += len(line) + len(eol)
    return eol.join(lines)[:size]


@pytest.fixture(scope="session")
def binary_data() -> bytes:
    return random.Random(2).randbytes(SIZE)


@pytest.fixture(scope="session")
def text_crlf() -> bytes:
    return make_text(SIZE, b"\r\n")


@pytest.fixture(scope="session")
def text_lf() -> bytes:
    return make_text(SIZE, b"\n")


@pytest.fixture(scope="session")
def base64_lines(binary_data) -> bytes:
    import binascii

    return b"".join(
        binascii.b2a_base64(binary_data[i : i + 57]).replace(b"\n", b"\r\n")
        for i in range(0, len(binary_data), 57)
    )[:SIZE]


def as_file(name: str, data: bytes) -> Path:
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / name
    if not path.exists() or path.stat().st_size != len(data):
        path.write_bytes(data)
    return path


def collect(stages, data: bytes, chunk: int) -> bytes:
    view = memoryview(data)
    out = []
    for at in range(0, len(data), chunk):
        piece = view[at : at + chunk]
        for stage in stages:
            piece = stage(piece)
        out.append(piece)
    tail = b""
    for stage in stages:
        tail = stage(tail) + stage(None)
    out.append(tail)
    return b"".join(out)


def aligned_chunks(data: bytes, chunk: int, unit: int):
    """Chunks of ``data`` cut at multiples of ``unit`` (for per-chunk stdlib calls)."""
    step = max(unit, chunk // unit * unit)
    view = memoryview(data)
    for at in range(0, len(data), step):
        yield view[at : at + step]


def pytest_benchmark_update_json(config, benchmarks, output_json):
    output_json["input_bytes"] = SIZE
