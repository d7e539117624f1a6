"""Filter throughput: smtpstream against the baselines, in one run.

Groups (64 MiB input, 8 KiB and 64 KiB chunks):
  base64-wrap      base64 + 76-column CRLF lines
  qp-text          quoted-printable of text, normalised and wrapped
  normalize-stuff  line breaks to CRLF + SMTP dot-stuffing
  base64-decode    76-column CRLF base64 back to bytes
Each benchmark records in extra_info whether its output equals ours.
``python bench/report.py bench.json`` prints MB/s and the ratios.
"""
from __future__ import annotations

import base64
import binascii
import email.base64mime
import email.quoprimime
import importlib
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import CHUNKS, aligned_chunks, as_file, collect, stream

C = importlib.import_module("smtpstream._filters")
PY = importlib.import_module("smtpstream._filters_py")
LUA = shutil.which("lua5.4")
LUA_SCRIPT = Path(__file__).with_name("luasocket_bench.lua")

try:
    import pybase64
except ImportError:  # the bench extra installs it
    pybase64 = None

ROUNDS = 3


def run(benchmark, group, chunk, name, fn, check=None, rounds=ROUNDS):
    benchmark.group = f"{group}/{chunk // 1024}KiB"
    benchmark.name = name
    benchmark.extra_info["impl"] = name
    if check is not None:
        benchmark.extra_info["same_bytes"] = bool(check())
    return benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=0)


def lua(chain: str, data: bytes, chunk: int, fname: str) -> int:
    path = as_file(fname, data)
    out = subprocess.run([LUA, str(LUA_SCRIPT), chain, str(path), str(chunk)], capture_output=True, check=True)
    return int(out.stdout)


# ---------------------------------------------------------------- base64 + wrap

def email_base64(data, chunk):
    return sum(len(email.base64mime.body_encode(c, eol="\r\n")) for c in aligned_chunks(data, chunk, 57))


def stdlib_encodebytes(data, chunk):
    return sum(len(base64.encodebytes(c).replace(b"\n", b"\r\n")) for c in aligned_chunks(data, chunk, 57))


def pybase64_wrap(data, chunk):
    total = 0
    for c in aligned_chunks(data, chunk, 57):
        enc = pybase64.b64encode(c)
        total += len(b"\r\n".join([enc[i : i + 76] for i in range(0, len(enc), 76)]) + b"\r\n")
    return total


def pybase64_raw(data, chunk):
    return sum(len(pybase64.b64encode(c)) for c in aligned_chunks(data, chunk, 3))


B64_IMPLS = {
    "smtpstream-c-fused": lambda d, k: stream([C.Base64WrapEncoder(76)], d, k),
    "smtpstream-c-chain": lambda d, k: stream([C.Base64Encoder(), C.LineWrapper(76)], d, k),
    "smtpstream-py": lambda d, k: stream([PY.Base64WrapEncoder(76)], d, k),
    "email-base64mime": email_base64,
    "base64-encodebytes": stdlib_encodebytes,
    "pybase64-stream+wrap": pybase64_wrap,
    "pybase64-raw-no-wrap": pybase64_raw,
}


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("impl", list(B64_IMPLS))
def test_base64_wrap(benchmark, binary_data, impl, chunk):
    if impl.startswith("pybase64") and pybase64 is None:
        pytest.skip("pybase64 not installed (pip install '.[bench]')")
    fn = B64_IMPLS[impl]
    expected = len(collect([C.Base64WrapEncoder(76)], binary_data, 1 << 20))
    run(benchmark, "base64-wrap", chunk, impl, lambda: fn(binary_data, chunk),
        check=lambda: impl == "pybase64-raw-no-wrap" or fn(binary_data, chunk) == expected)


@pytest.mark.parametrize("chunk", CHUNKS)
def test_base64_wrap_luasocket(benchmark, binary_data, chunk):
    expected = len(collect([C.Base64WrapEncoder(76)], binary_data, 1 << 20))
    run(benchmark, "base64-wrap", chunk, "luasocket",
        lambda: lua("b64wrap", binary_data, chunk, "binary.bin"),
        check=lambda: lua("b64wrap", binary_data, chunk, "binary.bin") == expected, rounds=2)


# ---------------------------------------------------------------- quoted-printable

def qp_chain(mod):
    return lambda d, k: stream([mod.EOLNormalizer(), mod.QPEncoder(), mod.QPWrapper()], d, k)


