"""``smtpstream bench``: filter throughput here, against the standard library.

Generates its inputs, streams them through smtpstream's filters in 64 KiB
chunks and through the standard library's equivalents (and pybase64's, when it
is installed), and prints MB/s of input as a table.
"""
from __future__ import annotations

import base64
import binascii
import email.base64mime
import random
import re
import time
from typing import Callable, TextIO

from . import filters

CHUNK = 64 * 1024


def _text(size: int) -> bytes:
    rnd = random.Random(1)
    words = ("the of and to mail stream chunk attachment caf\u00e9 na\u00efve = 100% "
             "header body filter encode").split()
    lines, total = [], 0
    while total < size:
        line = " ".join(rnd.choice(words) for _ in range(rnd.randint(6, 14))).encode()
        if rnd.random() < 0.05:
            line = b"." + line
        lines.append(line)
        total += len(line) + 1
    return b"\n".join(lines)[:size]


def stream(stages, data: bytes, chunk: int = CHUNK) -> int:
    """Feed ``data`` in chunks through ``stages`` (fresh filters); return the output size."""
    view = memoryview(data)
    total = 0
    for at in range(0, len(data), chunk):
        piece = view[at : at + chunk]
        for stage in stages:
            piece = stage(piece)
        total += len(piece)
    tail = b""
    for stage in stages:
        tail = stage(tail) + stage(None)
    return total + len(tail)


def _per_chunk(fn: Callable[[bytes], bytes], data: bytes, unit: int) -> int:
    step = CHUNK // unit * unit
    return sum(len(fn(data[at : at + step])) for at in range(0, len(data), step))


_EOLS = re.compile(rb"(?:\r\n|\n|\r(?!\n))")
_PERIODS = re.compile(rb"(?m)^\.")


def _cases(binary: bytes, text: bytes, b64: bytes):
    cases = [
        ("base64 + wrap(76)", "smtpstream", lambda: stream([filters.Base64WrapEncoder()], binary)),
        ("base64 + wrap(76)", "email.base64mime",
         lambda: _per_chunk(lambda c: email.base64mime.body_encode(c, eol="\r\n").encode(), binary, 57)),
        ("base64 + wrap(76)", "base64.encodebytes", lambda: _per_chunk(base64.encodebytes, binary, 57)),
        ("base64 decode", "smtpstream", lambda: stream([filters.Base64Decoder()], b64)),
        ("base64 decode", "binascii.a2b_base64", lambda: _per_chunk(binascii.a2b_base64, b64, 78)),
        ("quoted-printable", "smtpstream",
         lambda: stream([filters.EOLNormalizer(), filters.QPEncoder(), filters.QPWrapper()], text)),
        ("quoted-printable", "binascii.b2a_qp", lambda: _per_chunk(binascii.b2a_qp, text, 1)),
        ("normalize + stuff", "smtpstream", lambda: stream([filters.NormalizeStuffer()], text)),
        ("normalize + stuff", "smtplib regexes",
         lambda: _per_chunk(lambda c: _PERIODS.sub(b"..", _EOLS.sub(b"\r\n", c)), text, 1)),
    ]
    try:
        import pybase64
    except ImportError:
        return cases

    def pybase64_wrap(chunk: bytes) -> bytes:
        enc = pybase64.b64encode(chunk)
        return b"\r\n".join([enc[i : i + 76] for i in range(0, len(enc), 76)])

    cases.insert(1, ("base64 + wrap(76)", "pybase64 + wrap", lambda: _per_chunk(pybase64_wrap, binary, 57)))
    cases.insert(5, ("base64 decode", "pybase64", lambda: _per_chunk(pybase64.b64decode, b64, 78)))
    return cases


def run(size_mb: int, out: TextIO, rounds: int = 3) -> list[tuple[str, str, float]]:
    size = size_mb << 20
    binary = random.Random(2).randbytes(size)
    text = _text(size)
    b64 = _collect_b64(binary)
    results = []
    print(f"filters: {filters.IMPLEMENTATION}; {size_mb} MiB inputs, {CHUNK // 1024} KiB chunks, "
          f"best of {rounds}; MB/s of input", file=out)
    print(f"{'job':20s} {'implementation':22s} {'MB/s':>8s}", file=out)
    for job, name, fn in _cases(binary, text, b64):
        source_size = len(b64) if job == "base64 decode" else size
        best = min(_timed(fn) for _ in range(rounds))
        rate = source_size / best / 1e6
        results.append((job, name, rate))
        print(f"{job:20s} {name:22s} {rate:8.0f}", file=out, flush=True)
    return results


def _collect_b64(binary: bytes) -> bytes:
    encoder = filters.Base64WrapEncoder()
    return encoder(binary) + encoder(None)


def _timed(fn: Callable[[], int]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start
