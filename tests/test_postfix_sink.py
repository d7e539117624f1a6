"""Pipelined bulk sends against a real server: postfix's smtp-sink, which offers PIPELINING.

smtp-sink writes each transaction it receives to a file (``-d``): its
envelope (``X-Mail-Args``, ``X-Rcpt-Args``) and the message as received,
dot-unstuffed, lines ended by LF. Each test sends messages with random
attachments, text lines that start with dots, and several recipients over
a pool (a few connections, rotated after some messages), then reads every
file back and checks that each message arrived exactly once, whole, and
with its own envelope: nothing mixed between messages that shared a write.

Needs ``smtp-sink`` (Debian package ``postfix``); skipped without it unless
SMTPSTREAM_REQUIRE_SMTP_SINK=1 (as in CI).
"""
from __future__ import annotations

import asyncio
import email
import email.policy
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from smtpstream.message import attachment, message, text
from smtpstream.pool import AsyncPool, Pool
from smtpstream.smtp import Session

from smtp_servers import HOST, free_port

SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"

if not os.path.exists(SMTP_SINK):
    if os.environ.get("SMTPSTREAM_REQUIRE_SMTP_SINK") == "1":
        raise RuntimeError("SMTPSTREAM_REQUIRE_SMTP_SINK=1 but smtp-sink is missing (apt-get install postfix)")
    pytest.skip("postfix's smtp-sink is not installed (apt-get install postfix)", allow_module_level=True)


@pytest.fixture
def sink():
    """smtp-sink on 127.0.0.1 dumping every transaction into a fresh directory; yields (port, dump dir)."""
    # Not under pytest's tmp_path: started as root, smtp-sink runs as nobody,
    # who cannot enter root's 0700 pytest directory.
    dump = Path(tempfile.mkdtemp(prefix="smtpstream-sink-"))
    os.chmod(dump, 0o777)
    port = free_port()
    args = [SMTP_SINK, "-d", f"{dump}/%M.", f"{HOST}:{port}", "64"]
    if os.geteuid() == 0:
        args[1:1] = ["-u", "nobody"]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with Session(server=HOST, port=port, domain="probe.example") as probe:
                    assert "PIPELINING" in probe.extensions
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"smtp-sink did not start: {process.stderr.read()!r}")
                time.sleep(0.05)
        yield port, dump
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
        shutil.rmtree(dump, ignore_errors=True)


def attachment_bytes(i: int) -> bytes:
    rnd = random.Random(i)
    return rnd.randbytes(rnd.choice([0, 1, 57, 4096, 100_000, 250_000]))


def recipients(i: int) -> list[str]:
    return [f"rcpt{i}-{k}@example.com" for k in range(1 + i % 3)]


def build(i: int, tmp_path: Path) -> dict:
    path = tmp_path / f"file{i}.bin"
    path.write_bytes(attachment_bytes(i))
    to = recipients(i)
    headers = {"from": f"Sender {i} <sender{i}@example.com>", "to": to[0], "subject": f"message {i}"}
    if to[1:]:
        headers["cc"] = ", ".join(to[1:])
    source = message({
        "headers": headers,
        "body": {1: text(f".starts with a dot {i}\n..two dots\nplain line\n.\n"), 2: attachment(str(path))},
    })
    return {"source": source}


def read_dumps(dump: Path) -> dict[int, tuple[str, list[str], email.message.EmailMessage]]:
    """subject number -> (MAIL args, RCPT addresses, parsed message); fails on a duplicate."""
    found: dict[int, tuple] = {}
    for path in sorted(dump.iterdir()):
        raw = path.read_bytes()
        envelope, _, rest = raw.partition(b"\nReceived: ")
        rest = rest.split(b"\n", 3)[3]  # the three lines of smtp-sink's Received header
        lines = envelope.decode().split("\n")
        mail_args = next(line.split(": ", 1)[1] for line in lines if line.startswith("X-Mail-Args: "))
        rcpts = [line.split(": ", 1)[1].split()[0].strip("<>") for line in lines if line.startswith("X-Rcpt-Args: ")]
        parsed = email.message_from_bytes(rest.replace(b"\n", b"\r\n"), policy=email.policy.default)
        number = int(str(parsed["subject"]).split()[1])
        assert number not in found, f"message {number} arrived twice"
        found[number] = (mail_args, rcpts, parsed)
    return found