QP_IMPLS = {
    "smtpstream-c-chain": qp_chain(C),
    "smtpstream-py": qp_chain(PY),
    "binascii-b2a_qp": lambda d, k: sum(len(binascii.b2a_qp(c)) for c in aligned_chunks(d, k, 1)),
    "email-quoprimime": lambda d, k: sum(
        len(email.quoprimime.body_encode(bytes(c).decode("latin-1"), eol="\r\n")) for c in aligned_chunks(d, k, 1)
    ),
}
if hasattr(C, "QPWrapEncoder"):
    QP_IMPLS["smtpstream-c-fused"] = lambda d, k: stream([C.EOLNormalizer(), C.QPWrapEncoder()], d, k)


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("impl", list(QP_IMPLS))
def test_qp_text(benchmark, text_crlf, impl, chunk):
    fn = QP_IMPLS[impl]
    expected = len(collect([C.EOLNormalizer(), C.QPEncoder(), C.QPWrapper()], text_crlf, 1 << 20))
    run(benchmark, "qp-text", chunk, impl, lambda: fn(text_crlf, chunk),
        check=lambda: fn(text_crlf, chunk) == expected)


@pytest.mark.parametrize("chunk", CHUNKS)
def test_qp_text_luasocket(benchmark, text_crlf, chunk):
    expected = len(collect([C.EOLNormalizer(), C.QPEncoder(), C.QPWrapper()], text_crlf, 1 << 20))
    run(benchmark, "qp-text", chunk, "luasocket", lambda: lua("qptext", text_crlf, chunk, "text_crlf.txt"),
        check=lambda: lua("qptext", text_crlf, chunk, "text_crlf.txt") == expected, rounds=2)


# ---------------------------------------------------------------- normalise + stuff

_EOLS = re.compile(rb"(?:\r\n|\n|\r(?!\n))")
_PERIODS = re.compile(rb"(?m)^\.")


def smtplib_regex(data, chunk):
    # smtplib.SMTP.data: _fix_eols then _quote_periods (on whole messages there;
    # per chunk here, which only makes it faster).
    return sum(len(_PERIODS.sub(b"..", _EOLS.sub(b"\r\n", c))) for c in aligned_chunks(data, chunk, 1))


NS_IMPLS = {
    "smtpstream-c-fused": lambda d, k: stream([C.NormalizeStuffer()], d, k),
    "smtpstream-c-chain": lambda d, k: stream([C.EOLNormalizer(), C.DotStuffer()], d, k),
    "smtpstream-py": lambda d, k: stream([PY.NormalizeStuffer()], d, k),
    "smtplib-regex": smtplib_regex,
}


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("impl", list(NS_IMPLS))
def test_normalize_stuff(benchmark, text_lf, impl, chunk):
    fn = NS_IMPLS[impl]
    expected = len(collect([C.NormalizeStuffer()], text_lf, 1 << 20))
    run(benchmark, "normalize-stuff", chunk, impl, lambda: fn(text_lf, chunk),
        check=lambda: fn(text_lf, chunk) == expected)


@pytest.mark.parametrize("chunk", CHUNKS)
def test_normalize_stuff_luasocket(benchmark, text_lf, chunk):
    expected = len(collect([C.NormalizeStuffer()], text_lf, 1 << 20))
    run(benchmark, "normalize-stuff", chunk, "luasocket", lambda: lua("normstuff", text_lf, chunk, "text_lf.txt"),
        check=lambda: lua("normstuff", text_lf, chunk, "text_lf.txt") == expected, rounds=2)


# ---------------------------------------------------------------- base64 decode

DEC_IMPLS = {
    "smtpstream-c": lambda d, k: stream([C.Base64Decoder()], d, k),
    "smtpstream-py": lambda d, k: stream([PY.Base64Decoder()], d, k),
    "binascii-a2b_base64": lambda d, k: sum(len(binascii.a2b_base64(c)) for c in aligned_chunks(d, k, 78)),
    "base64-decodebytes": lambda d, k: sum(len(base64.decodebytes(c)) for c in aligned_chunks(d, k, 78)),
    "pybase64-b64decode": lambda d, k: sum(len(pybase64.b64decode(c)) for c in aligned_chunks(d, k, 78)),
}


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize("impl", list(DEC_IMPLS))
def test_base64_decode(benchmark, base64_lines, impl, chunk):
    if impl.startswith("pybase64") and pybase64 is None:
        pytest.skip("pybase64 not installed (pip install '.[bench]')")
    fn = DEC_IMPLS[impl]
    expected = len(collect([C.Base64Decoder()], base64_lines, 1 << 20))
    run(benchmark, "base64-decode", chunk, impl, lambda: fn(base64_lines, chunk),
        check=lambda: fn(base64_lines, chunk) == expected)


@pytest.mark.parametrize("chunk", CHUNKS)
def test_base64_decode_luasocket(benchmark, base64_lines, chunk):
    expected = len(collect([C.Base64Decoder()], base64_lines, 1 << 20))
    run(benchmark, "base64-decode", chunk, "luasocket", lambda: lua("unb64", base64_lines, chunk, "b64.txt"),
        check=lambda: lua("unb64", base64_lines, chunk, "b64.txt") == expected, rounds=2)
