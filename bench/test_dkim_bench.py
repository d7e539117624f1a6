"""The cost of DKIM signing, end to end against smtp-sink, whole sender processes, same run.

Rows of each group, read as ratios against ``smtpstream`` (the same message
unsigned): ``smtpstream-dkim`` (``message(..., dkim=signer)``: a hashing
pass, then the send), ``dkimpy+smtplib`` (EmailMessage built in memory,
``dkim.sign`` over its bytes, ``smtplib.sendmail``) and ``nodemailer-dkim``
(its ``dkim`` transport option). All sign with rsa-sha256 2048, relaxed/relaxed.
Jobs: one message with a 64 MiB attachment; 1,000 messages with one 100 KiB
attachment (``-cached``: the encoded attachment replayed, each message
still hashed whole; ``-shared``: the whole body built once with ``shared()``,
hashed once for all messages).
"""
from __future__ import annotations

import os
import sys

import pytest

from test_message_bench import attachment_file
from test_sender_bench import HERE, NODE_PATH, WORK_KEY, available, sink_port, timed_run  # noqa: F401


def key_file():
    if not WORK_KEY.exists():
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        WORK_KEY.parent.mkdir(parents=True, exist_ok=True)
        WORK_KEY.write_bytes(rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return WORK_KEY


def command(name: str, path, count: int, sink_port: int) -> list[str]:
    key = str(key_file())
    args = ["127.0.0.1", str(sink_port), str(path), str(count)]
    py = [sys.executable, str(HERE / "smtpstream_send.py"), *args]
    return {
        "smtpstream": py,
        "smtpstream-dkim": py + [f"--dkim={key}"],
        "smtpstream-cached": py + ["--cached"],
        "smtpstream-cached-dkim": py + ["--cached", f"--dkim={key}"],
        "smtpstream-shared": py + ["--shared"],
        "smtpstream-shared-dkim": py + ["--shared", f"--dkim={key}"],
        "dkimpy+smtplib": [sys.executable, str(HERE / "dkimpy_send.py"), *args, key],
        "nodemailer": ["node", str(HERE / "nodemailer_send.js"), *args],
        "nodemailer-dkim": ["node", str(HERE / "nodemailer_send.js"), *args, f"--dkim={key}"],
    }[name]


def run(benchmark, group, name, path, count, sink_port, rounds):
    why = available(name.split("-")[0])
    if why:
        pytest.skip(f"{name} not available: {why}")
    cmd = command(name, path, count, sink_port)
    benchmark.group = group
    benchmark.name = name
    benchmark.extra_info["impl"] = name
    results = []
    benchmark.pedantic(lambda: results.append(timed_run(cmd)), rounds=rounds, iterations=1)
    benchmark.extra_info.update(min(results, key=lambda r: r["cpu_s"]))
    benchmark.extra_info["messages"] = count
    benchmark.extra_info["msgs_per_s"] = count / min(r["wall_s"] for r in results)


@pytest.mark.parametrize("name", ["smtpstream", "smtpstream-dkim", "dkimpy+smtplib", "nodemailer", "nodemailer-dkim"])
def test_sign_one_big_attachment(benchmark, sink_port, name):
    mb = int(os.environ.get("SMTPSTREAM_BENCH_ATTACH_MB", "64"))
    path = attachment_file(f"attach-{mb}m.bin", mb << 20)
    run(benchmark, f"dkim/one-{mb}MiB", name, path, 1, sink_port, rounds=2)


@pytest.mark.parametrize("name", ["smtpstream", "smtpstream-dkim", "smtpstream-cached", "smtpstream-cached-dkim",
                                  "smtpstream-shared", "smtpstream-shared-dkim",
                                  "dkimpy+smtplib", "nodemailer", "nodemailer-dkim"])
def test_sign_thousand_messages(benchmark, sink_port, name):
    path = attachment_file("attach-100k.bin", 100 << 10)
    run(benchmark, "dkim/1000x100KiB", name, path, 1000, sink_port, rounds=1)
