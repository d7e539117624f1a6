"""A line-by-line port of LuaSocket code runs: the idioms of the README's port guide.

Each test is one LuaSocket habit (Lua's multiple results, fancy sources,
module defaults, ``tlsmode``, the low-level ``smtp.open`` object) checked
against what a real server on 127.0.0.1 stored, or against the exact error.
"""
from __future__ import annotations

import email
import email.policy
import email.utils
from datetime import datetime, timedelta, timezone

import pytest

from smtpstream import ltn12, mime, smtp
from smtpstream.message import MessageError
from smtpstream.smtp import SMTPNotSupportedError, SMTPSourceError, SMTPTimeoutError
from smtpstream.smtp.options import connection_settings

from smtp_servers import HOST, AuthHandler, ScriptedServer, aiosmtpd_running, make_certificate, tls_contexts

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


# ------------------------------------------------------------------ module defaults


def test_module_defaults_are_lua_s_names_with_documented_values():
    assert (smtp.SERVER, smtp.PORT, smtp.DOMAIN, smtp.TIMEOUT, smtp.ZONE) == ("localhost", 25, None, None, None)


def test_smtp_server_and_port_set_after_import_are_used_by_send(monkeypatch):
    with ScriptedServer() as server:
        monkeypatch.setattr(smtp, "SERVER", HOST)
        monkeypatch.setattr(smtp, "PORT", server.port)
        result = send(from_="a@example.com", rcpt="b@example.com", source=[b"Subject: d\r\n\r\nport\r\n"])
    assert result.code == 250 and server.messages[0].content == b"Subject: d\r\n\r\nport\r\n"


def test_smtp_port_is_also_the_session_s_default(monkeypatch):
    with ScriptedServer() as server:
        monkeypatch.setattr(smtp, "PORT", server.port)
        with smtp.Session(server=HOST, timeout=SAFETY_TIMEOUT) as session:
            session.send(from_="a@example.com", rcpt="b@example.com", source=[b"x\r\n"])
    assert len(server.messages) == 1


def test_smtp_domain_is_the_ehlo_argument(monkeypatch):
    monkeypatch.setattr(smtp, "DOMAIN", "client.example.org")
    with ScriptedServer() as server:
        send(server=HOST, port=server.port, from_="a@example.com", rcpt="b@example.com", source=[b"x\r\n"])
        send(server=HOST, port=server.port, domain="given.example.org", from_="a@example.com",
             rcpt="b@example.com", source=[b"x\r\n"])
    hellos = [line for line in server.lines if line.startswith(b"EHLO")]
    assert hellos == [b"EHLO client.example.org", b"EHLO given.example.org"]  # a field wins


def test_smtp_timeout_applies_when_no_timeout_is_given(monkeypatch):
    monkeypatch.setattr(smtp, "TIMEOUT", 0.3)
    with ScriptedServer(delays={"RCPT": 5}) as server:
        with pytest.raises(SMTPTimeoutError) as info:
            smtp.send(server=HOST, port=server.port, from_="a@example.com", rcpt="b@example.com", source=[b"x"])
    assert info.value.phase == "rcpt" and server.messages == []
    assert set(connection_settings({}).timeouts.values()) == {0.3}


def _date(source) -> str:
    parsed = email.message_from_bytes(b"".join(source), policy=email.policy.default)
    return parsed["Date"]


def test_zone_gives_the_date_in_that_zone_with_the_time_converted(monkeypatch):
    local = _date(smtp.message({"body": "x"}))  # ZONE None: local time, real offset
    assert email.utils.parsedate_to_datetime(local).utcoffset() == datetime.now().astimezone().utcoffset()
    monkeypatch.setattr(smtp, "ZONE", "-0000")
    utc = _date(smtp.message({"body": "x"}))
    assert utc.endswith(" -0000")  # LuaSocket's default Date: UTC, zone unknown
    east = _date(smtp.message({"body": "x", "zone": "+0530"}))  # mesgt.zone wins, as in Lua
    assert east.endswith(" +0530")
    # The same instant: the clock time is converted, not only relabelled as LuaSocket does.
    a, b = (email.utils.parsedate_to_datetime(d) for d in (utc, east))
    assert abs(a.replace(tzinfo=timezone.utc) - b) < timedelta(minutes=1)
    with pytest.raises(MessageError, match=r"zone must be \+hhmm or -hhmm"):
        smtp.message({"body": "x", "zone": "GMT"})


# ------------------------------------------------------------------ tlsmode


