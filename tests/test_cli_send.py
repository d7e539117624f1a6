"""`smtpstream send` and `smtpstream demo`, run as a user runs them: subprocesses, real files, real servers."""
from __future__ import annotations

import email
import email.policy
import hashlib
import mailbox
import os
import socket
import subprocess
import sys

import pytest
from aiosmtpd.controller import Controller

from smtpstream.sendcmd import EXIT_CODES

FROM = "Ana <ana@example.com>"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(*args, env=None, timeout=60):
    return subprocess.run([sys.executable, "-m", "smtpstream", *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


@pytest.fixture
def dev_server(tmp_path):
    """`smtpstream serve` on a free port, storing into a Maildir; yields (port, maildir)."""
    port = free_port()
    maildir = tmp_path / "Maildir"
    proc = subprocess.Popen([sys.executable, "-m", "smtpstream", "serve", "--port", str(port),
                             "--maildir", str(maildir)], stdout=subprocess.PIPE, text=True)
    proc.stdout.readline()  # the banner: listening
    yield port, maildir
    proc.terminate()
    proc.wait(timeout=10)


def stored(maildir):
    return [email.message_from_bytes(bytes(m), policy=email.policy.default) for m in mailbox.Maildir(maildir)]


def test_send_with_text_html_and_attachments(dev_server, tmp_path):
    port, maildir = dev_server
    report = tmp_path / "report.pdf"
    report.write_bytes(os.urandom(300_000))
    page = tmp_path / "page.html"
    page.write_text("<p>Ol\u00e1</p>", encoding="utf-8")
    done = cli("send", "--from", FROM, "--to", "bo@example.com", "--cc", "cy@example.com",
               "--bcc", "di@example.com", "--subject", "Relat\u00f3rio", "--text", "see attached",
               "--html-file", str(page), "--attach", str(report), "--server", f"127.0.0.1:{port}")
    assert done.returncode == 0, done.stderr
    [msg] = stored(maildir)
    assert str(msg["Subject"]) == "Relat\u00f3rio" and msg["Bcc"] is None
    parts = [p.get_content_type() for p in msg.walk()]
    assert parts == ["multipart/mixed", "multipart/alternative", "text/plain", "text/html", "application/pdf"]
    [pdf] = list(msg.iter_attachments())
    assert pdf.get_filename() == "report.pdf" and pdf.get_content() == report.read_bytes()


def test_dry_run_writes_the_message(tmp_path):
    out = tmp_path / "m.eml"
    done = cli("send", "--from", FROM, "--to", "bo@example.com", "--subject", "x", "--text", "hi",
               "--dry-run", "--output", str(out))
    assert done.returncode == 0, done.stderr
    msg = email.message_from_bytes(out.read_bytes(), policy=email.policy.default)
    assert msg["To"] == "bo@example.com" and msg.get_content().strip() == "hi"
    to_stdout = subprocess.run([sys.executable, "-m", "smtpstream", "send", "--from", FROM, "--to", "b@example.com",
                                "--text", "hi", "--dry-run"], capture_output=True)
    assert to_stdout.returncode == 0 and b"\r\n\r\nhi\r\n" in to_stdout.stdout


@pytest.mark.parametrize(
    "args, code, words",
    [
        (["send", "--to", "b@example.com"], 64, "--from"),
        (["send", "--from", FROM, "--text", "x", "--dry-run"], 64, "recipient"),
        (["send", "--from", FROM, "--to", "b@example.com", "--attach", "/no/such/file.pdf", "--dry-run"], 66,
         "/no/such/file.pdf"),
        (["send", "--from", FROM, "--to", "b@example.com", "--text-file", "/no/such.txt", "--dry-run"], 66,
         "/no/such.txt"),
        (["send", "--from", FROM, "--to", "b@example.com", "--subject", "a\nBcc: x@example.com", "--dry-run"], 64,
         "injection"),
    ],
)
def test_usage_and_input_errors(args, code, words):
    done = cli(*args)
    assert done.returncode == code, done.stderr
    lines = done.stderr.strip().splitlines()
    assert words in done.stderr and (code == 64 and "usage" in done.stderr or len(lines) == 1)
    assert "Traceback" not in done.stderr


def test_unreachable_server():
    port = free_port()  # nothing listens there
    done = cli("send", "--from", FROM, "--to", "b@example.com", "--text", "x", "--server", f"127.0.0.1:{port}",
               "--timeout", "5")
    assert done.returncode == 69, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


class Refusing:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("nobody@"):
            return "550 5.1.1 No such user"
        if address.startswith("later@"):
            return "450 4.2.1 Mailbox busy, try later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        return "250 2.0.0 queued"


@pytest.fixture
def refusing_server():
    port = free_port()
    controller = Controller(Refusing(), hostname="127.0.0.1", port=port)
    controller.start()
    yield port
    controller.stop()


def test_refused_recipients(refusing_server):
    port = refusing_server
    base = ["send", "--from", FROM, "--text", "x", "--server", f"127.0.0.1:{port}"]
    partial = cli(*base, "--to", "ok@example.com", "--to", "nobody@example.com")
    assert partial.returncode == 1, partial.stderr
    assert "nobody@example.com" in partial.stderr and "550" in partial.stderr
    permanent = cli(*base, "--to", "nobody@example.com")
    assert permanent.returncode == 76, permanent.stderr
    assert "550" in permanent.stderr and len(permanent.stderr.strip().splitlines()) == 1
    temporary = cli(*base, "--to", "later@example.com")
    assert temporary.returncode == 75, temporary.stderr
    assert "450" in temporary.stderr


def test_exit_codes_are_documented():
    assert set(EXIT_CODES) == {0, 1, 64, 66, 69, 75, 76, 78}


def test_demo_sends_and_checks():
    done = cli("demo", "--size", "2", timeout=120)
    assert done.returncode == 0, done.stderr
    assert "sha256 matches" in done.stdout and "Bcc header present: no" in done.stdout
    assert done.stdout.strip().endswith("demo OK")


def test_encode_decode_100_mib_in_constant_memory(tmp_path):
    source = tmp_path / "big.bin"
    with open(source, "wb") as handle:
        for i in range(100):
            handle.write(hashlib.sha512(str(i).encode()).digest() * 16384)  # 1 MiB each
    measure = (
        "import runpy, sys\n"
        "sys.argv = ['smtpstream'] + sys.argv[1:]\n"
        "try:\n    runpy.run_module('smtpstream', run_name='__main__')\n"
        "finally:\n"
        "    hwm = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
        "    print(hwm, file=sys.stderr)\n"
    )
    encoded = tmp_path / "big.b64"
    with open(source, "rb") as inp, open(encoded, "wb") as out:
        enc = subprocess.run([sys.executable, "-c", measure, "encode", "base64"], stdin=inp, stdout=out,
                             stderr=subprocess.PIPE, text=False, check=True)
    decoded = tmp_path / "back.bin"
    with open(encoded, "rb") as inp, open(decoded, "wb") as out:
        dec = subprocess.run([sys.executable, "-c", measure, "decode", "base64"], stdin=inp, stdout=out,
                             stderr=subprocess.PIPE, text=False, check=True)
    assert hashlib.sha256(decoded.read_bytes()).digest() == hashlib.sha256(source.read_bytes()).digest()
    for run in (enc, dec):
        peak_kib = int(run.stderr.split()[-1])
        assert peak_kib < 64 * 1024, peak_kib  # 100 MiB through it; the interpreter alone is ~10-20 MiB


def test_progress_bar_on_a_terminal_only(dev_server, tmp_path):
    import pty

    port, _ = dev_server
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(6 << 20))
    args = ["send", "--from", FROM, "--to", "bo@example.com", "--attach", str(big), "--server", f"127.0.0.1:{port}"]
    master, slave = pty.openpty()
    try:
        done = subprocess.run([sys.executable, "-m", "smtpstream", *args], stderr=slave, stdout=subprocess.PIPE,
                              timeout=60)
        os.close(slave)
        seen = b""
        while True:
            try:
                block = os.read(master, 65536)
            except OSError:  # the terminal is closed once its output is read
                break
            if not block:
                break
            seen += block
    finally:
        os.close(master)
    assert done.returncode == 0
    assert b"MB/s" in seen and b"s left" in seen and b"#" * 30 in seen  # it reached 100%
    quiet = cli(*args)  # stderr is a pipe here: no bar
    assert quiet.returncode == 0 and quiet.stderr == ""
