"""Constant memory when signing: a signed 1 GiB attachment, sent to smtp-sink, peaks at the RSS of
an unsigned 1 MiB send, and no temporary file is made for parts that can be read twice."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from smtpstream.smtp import Session

from smtp_servers import HOST, free_port

SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"

SEND = textwrap.dedent(
    """
    import sys, tempfile

    def no_spill(*args, **kwargs):
        raise AssertionError("a temporary file was made")

    tempfile.TemporaryFile = no_spill  # replayable parts are read twice, never spilled
    from smtpstream import smtp
    from smtpstream.message import attachment, message, text
    path, port, key = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    dkim = None
    if key != "-":
        from smtpstream.dkim import Signer
        dkim = Signer("example.com", "sel", key)
    table = {"headers": {"from": "a@example.com", "to": "b@example.com", "subject": "big"},
             "body": {1: text("see attached"), 2: attachment(path)}}
    source = message(table, dkim=dkim)
    result = smtp.send(source=source, server="127.0.0.1", port=port, timeout=60)
    assert result.size >= source.size > 0 and source.signed == (dkim is not None)
    # VmHWM: this process image's peak (ru_maxrss would carry pytest's across exec).
    print([l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM:")][0])
    """
)


@pytest.fixture
def sink_port():
    if not os.path.exists(SMTP_SINK):
        if os.environ.get("SMTPSTREAM_REQUIRE_SMTP_SINK") == "1":
            raise RuntimeError("SMTPSTREAM_REQUIRE_SMTP_SINK=1 but smtp-sink is missing")
        pytest.skip("postfix's smtp-sink is not installed")
    port = free_port()
    args = [SMTP_SINK, f"{HOST}:{port}", "8"]  # no -d: the messages are discarded
    if os.geteuid() == 0:
        args[1:1] = ["-u", "nobody"]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with Session(server=HOST, port=port):
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("smtp-sink did not start")
                time.sleep(0.05)
        yield port
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)


def peak_rss_kib(path, port, key) -> int:
    done = subprocess.run([sys.executable, "-c", SEND, str(path), str(port), str(key)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip())


def test_signing_a_1_gib_attachment_costs_no_memory(sink_port, tmp_path):
    key = tmp_path / "key.pem"
    key.write_bytes(rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    small = tmp_path / "small.bin"
    small.write_bytes(b"\x5a" * (1 << 20))
    big = tmp_path / "big.bin"
    with open(big, "wb") as handle:  # sparse: 1 GiB of zeros without using the disk
        handle.truncate(1 << 30)
    unsigned_small = peak_rss_kib(small, sink_port, "-")
    signed_big = peak_rss_kib(big, sink_port, key)
    assert signed_big - unsigned_small < 16 * 1024, (unsigned_small, signed_big)