@pytest.mark.parametrize("mode, tls, starttls, port", [
    ("none", False, "off", 25), ("auto", False, "opportunistic", 25),
    ("starttls", False, "required", 25), ("tls", True, "off", 465),
])
def test_tlsmode_maps_onto_tls_and_starttls(mode, tls, starttls, port):
    settings = connection_settings({"tlsmode": mode})
    assert (settings.tls, settings.starttls, settings.port) == (tls, starttls, port)


def test_tlsmode_refuses_unknown_modes_and_mixing():
    with pytest.raises(ValueError, match="tlsmode must be one of"):
        connection_settings({"tlsmode": "ssl"})
    with pytest.raises(ValueError, match="tlsmode or tls/starttls, not both"):
        connection_settings({"tlsmode": "tls", "starttls": "off"})


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return tls_contexts(*make_certificate(str(tmp_path_factory.mktemp("tls"))))


@pytest.mark.parametrize("mode, encrypted", [("none", False), ("auto", True), ("starttls", True)])
def test_tlsmode_against_a_server_offering_starttls(tls, mode, encrypted):
    server_ctx, client_ctx = tls
    handler = AuthHandler()
    with aiosmtpd_running(handler, tls_context=server_ctx) as port:
        send(server=HOST, port=port, tlsmode=mode, ssl_context=client_ctx, from_="a@example.com",
             rcpt="b@example.com", source=[b"Subject: m\r\n\r\nx\r\n"])
    assert handler.tls == [encrypted]


def test_tlsmode_starttls_refuses_a_server_without_it():
    with ScriptedServer() as server:
        with pytest.raises(SMTPNotSupportedError, match="does not offer STARTTLS"):
            send(server=HOST, port=server.port, tlsmode="starttls", from_="a@example.com",
                 rcpt="b@example.com", source=[b"x"])
    assert server.messages == []


def test_tlsmode_tls_is_implicit_tls(tls):
    server_ctx, client_ctx = tls
    handler = AuthHandler()
    with aiosmtpd_running(handler, ssl_context=server_ctx) as port:
        send(server=HOST, port=port, tlsmode="tls", ssl_context=client_ctx, from_="a@example.com",
             rcpt="b@example.com", source=[b"Subject: 465\r\n\r\nx\r\n"])
    # The server speaks only TLS from the first byte (aiosmtpd's session.ssl stays None then).
    assert handler.box[0].original_content == b"Subject: 465\r\n\r\nx\r\n"


# ------------------------------------------------------------------ SIZE


@pytest.mark.parametrize("extensions", [("PIPELINING", "SIZE 100000"), ("PIPELINING", "CHUNKING", "SIZE 100000")],
                         ids=["DATA", "BDAT"])
@pytest.mark.parametrize("chunks", [
    [b"Subject: lf\n\n", b"one\ntwo\n.three\n", b"four"],  # LF line ends, no final line end
    [b"Subject: cr\r\rx\r", b"\ny\r"],  # bare CRs, a CRLF cut across chunks
    [b"Subject: crlf\r\n\r\nok\r\n"],
])
def test_size_declared_for_raw_chunks_is_what_the_server_receives(extensions, chunks):
    with ScriptedServer(extensions=extensions) as server:
        send(server=HOST, port=server.port, from_="a@example.com", rcpt="b@example.com", source=chunks)
    [received] = server.messages
    assert received.mail_params == [f"SIZE={len(received.content)}"]


def test_raw_sources_of_unknown_size_declare_none():
    with ScriptedServer(extensions=("PIPELINING", "SIZE 100000")) as server:
        send(server=HOST, port=server.port, from_="a@example.com", rcpt="b@example.com",
             source=iter([b"Subject: s\n\nx\n"]))
    assert server.messages[0].mail_params == []


# ------------------------------------------------------------------ the 1000-octet line limit

from hypothesis import given, settings, strategies as st  # noqa: E402

from smtpstream.smtp.linelimit import LineLimit  # noqa: E402
from smtpstream.smtp.options import message_spec  # noqa: E402

LONG_AT_4 = [b"Subject: long\r\n\r\n", b"ok\n", b"y" * 500, b"y" * 499 + b"\r\n", b"after\r\n"]


@pytest.mark.parametrize("extensions", [("PIPELINING",), (), ("PIPELINING", "CHUNKING"), ("CHUNKING",)],
                         ids=["DATA-pipelined", "DATA", "BDAT-pipelined", "BDAT"])
