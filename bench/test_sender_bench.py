"""End-to-end senders on loopback against postfix's smtp-sink, in the same run.

Each sender is a whole process under ``/usr/bin/time -v``: wall time, CPU
seconds (user + sys) and peak RSS. smtp-sink caps a loopback stream near
130-150 MB/s, so the sender's CPU seconds are the figure to read.
Jobs: one message with a 64 MiB random attachment; 1,000 messages with a
100 KiB attachment over one connection. Senders: smtpstream (and with a
cached attachment), the standard library, aiosmtplib, nodemailer, LuaSocket.
Needs: apt-get install postfix lua5.4 lua-socket; pip install aiosmtplib;
npm install nodemailer (NODEMAILER_PATH points at its node_modules).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from test_message_bench import attachment_file

HERE = Path(__file__).parent / "senders"
SRC = Path(__file__).resolve().parent.parent / "src"
NODE_PATH = os.environ.get("NODEMAILER_PATH", "/tmp/nodemailer/node_modules")
SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
WORK_KEY = Path(os.environ.get("SMTPSTREAM_BENCH_DIR", "/tmp/smtpstream-bench")) / "dkim-rsa2048.pem"

SENDERS = {
    "smtpstream": [sys.executable, str(HERE / "smtpstream_send.py")],
    "smtpstream-cached": [sys.executable, str(HERE / "smtpstream_send.py"), "--cached"],
    "smtplib": [sys.executable, str(HERE / "smtplib_send.py")],
    "aiosmtplib": [sys.executable, str(HERE / "aiosmtplib_send.py")],
    "nodemailer": ["node", str(HERE / "nodemailer_send.js")],
    "luasocket": ["lua5.4", str(HERE / "luasocket_send.lua")],
}


def available(name: str) -> str | None:
    """Why a sender cannot run here, or None."""
    if name == "aiosmtplib":
        try:
            import aiosmtplib  # noqa: F401
        except ImportError:
            return "pip install aiosmtplib"
    if name == "nodemailer" and not (shutil.which("node") and Path(NODE_PATH, "nodemailer").exists()):
        return "npm install nodemailer; set NODEMAILER_PATH"
    if name == "luasocket" and not shutil.which("lua5.4"):
        return "apt-get install lua5.4 lua-socket"
    return None


@pytest.fixture(scope="module")
def sink_port():
    if not os.path.exists(SMTP_SINK):
        pytest.skip("postfix's smtp-sink is not installed (apt-get install postfix)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    args = [SMTP_SINK, "127.0.0.1:%d" % port, "256"]
    if os.geteuid() == 0:
        args[1:1] = ["-u", "nobody"]
    sink = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    yield port
    sink.send_signal(signal.SIGTERM)
    sink.wait(timeout=10)


def timed_run(cmd: list[str], reports: bool = False) -> dict:
    """The command's wall, CPU and peak RSS under ``/usr/bin/time -v``; with ``reports``, also
    the fields of the JSON object the command printed as its last line."""
    env = dict(os.environ, PYTHONPATH=f"{SRC}:{HERE}", NODE_PATH=NODE_PATH)
    done = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{cmd} failed: {done.stderr[-2000:]}")
    stats = done.stderr

    def field(label: str) -> str:
        return re.search(rf"{re.escape(label)}: (.+)", stats).group(1).strip()

    wall = field("Elapsed (wall clock) time (h:mm:ss or m:ss)")
    parts = [float(p) for p in wall.split(":")]
    seconds = parts[-1] + 60 * parts[-2] + (3600 * parts[-3] if len(parts) == 3 else 0)
    reported = json.loads(done.stdout.strip().splitlines()[-1]) if reports else {}
    return {
        **reported,
        "wall_s": seconds,
        "cpu_s": float(field("User time (seconds)")) + float(field("System time (seconds)")),
        "maxrss_mib": int(field("Maximum resident set size (kbytes)")) / 1024,
    }


def run_sender(benchmark, group, name, path, count, sink_port, rounds):
    why = available(name)
    if why:
        pytest.skip(f"{name} not available: {why}")
    cmd = SENDERS[name][:2] + ["127.0.0.1", str(sink_port), str(path), str(count)] + SENDERS[name][2:]
    benchmark.group = group
    benchmark.name = name
    benchmark.extra_info["impl"] = name
    results = []

    def once():
        results.append(timed_run(cmd))

    benchmark.pedantic(once, rounds=rounds, iterations=1)
    best = min(results, key=lambda r: r["cpu_s"])
    benchmark.extra_info.update(best)
    benchmark.extra_info["messages"] = count
    benchmark.extra_info["msgs_per_s"] = count / min(r["wall_s"] for r in results)


@pytest.mark.parametrize("name", list(SENDERS))
def test_send_one_big_attachment(benchmark, sink_port, name):
    mb = int(os.environ.get("SMTPSTREAM_BENCH_ATTACH_MB", "64"))
    path = attachment_file(f"attach-{mb}m.bin", mb << 20)
    run_sender(benchmark, f"send/one-{mb}MiB", name, path, 1, sink_port, rounds=2)


@pytest.mark.parametrize("name", list(SENDERS))
def test_send_thousand_messages(benchmark, sink_port, name):
    path = attachment_file("attach-100k.bin", 100 << 10)
    count = 100 if name == "luasocket" else 1000  # LuaSocket stalls ~40 ms a message on Nagle
    run_sender(benchmark, "send/1000x100KiB", name, path, count, sink_port, rounds=1)
