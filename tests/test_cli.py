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
    assert done.returncode == 2 and b"invalid choice" in done.stderr
