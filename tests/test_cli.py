"""The command-line filters, run as a user runs them: a subprocess on real files."""
from __future__ import annotations

import binascii
import os
import subprocess
import sys


def run(args, data: bytes, env=None) -> bytes:
    done = subprocess.run(
        [sys.executable, "-m", "smtpstream", *args], input=data, capture_output=True, check=True, env=env
    )
    return done.stdout


def test_base64_round_trip_through_the_command():
    data = os.urandom(300_000)
    encoded = run(["encode", "base64"], data)
    lines = encoded.split(b"\r\n")
    assert lines[-1] == b"" and all(len(line) == 76 for line in lines[:-2])
    assert binascii.a2b_base64(encoded) == data
    assert run(["decode", "base64"], encoded) == data


def test_quoted_printable_and_stuff_commands():
    text = b"caf\xc3\xa9 = ok \n.dot line\r\n"
    encoded = run(["encode", "quoted-printable"], text)
    assert encoded == b"caf=C3=A9 =3D ok=20\r\n.dot line\r\n"
    assert run(["decode", "quoted-printable"], encoded) == text.replace(b" \n", b" \r\n")
    assert run(["stuff"], b".a\n.b") == b"..a\r\n..b"
    assert run(["normalize"], b"a\rb\n") == b"a\r\nb\r\n"


def test_bad_arguments_are_a_usage_error():
    done = subprocess.run([sys.executable, "-m", "smtpstream", "encode", "rot13"], capture_output=True)
    assert done.returncode == 64 and b"invalid choice" in done.stderr


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_stores_each_message_in_a_maildir(tmp_path):
    import mailbox
    import smtplib

    port = free_port()
    maildir = tmp_path / "mail"
    server = subprocess.Popen(
        [sys.executable, "-m", "smtpstream", "serve", "--port", str(port), "--maildir", str(maildir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        banner = server.stdout.readline()
        assert f"127.0.0.1:{port}" in banner
        message = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: hi\r\n\r\n.dot line\r\nbody\r\n"
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            client.sendmail("a@example.com", ["b@example.com", "c@example.com"], message)
        summary = server.stdout.readline()
        assert "from <a@example.com> to b@example.com, c@example.com" in summary
        stored = list(mailbox.Maildir(maildir))
        assert len(stored) == 1 and stored[0].as_bytes().replace(b"\n", b"\r\n").endswith(b".dot line\r\nbody\r\n")
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_bench_prints_a_table():
    out = run(["bench", "--size", "1"], b"").decode()
    lines = out.splitlines()
    assert lines[0].startswith("filters: ")
    rows = [line for line in lines[2:] if line.strip()]
    assert {row.split()[0] for row in rows} >= {"base64", "quoted-printable", "normalize"}
    assert all(float(row.split()[-1]) > 0 for row in rows)
