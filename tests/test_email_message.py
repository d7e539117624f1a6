"""email.message.Message / EmailMessage as sources, and message.from_email.

What the server stored is compared with what smtplib.send_message sends for
the same message object to the same kind of server (the oracle), byte for
byte; the envelope too.
"""
from __future__ import annotations

import asyncio
import email
import email.message
import email.policy
import io
import smtplib
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

import pytest

from smtpstream import aio, smtp
from smtpstream.message import from_email
from smtpstream.pool import AsyncPool, Pool
from smtpstream.smtp import LocalProtocolError, SMTPNotSupportedError

from smtp_servers import HOST, ScriptedServer

T = 20  # a bound only: no test measures time


def rich() -> email.message.EmailMessage:
    m = email.message.EmailMessage()
    m["From"] = "App <app@example.com>"
    m["To"] = "a@example.org, Bee <b@example.org>"
    m["Cc"] = "c@example.org"
    m["Bcc"] = "Hidden <hidden@example.org>"
    m["Subject"] = "Grüße"
    m["Message-ID"] = "<fixed@example.com>"
    m.set_content("hello\n.a dot line\n")
    m.add_alternative("<p>hi</p>\n", subtype="html")
    m.add_attachment(bytes(range(256)) * 300, maintype="application", subtype="octet-stream",
                     filename="résumé.bin")
    m.as_bytes()  # the generator picks the boundaries once: both senders then use the same
    return m


def header_names(content: bytes) -> list[str]:
    head = content.split(b"\r\n\r\n", 1)[0]
    return [line.split(b":", 1)[0].decode().lower() for line in head.split(b"\r\n") if line[:1] not in b" \t"]


def smtplib_sent(msg, **kw):
    """What smtplib.send_message delivers: the oracle."""
    with ScriptedServer(extensions=("8BITMIME", "SMTPUTF8")) as server:
        with smtplib.SMTP(HOST, server.port, timeout=T) as client:
            client.send_message(msg, **kw)
    (got,) = server.messages
    return got


def test_envelope_and_bytes_as_smtplib_sends_them():
    msg = rich()
    oracle = smtplib_sent(msg)
    with ScriptedServer() as server:
        result = smtp.send(server=HOST, port=server.port, source=msg, timeout=T)
    (got,) = server.messages
    assert got.mail_from == oracle.mail_from == "app@example.com"
    assert got.rcpt_tos == oracle.rcpt_tos == ["a@example.org", "b@example.org", "hidden@example.org",
                                               "c@example.org"]
    assert got.content == oracle.content
    assert "bcc" not in header_names(got.content)
    assert msg["Bcc"] == "Hidden <hidden@example.org>"  # the caller's message is left as it was
    assert set(result.accepted) == set(got.rcpt_tos)


def test_message_is_streamed_part_by_part_with_crlf():
    msg = rich()
    spec = smtp.options.message_spec({"source": msg})
    chunks = list(spec.chunks)
    assert len(chunks) > 5  # heads, boundaries and leaves: never one buffer of the whole message
    data = b"".join(chunks)
    assert b"\n" not in data.replace(b"\r\n", b"")
    expected = msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))
    assert data == expected.replace(b"Bcc: Hidden <hidden@example.org>\r\n", b"")


def test_from_lines_are_not_mangled_unless_the_policy_says_so():
    # smtplib.send_message writes ">From here" (an mbox habit that changes the
    # text); the policy's mangle_from_ decides here, as in msg.as_bytes().
    msg = email.message.EmailMessage()
    msg["From"], msg["To"] = "a@example.com", "b@example.org"
    msg.set_content("hello\nFrom here\n")
    with ScriptedServer() as server:
        smtp.send(server=HOST, port=server.port, source=msg, timeout=T)
    assert b"\r\nFrom here\r\n" in server.messages[0].content
    assert b">From" in smtplib_sent(msg).content


def test_compat32_mime_message():
    msg = MIMEMultipart()
    msg["From"] = "a@example.com"
    msg["To"] = "b@example.org"
    msg.attach(MIMEText("one\ntwo\n"))
    msg.attach(MIMEText("<b>x</b>", "html"))
    msg.preamble = "This is MIME.\n"
    msg.epilogue = "bye\n"
    msg.as_bytes()
    oracle = smtplib_sent(msg)
    with ScriptedServer() as server:
        smtp.send(server=HOST, port=server.port, source=msg, timeout=T)
    (got,) = server.messages
    assert got.content == oracle.content
    assert got.rcpt_tos == ["b@example.org"]


