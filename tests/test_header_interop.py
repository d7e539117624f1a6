"""Display names and subjects in any script read back exactly by several parsers.

Python's ``email`` with the default policy (which keeps the white space
between adjacent encoded words, CPython gh-128110) and with ``compat32``,
and npm's ``mailparser`` (tests/mailparser_read.js), which is not Python.
A name is one encoded word whenever it fits in 75 characters, and an
address list folds between addresses, never inside a name.

``mailparser`` is found as bench/ finds nodemailer: ``npm install mailparser``
into ``$MAILPARSER_PATH`` (default /tmp/mailparser/node_modules). Without it
those cases skip, unless SMTPSTREAM_REQUIRE_MAILPARSER=1 (CI) makes them fail.
"""
from __future__ import annotations

import base64
import email
import email.header
import email.policy
import email.utils
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import assume, given, settings, strategies as st

from smtpstream import smtp
from smtpstream.message import headers as hdr

MAILPARSER_PATH = Path(os.environ.get("MAILPARSER_PATH", "/tmp/mailparser/node_modules"))
READER = Path(__file__).with_name("mailparser_read.js")

SCRIPTS = {
    "latin": "abcdefghijklmnopqrstuvwxyzéüöäñçßåøłčšžő",
    "cyrillic": "абвгдежзийклмнопрстуфхцчшщыэюяЖЩЯ",
    "cjk": "山田太郎花子東京大阪佐藤鈴木高橋田中",
    "arabic": "محمدعليأحمدحسنفاطمةعائشة",
    "emoji": "😀🎉👍🚀🌍🍕💌🔥",
}


def _word(script: str):
    return st.text(alphabet=SCRIPTS[script], min_size=1, max_size=8)


@st.composite
def names(draw):
    script = draw(st.sampled_from(sorted(SCRIPTS)))
    words = draw(st.lists(_word(script), min_size=1, max_size=3))
    if draw(st.booleans()):
        words.insert(draw(st.integers(0, len(words))), draw(st.sampled_from(["Dr", "von", "Jr"])))
    name = " ".join(words)
    assume(not name.isascii())
    return name


def _fits_one_word(text: str) -> bool:
    return len(hdr._encoded_word(text)) <= hdr._EW_MAX


class Mailparser:
    def __init__(self) -> None:
        env = dict(os.environ, MAILPARSER_PATH=str(MAILPARSER_PATH))
        self.proc = subprocess.Popen(["node", str(READER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)

    def read(self, raw: bytes) -> dict:
        self.proc.stdin.write(base64.b64encode(raw) + b"\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(10)


@pytest.fixture(scope="module")
def mailparser():
    if not (shutil.which("node") and (MAILPARSER_PATH / "mailparser").exists()):
        if os.environ.get("SMTPSTREAM_REQUIRE_MAILPARSER") == "1":
            raise RuntimeError("SMTPSTREAM_REQUIRE_MAILPARSER=1 but node + mailparser are not installed")
        pytest.skip("npm install mailparser into $MAILPARSER_PATH (default /tmp/mailparser/node_modules)")
    reader = Mailparser()
    yield reader
    reader.close()


def _build(people, subject) -> bytes:
    to = ", ".join(f"{name} <p{i}@example.com>" for i, name in enumerate(people))
    return b"".join(smtp.message({"headers": {"from": "a@example.com", "to": to, "subject": subject},
                                  "body": "x"}))


def _python_default(raw: bytes):
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    return [(a.display_name, a.addr_spec) for a in msg["To"].addresses], str(msg["Subject"])


def _decode(value: str) -> str:
    return str(email.header.make_header(email.header.decode_header(value)))


def _python_compat32(raw: bytes):
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    pairs = email.utils.getaddresses([msg["To"]])
    return [(_decode(name), addr) for name, addr in pairs], _decode(msg["Subject"])


def _expected(people):
    return [(name, f"p{i}@example.com") for i, name in enumerate(people)]


@settings(max_examples=150, deadline=None)
@given(people=st.lists(names(), min_size=1, max_size=4), subject=names())
def test_python_reads_back_names_and_subject_exactly(people, subject):
    assume(all(_fits_one_word(n) for n in people))
    raw = _build(people, subject)
    assert _python_default(raw) == (_expected(people), subject)
    assert _python_compat32(raw) == (_expected(people), subject)


@settings(max_examples=100, deadline=None)
@given(people=st.lists(names(), min_size=1, max_size=4), subject=names())
def test_mailparser_reads_back_names_and_subject_exactly(mailparser, people, subject):
    assume(all(_fits_one_word(n) for n in people))
    got = mailparser.read(_build(people, subject))
    assert [tuple(pair) for pair in got["to"]] == _expected(people)
    assert got["subject"] == subject


def test_a_name_that_fits_is_one_encoded_word_and_the_fold_is_between_addresses():
    head = _build(["Jörg Müller", "山田 太郎", "Иван Петров"], "s").split(b"\r\n\r\n")[0]
    to = [line for line in head.replace(b"\r\n ", b"\n ").split(b"\r\n") if line.startswith(b"To:")][0]
    assert to == (b"To: =?utf-8?b?SsO2cmcgTcO8bGxlcg==?= <p0@example.com>,\n"
                  b" =?utf-8?b?5bGx55SwIOWkqumDjg==?= <p1@example.com>,\n"
                  b" =?utf-8?b?0JjQstCw0L0g0J/QtdGC0YDQvtCy?= <p2@example.com>")