def test_a_line_over_1000_octets_aborts_before_end_of_data_naming_it(extensions):
    with ScriptedServer(extensions=extensions) as server:
        with pytest.raises(SMTPSourceError, match=r"line 4 of the message source is longer than 998") as info:
            send(server=HOST, port=server.port, from_="a@example.com", rcpt="b@example.com", source=LONG_AT_4)
    assert info.value.phase == "body"
    assert server.messages == []  # no end of data: the server kept nothing
    assert not any(b"LAST" in line for line in server.lines)


def test_after_a_long_line_in_bdat_the_session_goes_on():
    with ScriptedServer(extensions=("PIPELINING", "CHUNKING")) as server:
        with smtp.Session(server=HOST, port=server.port, timeout=SAFETY_TIMEOUT) as session:
            with pytest.raises(SMTPSourceError, match="line 4"):
                session.send(from_="a@example.com", rcpt="b@example.com", source=LONG_AT_4)
            session.send(from_="a@example.com", rcpt="c@example.com", source=[b"Subject: ok\r\n\r\nok\r\n"])
    assert [m.rcpt_tos for m in server.messages] == [["c@example.com"]]
    assert b"RSET" in server.lines


@pytest.mark.parametrize("extensions", [("PIPELINING",), ("PIPELINING", "CHUNKING")], ids=["DATA", "BDAT"])
def test_lines_of_998_octets_go_through_and_a_leading_dot_is_not_counted(extensions):
    body = b"Subject: edge\r\n\r\n" + b"z" * 998 + b"\r\n." + b"d" * 997 + b"\n" + b"e" * 998
    with ScriptedServer(extensions=extensions) as server:
        send(server=HOST, port=server.port, from_="a@example.com", rcpt="b@example.com", source=[body])
    assert server.messages[0].content == body.replace(b"\n", b"\r\n").replace(b"\r\r", b"\r") + b"\r\n"


def test_a_last_line_over_the_limit_without_its_line_end_is_refused():
    with ScriptedServer() as server:
        with pytest.raises(SMTPSourceError, match="line 3 "):
            send(server=HOST, port=server.port, from_="a@example.com", rcpt="b@example.com",
                 source=[b"Subject: s\r\n\r\n" + b"w" * 999])
    assert server.messages == []


def test_against_aiosmtpd_nothing_is_stored():
    handler = AuthHandler()
    with aiosmtpd_running(handler) as port:
        with pytest.raises(SMTPSourceError, match="line 4"):
            send(server=HOST, port=port, from_="a@example.com", rcpt="b@example.com", source=LONG_AT_4)
        send(server=HOST, port=port, from_="a@example.com", rcpt="b@example.com", source=[b"Subject: s\r\n\r\nx\r\n"])
    assert [e.original_content for e in handler.box] == [b"Subject: s\r\n\r\nx\r\n"]


def test_message_output_is_not_checked_unless_a_part_may_have_long_lines(tmp_path):
    encoded = smtp.message({"body": {1: {"body": "t" * 5000}, 2: {"body": b"\x00" * 3000}}})
    assert message_spec({"source": encoded, "from": "a@b.c", "rcpt": "d@e.f"}).check_lines is False
    raw_part = smtp.message({"body": ltn12.source.string(b"s" * 2000)})
    assert message_spec({"source": raw_part, "from": "a@b.c", "rcpt": "d@e.f"}).check_lines is True
    verbatim = smtp.message({"headers": {"content-transfer-encoding": "8bit"}, "body": b"v" * 999})
    assert message_spec({"source": verbatim, "from": "a@b.c", "rcpt": "d@e.f"}).check_lines is True
    with ScriptedServer() as server:
        with pytest.raises(SMTPSourceError, match="longer than 998"):
            send(server=HOST, port=server.port, from_="a@example.com", rcpt="b@example.com", source=raw_part)
    assert server.messages == []


def _first_long_line(data: bytes, stuffed: bool) -> int | None:
    for number, line in enumerate(data.split(b"\r\n"), 1):
        if len(line) - (stuffed and line[:1] == b".") > 998:
            return number
    return None


@settings(max_examples=200, deadline=None)
@given(lines=st.lists(st.tuples(st.integers(0, 1003), st.booleans()), min_size=1, max_size=6),
       cuts=st.lists(st.integers(0, 6000), max_size=8), stuffed=st.booleans(), ended=st.booleans())