def test_resent_fields_give_the_envelope_and_resent_bcc_is_removed():
    msg = rich()
    msg["Resent-Date"] = "Mon, 1 Jun 2026 10:00:00 +0000"
    msg["Resent-From"] = "Fwd <fwd@example.net>"
    msg["Resent-To"] = "next@example.net"
    msg["Resent-Bcc"] = "secret@example.net"
    oracle = smtplib_sent(msg)
    with ScriptedServer() as server:
        smtp.send(server=HOST, port=server.port, source=msg, timeout=T)
    (got,) = server.messages
    assert got.mail_from == oracle.mail_from == "fwd@example.net"
    assert got.rcpt_tos == oracle.rcpt_tos == ["next@example.net", "secret@example.net"]
    assert got.content == oracle.content
    names = header_names(got.content)
    assert "resent-bcc" not in names and "bcc" not in names and "resent-to" in names


def test_two_resent_blocks_are_refused_before_connecting():
    msg = rich()
    for n in (1, 2):
        msg["Resent-Date"] = f"Mon, {n} Jun 2026 10:00:00 +0000"
    with ScriptedServer() as server:
        with pytest.raises(ValueError, match="Resent"):
            smtp.send(server=HOST, port=server.port, source=msg, timeout=T)
    assert server.connections == 0


def test_given_envelope_wins_over_headers():
    msg = rich()
    with ScriptedServer() as server:
        smtp.send(server=HOST, port=server.port, source=msg, from_="Bounce <bounce@example.com>",
                  rcpt=["Only <only@example.org>"], timeout=T)
    (got,) = server.messages
    assert (got.mail_from, got.rcpt_tos) == ("bounce@example.com", ["only@example.org"])
    assert "bcc" not in header_names(got.content)


def test_display_names_on_a_chunk_source():
    data = b"Subject: x\r\n\r\nbody\r\n"
    with ScriptedServer() as server:
        result = smtp.send(server=HOST, port=server.port, source=[data], from_="App <app@example.com>",
                           rcpt=['"Doe, J." <j@example.org>', "<k@example.org>", "l@example.org"], timeout=T)
    (got,) = server.messages
    assert got.mail_from == "app@example.com"
    assert got.rcpt_tos == ["j@example.org", "k@example.org", "l@example.org"]
    assert list(result.recipients) == ["j@example.org", "<k@example.org>", "l@example.org"]


@pytest.mark.parametrize("bad", ["App <a@example.com>\r\nRCPT TO:<x@evil>", "A <a@x>, B <b@y>", "A <a@x> junk"])
def test_display_name_forms_that_are_not_one_address(bad):
    with ScriptedServer() as server:
        with pytest.raises(LocalProtocolError):
            smtp.send(server=HOST, port=server.port, source=[b"x\r\n"], from_=bad, rcpt="b@example.org")
    assert server.connections == 0


@pytest.mark.parametrize("source, match", [
    ({"headers": {}, "body": "x"}, "mapping"),
    (["Subject: x\r\n", "\r\n"], "item 0 is str"),
    ("Subject: x\r\n\r\n", "single str"),
    (b"Subject: x\r\n\r\n", "single bytes"),
    (io.StringIO("Subject: x\r\n\r\n"), "binary mode"),
    (42, "int"),
])
def test_every_source_type_is_checked_before_connecting(source, match):
    with ScriptedServer() as server:
        with pytest.raises(TypeError, match=match):
            smtp.send(server=HOST, port=server.port, source=source, from_="a@example.com",
                      rcpt="b@example.org", timeout=T)
        with smtp.Session(server=HOST, port=server.port, timeout=T) as session:
            with pytest.raises(TypeError, match=match):
                session.send(source=source, from_="a@example.com", rcpt="b@example.org")
    assert server.messages == []
    assert not any(line.startswith(b"MAIL") for line in server.lines)


def test_utf8_envelope_uses_smtputf8_and_raw_utf8_headers():
    msg = email.message.EmailMessage()
    msg["From"] = "Jörg <jörg@example.com>"
    msg["To"] = "zoë@example.org"
    msg["Subject"] = "Grüße"
    msg.set_content("hallo\n")
    oracle = smtplib_sent(msg, mail_options=())
    with ScriptedServer(extensions=("8BITMIME", "SMTPUTF8")) as server:
        smtp.send(server=HOST, port=server.port, source=msg, timeout=T)
    (got,) = server.messages
    assert "SMTPUTF8" in got.mail_params
    assert got.content == oracle.content
    assert "Subject: Grüße".encode() in got.content
    with ScriptedServer(extensions=("8BITMIME",)) as server:
        with pytest.raises(SMTPNotSupportedError, match="SMTPUTF8"):
            smtp.send(server=HOST, port=server.port, source=msg, timeout=T)
    assert server.messages == [] and not any(line.startswith(b"MAIL") for line in server.lines)