def check_all(dump: Path, count: int) -> None:
    deadline = time.monotonic() + 10
    while len(list(dump.iterdir())) < count and time.monotonic() < deadline:
        time.sleep(0.05)  # smtp-sink closes its files after replying
    found = read_dumps(dump)
    assert sorted(found) == list(range(count))
    for i, (mail_args, rcpts, parsed) in found.items():
        assert mail_args.split()[0] == f"<sender{i}@example.com>"
        assert rcpts == recipients(i)
        assert parsed["to"].addresses[0].addr_spec == recipients(i)[0]
        body, attached = parsed.iter_parts()
        assert body.get_content().replace("\r\n", "\n") == f".starts with a dot {i}\n..two dots\nplain line\n.\n"
        assert attached.get_content() == attachment_bytes(i)


def test_pool_pipelines_many_messages_into_a_real_server(sink, tmp_path):
    port, dump = sink
    count = 60
    pool = Pool(server=HOST, port=port, domain="client.example", connections=3, max_messages=25,
                timeout=10)
    results = pool.send_many(build(i, tmp_path) for i in range(count))
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    assert all(r.result.pipelining for r in results)
    assert [r.accepted for r in results] == [tuple(recipients(i)) for i in range(count)]
    check_all(dump, count)


def test_async_pool_with_an_async_iterable_into_a_real_server(sink, tmp_path):
    port, dump = sink
    count = 40

    async def produce():
        for i in range(count):
            if i % 7 == 0:
                await asyncio.sleep(0.002)  # not always at hand: the held message is finished first
            yield build(i, tmp_path)

    pool = AsyncPool(server=HOST, port=port, domain="client.example", connections=2, max_messages=15,
                     timeout=10)
    results = asyncio.run(pool.send_many(produce()))
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    check_all(dump, count)


def test_one_session_send_many_into_a_real_server(sink, tmp_path):
    port, dump = sink
    with Session(server=HOST, port=port, domain="client.example", timeout=10) as session:
        results = session.send_many(build(i, tmp_path) for i in range(25))
    assert all(r.ok and r.result.pipelining for r in results)
    check_all(dump, 25)


def test_dkim_signatures_verify_as_smtp_sink_stored_them(sink, tmp_path):
    import dkim as dkimpy
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    from smtpstream.dkim import Signer

    port, dump = sink
    keys = [
        ("rsa-sha256", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        ("ed25519-sha256", ed25519.Ed25519PrivateKey.generate()),
    ]
    signers = [
        Signer("example.com", f"s{k}", key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                        serialization.NoEncryption()),
               algorithm=algorithm, canonicalization=c)
        for k, (algorithm, key) in enumerate(keys)
        for c in ("relaxed/relaxed", "simple/simple", "relaxed/simple", "simple/relaxed")
    ]
    with Session(server=HOST, port=port, domain="client.example", timeout=10) as session:
        results = session.send_many(dict(build(i, tmp_path), dkim=signers[i]) for i in range(len(signers)))
    assert all(r.ok for r in results)
    check_all(dump, len(signers))  # every message once, whole
    records = {f"{s.selector}._domainkey.example.com.".encode(): s.dns_record().encode() for s in signers}
    for path in dump.iterdir():
        raw = path.read_bytes().partition(b"\nReceived: ")[2].split(b"\n", 3)[3]
        stored = raw.replace(b"\n", b"\r\n")  # smtp-sink ends lines with LF
        assert dkimpy.verify(stored, dnsfunc=lambda name, timeout=5: records[name]), path
