"""A line-by-line port of LuaSocket code runs: the idioms of the README's port guide.

Each test is one LuaSocket habit (Lua's multiple results, fancy sources,
module defaults, ``tlsmode``, the low-level ``smtp.open`` object) checked
against what a real server on 127.0.0.1 stored, or against the exact error.
"""
from __future__ import annotations

import pytest

from smtpstream import ltn12, mime, smtp
from smtpstream.message import MessageError
from smtpstream.smtp import SMTPSourceError

from smtp_servers import HOST, ScriptedServer

SAFETY_TIMEOUT = 20


def send(**fields):
    fields.setdefault("timeout", SAFETY_TIMEOUT)
    return smtp.send(**fields)


# ------------------------------------------------------------------ Lua's multiple results


def test_a_tuple_body_from_mime_eol_is_refused_when_the_message_is_built():
    # The seed's `body = mime.eol(0, text)`: Lua keeps the first result, Python gets both.
    with pytest.raises(MessageError, match=r"body is a tuple \(bytes, int\).*mime\.eol\(\.\.\.\)\[0\]"):
        smtp.message({"headers": {"subject": "x"}, "body": mime.eol(0, b"a\nb")})
    with pytest.raises(MessageError, match=r"message part 1: body is a tuple"):
        smtp.message({"body": {1: {"body": mime.b64(b"abc")}}})  # (bytes, None)
    # The first result is the body, as in Lua.
    data = b"".join(smtp.message({"headers": {}, "body": mime.eol(0, b"a\nb")[0]}))
    assert data.endswith(b"\r\n\r\na\r\nb\r\n")


def test_a_list_body_with_a_non_chunk_is_refused_when_the_message_is_built():
    with pytest.raises(MessageError, match="body item 1 is int, not a bytes chunk"):
        smtp.message({"body": [b"a", 7]})
    assert b"".join(smtp.message({"body": [b"a\n", bytearray(b"b")]})).endswith(b"\r\n\r\na\r\nb\r\n")


def _fancy(*results):
    pending = list(results)
    return lambda: pending.pop(0) if pending else None


def test_a_source_returning_nil_err_points_to_simplify():
    with pytest.raises(TypeError, match=r"tuple \(None, 'disk gone'\).*ltn12\.source\.simplify"):
        list(ltn12.source.iterate(_fancy(b"a", (None, "disk gone"))))
    # simplify() is the fix: the error becomes an exception with Lua's message.
    with pytest.raises(ltn12.SourceError, match="^disk gone$"):
        list(ltn12.source.simplify(_fancy(b"a", (None, "disk gone"))))


@pytest.mark.parametrize("as_body", [False, True], ids=["source", "message-body"])
def test_sending_a_fancy_source_fails_before_end_of_data_and_names_simplify(as_body):
    src = _fancy(b"Subject: s\r\n\r\nhello\r\n", (None, "disk gone"))
    source = smtp.message({"headers": {"subject": "s"}, "body": src}) if as_body else src
    with ScriptedServer() as server:
        with pytest.raises(SMTPSourceError, match=r"ltn12\.source\.simplify"):
            send(server=HOST, port=server.port, from_="a@example.com", rcpt="b@example.com", source=source)
    assert server.messages == []  # no end of data went out


def test_an_iterable_yielding_a_tuple_names_simplify():
    with ScriptedServer() as server:
        with pytest.raises(SMTPSourceError, match=r"got a tuple \(b'x', 1\).*simplify"):
            send(server=HOST, port=server.port, from_="a@example.com", rcpt="b@example.com",
                 source=iter([b"Subject: s\r\n\r\n", (b"x", 1)]))
    assert server.messages == []