def test_utf8_policy_headers_need_smtputf8():
    msg = email.message.EmailMessage(policy=email.policy.SMTPUTF8)
    msg["From"] = "a@example.com"
    msg["To"] = "b@example.org"
    msg["Subject"] = "Grüße"
    msg.set_content("x\n")
    with ScriptedServer(extensions=("SMTPUTF8",)) as server:
        smtp.send(server=HOST, port=server.port, source=msg, timeout=T)
    assert "SMTPUTF8" in server.messages[0].mail_params
    ascii_msg = email.message.EmailMessage(policy=email.policy.SMTPUTF8)
    ascii_msg["From"], ascii_msg["To"], ascii_msg["Subject"] = "a@example.com", "b@example.org", "plain"
    ascii_msg.set_content("x\n")
    with ScriptedServer(extensions=("SMTPUTF8",)) as server:
        smtp.send(server=HOST, port=server.port, source=ascii_msg, timeout=T)
    assert "SMTPUTF8" not in server.messages[0].mail_params


def test_session_send_many_and_pool():
    msgs = [rich() for _ in range(3)]
    for i, m in enumerate(msgs):
        m.replace_header("Message-ID", f"<m{i}@example.com>")
    with ScriptedServer() as server:
        with smtp.Session(server=HOST, port=server.port, timeout=T) as session:
            session.send(source=msgs[0])
            results = session.send_many([{"source": m} for m in msgs[1:]])
        assert all(r.ok for r in results)
        pool_results = Pool(server=HOST, port=server.port, connections=2, timeout=T).send_many(
            [{"source": m, "key": i} for i, m in enumerate(msgs)])
        assert [r.ok for r in pool_results] == [True] * 3
    assert len(server.messages) == 6
    for got in server.messages:
        assert got.rcpt_tos[2] == "hidden@example.org" and "bcc" not in header_names(got.content)
    ids = sorted(m.content.split(b"Message-ID: ", 1)[1].split(b"\r\n", 1)[0] for m in server.messages)
    assert ids == sorted([b"<m0@example.com>", b"<m1@example.com>", b"<m2@example.com>"] * 2)


def test_aio_send_and_async_pool():
    msg = rich()
    oracle = smtplib_sent(msg)

    async def main(port):
        await aio.send(server=HOST, port=port, source=msg, timeout=T)
        async with aio.Session(server=HOST, port=port, timeout=T) as session:
            await session.send(source=msg)
        return await AsyncPool(server=HOST, port=port, connections=1, timeout=T).send_many([{"source": msg}])

    with ScriptedServer() as server:
        results = asyncio.run(main(server.port))
    assert results[0].ok
    assert [m.content for m in server.messages] == [oracle.content] * 3
    assert all(m.rcpt_tos == oracle.rcpt_tos for m in server.messages)


def test_bad_source_in_a_pool_is_that_message_result():
    with ScriptedServer() as server:
        results = Pool(server=HOST, port=server.port, connections=1, timeout=T).send_many(
            [{"source": {"headers": {}}, "from": "a@example.com", "rcpt": "b@example.org"},
             {"source": rich()}])
    assert not results[0].ok and "TypeError" in str(results[0].error)
    assert results[1].ok and len(server.messages) == 1


# ------------------------------------------------------------------ from_email


def _text(part) -> str:
    return part.get_content().replace("\r\n", "\n")


def test_from_email_rebuilds_the_tree():
    msg = rich()
    source = from_email(msg)
    assert source.sender == "app@example.com"
    assert source.recipients == ["a@example.org", "b@example.org", "c@example.org", "hidden@example.org"]
    data = b"".join(source)
    assert "bcc" not in header_names(data)
    back = email.message_from_bytes(data, policy=email.policy.default)
    pairs = list(zip(msg.walk(), back.walk(), strict=True))
    assert [a.get_content_type() for a, _ in pairs] == [b.get_content_type() for _, b in pairs]
    for a, b in pairs:
        if a.is_multipart():
            continue
        assert a.get_filename() == b.get_filename()
        if a.get_content_maintype() == "text":
            assert _text(a) == _text(b)
        else:
            assert a.get_content() == b.get_content()
    assert back["Subject"] == "Grüße" and back["From"] == "App <app@example.com>"
    assert back["Message-ID"] == "<fixed@example.com>"
    attachment = [p for p in back.walk() if p.get_filename()][0]
    assert attachment["Content-Transfer-Encoding"] == "base64"


def test_from_email_declares_its_exact_size():
    msg = rich()
    source = from_email(msg)
    size = source.size
    with ScriptedServer(extensions=("SIZE 100000000", "8BITMIME")) as server:
        smtp.send(server=HOST, port=server.port, source=source, timeout=T)
    assert f"SIZE={size}" in server.messages[0].mail_params
    assert size == len(server.messages[0].content)


def test_from_email_refuses_a_repeated_header():
    msg = rich()
    msg["Comments"] = "one"
    msg["Comments"] = "two"
    with pytest.raises(ValueError, match="Comments"):
        from_email(msg)
    with pytest.raises(TypeError):
        from_email({"headers": {}})