def test_line_limit_finds_the_first_long_line_however_the_data_is_cut(lines, cuts, stuffed, ended):
    data = b"\r\n".join((b"." if dot else b"") + b"q" * n for n, dot in lines) + (b"\r\n" if ended else b"")
    want = _first_long_line(data, stuffed)
    check = LineLimit()
    at = 0
    try:
        for cut in sorted(c for c in cuts if c <= len(data)) + [len(data)]:
            check(data[at:cut], stuffed)
            at = cut
        check.end()
    except SMTPSourceError as exc:
        assert f"line {want} " in str(exc)
    else:
        assert want is None


# ------------------------------------------------------------------ smtp.open

from smtpstream.smtp import SMTPRecipientsRefused  # noqa: E402
from smtp_servers import PASSWORD, USER, authenticator  # noqa: E402

RAW = [b"Subject: by hand\n\n", b".leading dot\nbare LF\r", b"\nlast line"]


def test_a_dialogue_driven_by_hand_delivers_the_bytes_smtp_send_delivers():
    with ScriptedServer(extensions=("8BITMIME",)) as server:
        send(server=HOST, port=server.port, from_="a@example.com", rcpt=["b@example.com", "c@example.com"],
             source=list(RAW))
        c = smtp.open(HOST, server.port, timeout=SAFETY_TIMEOUT)
        ext = c.greet("client.example.org")
        c.mail("<a@example.com>")
        c.rcpt("<b@example.com>")
        c.rcpt("c@example.com")
        final = c.data(ltn12.source.table(list(RAW)))
        assert c.quit().code == 221
        c.close()
    by_send, by_hand = server.messages
    assert by_hand.content == by_send.content == b"Subject: by hand\r\n\r\n.leading dot\r\nbare LF\r\nlast line\r\n"
    assert (by_hand.mail_from, by_hand.rcpt_tos) == (by_send.mail_from, by_send.rcpt_tos)
    assert ext.code == 250 and "8BITMIME" in ext.text and final.code == 250
    assert b"EHLO client.example.org" in server.lines


def test_open_send_and_the_module_defaults(monkeypatch):
    with ScriptedServer() as server:
        monkeypatch.setattr(smtp, "SERVER", HOST)
        monkeypatch.setattr(smtp, "PORT", server.port)
        with smtp.open(timeout=SAFETY_TIMEOUT) as c:
            c.greet()
            result = c.send({"from": "a@example.com", "rcpt": "b@example.com", "source": [b"Subject: t\r\n\r\nt\r\n"]})
    assert result.code == 250 and server.messages[0].content == b"Subject: t\r\n\r\nt\r\n"
    assert server.lines[-1] == b"QUIT"


def test_open_raises_smtp_errors():
    with ScriptedServer(refuse=("no@example.com",)) as server:
        c = smtp.open(HOST, server.port, timeout=SAFETY_TIMEOUT)
        c.greet()
        c.mail("a@example.com")
        with pytest.raises(SMTPRecipientsRefused) as info:
            c.rcpt("no@example.com")
        assert info.value.code == 550
        c.rcpt("b@example.com")
        with pytest.raises(SMTPSourceError, match="line 1 "):
            c.data([b"x" * 1200])
        assert c.closed  # hung up mid-DATA: the server keeps nothing
    assert server.messages == []


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
@pytest.mark.parametrize("method", ["login", "plain", "auth"])
def test_open_authenticates(method):
    handler = AuthHandler()
    with aiosmtpd_running(handler, authenticator=authenticator, auth_required=True,
                          auth_require_tls=False) as port:
        c = smtp.open(HOST, port, starttls="off", timeout=SAFETY_TIMEOUT)
        c.greet()
        getattr(c, method)(USER, PASSWORD)
        c.mail("a@example.com")
        c.rcpt("b@example.com")
        c.data(smtp.message({"headers": {"subject": "auth"}, "body": "ok"}))
        c.quit()
        c.close()
    assert len(handler.box) == 1 and b"Subject: auth" in handler.box[0].original_content


@pytest.mark.parametrize("extensions", [("PIPELINING",), ("PIPELINING", "CHUNKING")], ids=["DATA", "BDAT"])
def test_the_asyncio_transport_checks_lines_too(extensions):
    import asyncio

    from smtpstream import aio

    with ScriptedServer(extensions=extensions) as server:
        with pytest.raises(SMTPSourceError, match="line 4 "):
            asyncio.run(aio.send(server=HOST, port=server.port, from_="a@example.com", rcpt="b@example.com",
                                 source=LONG_AT_4, timeout=SAFETY_TIMEOUT))
    assert server.messages == []
