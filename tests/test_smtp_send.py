"""smtp.send and Session against real servers on 127.0.0.1: aiosmtpd and tests/smtp_servers.py.

No socket is mocked. Timeouts are checked by the exception they raise, never
by a measured time; they are short (0.3 s) so the suite stays quick.
"""
from __future__ import annotations

import contextlib
import os
import socket

import pytest
from aiosmtpd.controller import Controller

from smtpstream import filters, ltn12, smtp
from smtpstream.message import attachment
from smtpstream.smtp import (
    DSN,
    LocalProtocolError,
    SMTPAuthenticationError,
    SMTPNotSupportedError,
    SMTPRecipientsRefused,
    SMTPServerDisconnected,
    SMTPSizeError,
    SMTPSourceError,
    SMTPTimeoutError,
    SMTPTLSError,
    SMTPUnknownOutcome,
    message,
)

from smtp_servers import (
    HOST,
    PASSWORD,
    TOKEN,
    USER,
    AuthHandler,
    ScriptedServer,
    authenticator,
    free_port,
    make_certificate,
    tls_contexts,
)


pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

#: A test that goes wrong fails in seconds instead of RFC 5321's minutes.
#: (Only a bound: no test measures time.)
SAFETY_TIMEOUT = 20


def send(*args, **fields):
    fields.setdefault("timeout", SAFETY_TIMEOUT)
    return smtp.send(*args, **fields)


def Session(*args, **fields):
    fields.setdefault("timeout", SAFETY_TIMEOUT)
    return smtp.Session(*args, **fields)


@contextlib.contextmanager
def running(handler, **kwargs):
    port = free_port()
    kwargs.setdefault("enable_SMTPUTF8", False)
    controller = Controller(handler, hostname=HOST, port=port, server_hostname="aiosmtpd.test", **kwargs)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


def normalised(data: bytes) -> bytes:
    """What the server must receive for ``data``: CRLF line breaks, ending with CRLF."""
    f = filters.EOLNormalizer()
    out = f(data) + f(None)
    return out if not out or out.endswith(b"\r\n") else out + b"\r\n"


class Tee:
    """A source that remembers what it produced (so the test knows the exact bytes)."""

    def __init__(self, source) -> None:
        self.source = source
        self.size = getattr(source, "size", None)
        self.chunks: list[bytes] = []

    def __iter__(self):
        for chunk in self.source:
            self.chunks.append(bytes(chunk))
            yield chunk

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks)


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    cert, key = make_certificate(str(tmp_path_factory.mktemp("tls")))
    return tls_contexts(cert, key)


@pytest.fixture(scope="module")
def plain_server():
    handler = AuthHandler()
    with running(handler) as port:
        yield port, handler


@pytest.fixture
def plain(plain_server):
    port, handler = plain_server
    handler.box.clear()
    handler.hellos.clear()
    return port, handler


@pytest.fixture(scope="module")
def auth_server():
    handler = AuthHandler()
    with running(handler, authenticator=authenticator, auth_required=True, auth_require_tls=False) as port:
        yield port, handler


# ------------------------------------------------------------------ plain delivery


def test_plain_send_arrives_byte_for_byte(plain):
    port, handler = plain
    src = Tee(message({
        "headers": {"from": "Sender <sender@example.com>", "to": "rcpt@example.com", "subject": "Relatório"},
        "body": {
            1: {"body": "Olá,\n.\nA line with a dot above.\n"},
            2: attachment(os.urandom(200_000), "data.bin"),
        },
    }))
    result = send(server=HOST, port=port, from_="sender@example.com", rcpt="rcpt@example.com", source=src,
                  size=src.size)
    [envelope] = handler.box
    assert envelope.original_content == normalised(src.data)
    assert envelope.mail_from == "sender@example.com" and envelope.rcpt_tos == ["rcpt@example.com"]
    assert f"SIZE={len(src.data)}" in envelope.mail_options and "BODY=8BITMIME" in envelope.mail_options
    assert result.accepted == ("rcpt@example.com",) and result.refused == {}
    assert result.code == 250 and result.queue_id == "Q0001"
    assert result.size >= len(src.data) and not result.chunking
    assert [r.command.verb.value for r in result.replies] == ["MAIL", "RCPT", "DATA", "end of data"]
    # RFC 5321 4.1.1.1: an FQDN or an address literal, never "localhost".
    hostname = socket.gethostname()
    assert handler.hellos[0] in (hostname, "[127.0.0.1]") and handler.hellos[0] != "localhost"


def test_luasocket_style_table_and_callable_source(plain):
    port, handler = plain
    chunks = iter([b"Subject: lua\r\n\r\n", b"body without final newline"])
    result = send({"from": "<a@example.com>", "rcpt": "<b@example.com>", "source": lambda: next(chunks, None),
                   "server": HOST, "port": port})
    assert handler.box[0].original_content == b"Subject: lua\r\n\r\nbody without final newline\r\n"
    assert result.sender == "<a@example.com>"


def test_seed_example_three_recipients_bcc_not_in_headers(plain):
    # /work/shared/seed: LuaSocket's manual example, in Python.
    port, handler = plain
    rcpt = ["<fulano@example.com>", "<beltrano@example.com>", "<sicrano@example.com>"]
    mesgt = {
        "headers": {
            "to": "Fulano da Silva <fulano@example.com>",
            "cc": '"Beltrano F. Nunes" <beltrano@example.com>',
            "subject": "My first message",
        },
        "body": "I hope this works. If it does, I can send you another 1000 copies.",
    }
    src = Tee(message(mesgt))
    result = send({"from": "<luasocket@example.com>", "rcpt": rcpt, "source": src, "server": HOST, "port": port})
    [envelope] = handler.box
    assert envelope.rcpt_tos == ["fulano@example.com", "beltrano@example.com", "sicrano@example.com"]
    assert len(result.accepted) == 3
    assert envelope.original_content == normalised(src.data)
    head = envelope.original_content.split(b"\r\n\r\n")[0]
    assert b"To: Fulano da Silva <fulano@example.com>" in head and b"sicrano" not in head


def test_envelope_from_message_source_with_bcc(plain):
    port, handler = plain
    src = message({
        "headers": {"from": "luasocket@example.com", "to": "fulano@example.com", "bcc": "sicrano@example.com",
                    "subject": "blind"},
        "body": "hi",
    })
    send(server=HOST, port=port, source=src)
    [envelope] = handler.box
    assert envelope.mail_from == "luasocket@example.com"
    assert envelope.rcpt_tos == ["fulano@example.com", "sicrano@example.com"]
    assert b"sicrano" not in envelope.original_content and b"Bcc" not in envelope.original_content


def test_smuggling_sequences_arrive_as_data(plain):
    port, handler = plain
    body = [b"Subject: s\r\n\r\nbefore\n.\r\nMAIL FROM:<evil@example.com>\r\nmiddle\r\n.\nafter\r\n", b".\r\nend"]
    send(server=HOST, port=port, from_="a@example.com", rcpt="b@example.com", source=body)
    [envelope] = handler.box
    assert envelope.original_content == (
        b"Subject: s\r\n\r\nbefore\r\n.\r\nMAIL FROM:<evil@example.com>\r\nmiddle\r\n.\r\nafter\r\n.\r\nend\r\n"
    )


def test_smuggling_against_a_server_that_ends_lines_at_bare_lf():
    # Such a server takes "\n.\r\n" for the end of data; normalising and
    # stuffing on our side is what keeps the rest of the body from becoming commands.
    body = [b"Subject: s\r\n\r\nbefore\n.\r\nRSET\r\nMAIL FROM:<evil@example.com>\r\nafter\r\n"]
    with ScriptedServer(bare_lf_ends_lines=True) as server:
        send(server=HOST, port=server.port, from_="a@example.com", rcpt="b@example.com", source=body)
    [received] = server.messages
    assert received.content == b"Subject: s\r\n\r\nbefore\r\n.\r\nRSET\r\nMAIL FROM:<evil@example.com>\r\nafter\r\n"
    assert not any(line.startswith(b"MAIL FROM:<evil") for line in server.lines)


# ------------------------------------------------------------------ recipients and sessions


def test_some_recipients_refused_the_others_receive(plain):
    port, handler = plain
    result = send(server=HOST, port=port, from_="a@example.com",
                  rcpt=["one@example.com", "refuse@example.com", "two@example.com"], source=[b"Subject: x\r\n\r\nx\r\n"])
    assert result.accepted == ("one@example.com", "two@example.com")
    assert list(result.refused) == ["refuse@example.com"]
    assert result.refused["refuse@example.com"].code == 550
    assert result.refused["refuse@example.com"].enhanced == "5.1.1"
    assert handler.box[0].rcpt_tos == ["one@example.com", "two@example.com"]


def test_session_resets_after_a_failed_message_and_goes_on(plain):
    port, handler = plain
    with Session(server=HOST, port=port) as session:
        first = session.send(from_="a@example.com", rcpt="x@example.com", source=[b"Subject: 1\r\n\r\none\r\n"])
        with pytest.raises(SMTPRecipientsRefused) as info:
            session.send(from_="a@example.com", rcpt=["refuse1@example.com", "refuse2@example.com"],
                         source=[b"Subject: 2\r\n\r\ntwo\r\n"])
        third = session.send(from_="a@example.com", rcpt="y@example.com", source=[b"Subject: 3\r\n\r\nthree\r\n"])
        assert not session.closed
    assert session.closed
    err = info.value
    assert set(err.refused) == {"refuse1@example.com", "refuse2@example.com"}
    assert err.permanent and not err.temporary and err.phase == "rcpt" and err.code == 550
    assert "refuse1@example.com" in str(err) and "refuse2@example.com" in str(err)
    assert [e.original_content for e in handler.box] == [b"Subject: 1\r\n\r\none\r\n", b"Subject: 3\r\n\r\nthree\r\n"]
    assert (first.queue_id, third.queue_id) == ("Q0001", "Q0002")


def test_arguments_are_checked_before_connecting():
    with ScriptedServer() as server:
        with pytest.raises(LocalProtocolError, match="control character"):
            send(server=HOST, port=server.port, from_="a@example.com",
                 rcpt=["ok@example.com", "b@example.com>\r\nRCPT TO:<evil@example.com"], source=[b"x"])
        with pytest.raises(LocalProtocolError):
            send(server=HOST, port=server.port, from_="a@example.com\0", rcpt="b@example.com", source=[b"x"])
        with pytest.raises(TypeError, match="unknown field"):
            send(server=HOST, port=server.port, from_="a@example.com", rcpt="b@example.com", source=[b"x"], bogus=1)
    assert server.connections == 0


# ------------------------------------------------------------------ AUTH


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_auth_each_mechanism(auth_server, mechanism):
    port, handler = auth_server
    handler.box.clear()
    send(server=HOST, port=port, user=USER, password=PASSWORD, auth=mechanism, starttls="off",
         from_="a@example.com", rcpt="b@example.com", source=[b"Subject: auth\r\n\r\nok\r\n"])
    assert len(handler.box) == 1


def test_auth_without_tls_prefers_cram_md5(auth_server):
    port, handler = auth_server
    handler.logins.clear()
    send(server=HOST, port=port, user=USER, password=PASSWORD, starttls="off",
         from_="a@example.com", rcpt="b@example.com", source=[b"x\r\n"])
    assert handler.logins == [("CRAM-MD5", USER.encode())]


def test_auth_xoauth2(auth_server):
    port, handler = auth_server
    handler.logins.clear()
    send(server=HOST, port=port, user=USER, token=TOKEN, starttls="off",
         from_="a@example.com", rcpt="b@example.com", source=[b"x\r\n"])
    assert handler.logins == [("XOAUTH2", USER.encode())]


@pytest.mark.parametrize("fields", [
    {"password": "wrong-password", "auth": "PLAIN"},
    {"password": "wrong-password", "auth": "LOGIN"},
    {"password": "wrong-password", "auth": "CRAM-MD5"},
    {"token": "wrong-password"},  # XOAUTH2: 334 with a JSON error, empty line, 535
])
def test_auth_failure_never_shows_the_credentials(auth_server, fields, caplog):
    port, handler = auth_server
    handler.box.clear()
    caplog.set_level("DEBUG", logger="smtpstream")
    with pytest.raises(SMTPAuthenticationError) as info:
        send(server=HOST, port=port, user=USER, starttls="off", from_="a@example.com", rcpt="b@example.com",
             source=[b"x\r\n"], **fields)
    err = info.value
    assert err.code == 535 and err.phase == "auth" and err.permanent
    for text in (str(err), repr(err), caplog.text):
        assert "wrong-password" not in text
        assert "d3JvbmctcGFzc3dvcmQ" not in text  # nor its base64
    assert handler.box == []


def test_credentials_without_tls_are_refused_by_default(auth_server):
    port, handler = auth_server
    handler.box.clear()
    with pytest.raises(SMTPNotSupportedError, match="STARTTLS") as info:
        send(server=HOST, port=port, user=USER, password=PASSWORD,
             from_="a@example.com", rcpt="b@example.com", source=[b"x\r\n"])
    assert info.value.phase == "starttls" and handler.box == []


# ------------------------------------------------------------------ TLS


def test_starttls_then_auth_over_tls(tls):
    server_ctx, client_ctx = tls
    handler = AuthHandler()
    with running(handler, tls_context=server_ctx, require_starttls=True, authenticator=authenticator,
                 auth_required=True) as port:
        result = send(server=HOST, port=port, user=USER, password=PASSWORD, ssl_context=client_ctx,
                      from_="a@example.com", rcpt="b@example.com", source=[b"Subject: tls\r\n\r\nsecret\r\n"])
    assert handler.tls == [True]
    assert handler.box[0].original_content == b"Subject: tls\r\n\r\nsecret\r\n"
    assert result.code == 250


def test_starttls_verifies_certificates_by_default(tls):
    server_ctx, _ = tls
    handler = AuthHandler()
    with running(handler, tls_context=server_ctx, require_starttls=True) as port:
        with pytest.raises(SMTPTLSError, match="verif") as info:
            send(server=HOST, port=port, from_="a@example.com", rcpt="b@example.com", source=[b"x\r\n"])
    assert info.value.phase == "starttls" and handler.box == []


def test_implicit_tls(tls):
    server_ctx, client_ctx = tls
    handler = AuthHandler()
    with running(handler, ssl_context=server_ctx, authenticator=authenticator, auth_required=True,
                 auth_require_tls=False) as port:
        send(server=HOST, port=port, tls=True, ssl_context=client_ctx, user=USER, password=PASSWORD,
             from_="a@example.com", rcpt="b@example.com", source=[b"Subject: 465\r\n\r\nimplicit\r\n"])
        with pytest.raises(SMTPTLSError):
            send(server=HOST, port=port, tls=True, from_="a@example.com", rcpt="b@example.com", source=[b"x"])
    assert [e.original_content for e in handler.box] == [b"Subject: 465\r\n\r\nimplicit\r\n"]


# ------------------------------------------------------------------ SMTPUTF8, SIZE, DSN


def test_smtputf8_addresses():
    handler = AuthHandler()
    with running(handler, enable_SMTPUTF8=True) as port:
        send(server=HOST, port=port, from_="rené@exämple.test", rcpt="josé@exämple.test",
             source=["Subject: ação\r\n\r\nolá\r\n".encode()])
    [envelope] = handler.box
    assert "SMTPUTF8" in envelope.mail_options
    assert envelope.mail_from == "rené@exämple.test" and envelope.rcpt_tos == ["josé@exämple.test"]


def test_non_ascii_local_part_without_smtputf8_is_a_clear_error(plain):
    port, handler = plain
    with pytest.raises(SMTPNotSupportedError, match="SMTPUTF8") as info:
        send(server=HOST, port=port, from_="a@example.com", rcpt="josé@example.com", source=[b"x\r\n"])
    assert info.value.phase == "mail" and handler.box == []


def test_non_ascii_domain_without_smtputf8_goes_as_idna(plain):
    port, handler = plain
    send(server=HOST, port=port, from_="a@example.com", rcpt="user@bücher.example", source=[b"x\r\n"])
    assert handler.box[0].rcpt_tos == ["user@xn--bcher-kva.example"]


def test_size_over_the_server_limit_fails_before_uploading():
    with ScriptedServer(extensions=("PIPELINING", "SIZE 1000")) as server:
        with pytest.raises(SMTPSizeError) as info:
            send(server=HOST, port=server.port, from_="a@example.com", rcpt="b@example.com", source=[b"x" * 1001])
    assert info.value.permanent
    assert not any(line.startswith(b"MAIL") for line in server.lines) and server.messages == []
    assert server.lines[-1] == b"QUIT"


def test_dsn_parameters_when_offered():
    with ScriptedServer(extensions=("PIPELINING", "DSN", "SIZE 100000")) as server:
        send(server=HOST, port=server.port, from_="a@example.com", rcpt=["b@example.com", "c+x@example.com"],
             source=[b"x\r\n"], dsn={"notify": ["FAILURE", "DELAY"], "ret": "hdrs", "envid": "id+1 2"})
    [received] = server.messages
    assert received.mail_params == ["SIZE=3", "RET=HDRS", "ENVID=id+2B1+202"]
    assert received.rcpt_params == [["NOTIFY=FAILURE,DELAY", "ORCPT=rfc822;b@example.com"],
                                    ["NOTIFY=FAILURE,DELAY", "ORCPT=rfc822;c+2Bx@example.com"]]


def test_dsn_left_out_when_not_offered(plain):
    port, handler = plain  # aiosmtpd answers 555 to parameters it does not know
    send(server=HOST, port=port, from_="a@example.com", rcpt="b@example.com", source=[b"x\r\n"],
         dsn=DSN(notify=("NEVER",)))
    assert len(handler.box) == 1


# ------------------------------------------------------------------ BODY=8BITMIME only when needed


@pytest.mark.parametrize("source, declared", [
    (lambda: message({"headers": {"subject": "Ol\u00e1"}, "body": {1: {"body": "Ol\u00e1, caf\u00e9\n"},
                                                                    2: attachment(b"\xff" * 300, "b.bin")}}), False),
    (lambda: [b"Subject: x\r\n\r\nplain ASCII\r\n"], False),
    (lambda: [b"Subject: x\r\n\r\ncaf\xc3\xa9\r\n"], True),
    (lambda: iter([b"Subject: x\r\n\r\nunknown\r\n"]), True),  # not looked into: assumed 8-bit
    (lambda: message({"headers": {"subject": "raw"}, "body": iter([b"caf\xc3\xa9\n"])}), True),
])
def test_body_8bitmime_is_declared_only_when_the_body_may_be_8bit(source, declared):
    with ScriptedServer() as server:
        send(server=HOST, port=server.port, from_="a@example.com", rcpt="b@example.com", source=source())
    [received] = server.messages
    assert ("BODY=8BITMIME" in received.mail_params) == declared
    assert declared or received.content.isascii()


# ------------------------------------------------------------------ PIPELINING and CHUNKING


@pytest.mark.parametrize("pipelining", [True, False])
def test_pipelining_sends_mail_rcpt_data_in_one_write(pipelining):
    # The server waits 0.3 s after EHLO before reading: a pipelining client has
    # sent the whole group by then; one that waits for replies has sent only MAIL.
    rcpt = ["b@example.com", "c@example.com", "d@example.com"]
    with ScriptedServer(pause_after={"EHLO": 0.3}) as server:
        result = send(server=HOST, port=server.port, from_="a@example.com", rcpt=rcpt, source=[b"x\r\n"],
                      pipelining=pipelining)
    [read] = [r for r in server.reads if b"MAIL FROM" in r]
    group = b"MAIL FROM:<a@example.com>\r\n" + b"".join(
        b"RCPT TO:<%s>\r\n" % r.encode() for r in rcpt) + b"DATA\r\n"
    if pipelining:
        assert read == group and result.pipelining
    else:
        assert read == b"MAIL FROM:<a@example.com>\r\n" and not result.pipelining
    assert server.messages[0].rcpt_tos == rcpt


@pytest.mark.parametrize("extensions", [("PIPELINING", "CHUNKING", "8BITMIME"), ("CHUNKING",)])
def test_bdat_small_message_without_stuffing(extensions):
    body = b"Subject: bdat\r\n\r\n.leading dot\nbare LF\r\n.\r\nlast line"
    with ScriptedServer(extensions=extensions) as server:
        result = send(server=HOST, port=server.port, from_="a@example.com", rcpt="b@example.com", source=[body])
    [received] = server.messages
    assert received.mode == "BDAT" and received.content == normalised(body)  # as DATA would deliver it
    assert result.chunking and result.queue_id == "4XyZ12"
    assert not any(line == b"DATA" for line in server.lines)
    if "PIPELINING" in extensions:
        # MAIL, RCPT and the one BDAT ... LAST came in a single read.
        [read] = [r for r in server.reads if b"MAIL FROM" in r]
        assert b"RCPT TO:<b@example.com>\r\nBDAT %d LAST\r\n" % len(received.content) in read


def test_bdat_large_message_in_several_chunks(tmp_path):
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(3 << 20))  # read in blocks as it is sent; size known in advance
    src = Tee(message({"headers": {"subject": "big"}, "body": {1: {"body": "see attached"},
                                                                 2: attachment(path)}}))
    with ScriptedServer(extensions=("PIPELINING", "CHUNKING", "SIZE 100000000")) as server:
        result = send(server=HOST, port=server.port, from_="a@example.com", rcpt="b@example.com", source=src,
                      size=src.size)
    [received] = server.messages
    assert received.content == src.data and len(received.bdat_sizes) >= 3
    assert sum(received.bdat_sizes) == len(src.data) == result.size
    assert received.mail_params == [f"SIZE={len(src.data)}"]


# ------------------------------------------------------------------ faults


@pytest.mark.parametrize("where, phase", [("greeting", "greeting"), ("MAIL", "mail"), ("DATA", "data")])
def test_server_says_421_and_closes(where, phase):
    with ScriptedServer(close_421_at=where) as server:
        with pytest.raises(SMTPServerDisconnected) as info:
            send(server=HOST, port=server.port, from_="a@example.com", rcpt="b@example.com", source=[b"x\r\n"],
                 pipelining=False)
    err = info.value
    assert err.code == 421 and err.enhanced == "4.3.2" and err.temporary and err.phase == phase
    assert isinstance(err, ConnectionError) and server.messages == []


def test_drop_in_the_middle_of_data_is_not_claimed_sent():
    body = [b"Subject: big\r\n\r\n"] + [(os.urandom(49).hex().encode() + b"\r\n") * 1336] * 64  # 8 MiB
    with ScriptedServer(drop_in_data=True) as server:
        with pytest.raises((SMTPServerDisconnected, SMTPUnknownOutcome)) as info:
            send(server=HOST, port=server.port, from_="a@example.com", rcpt="b@example.com", source=body)
    if isinstance(info.value, SMTPUnknownOutcome):  # the last write had gone out before the drop was seen
        assert info.value.phase == "end" and isinstance(info.value.__cause__, SMTPServerDisconnected)
    else:
        assert info.value.phase in ("body", "end") and info.value.temporary
    assert server.messages == []


@pytest.mark.parametrize("delays, phase", [({"greeting": 5}, "greeting"), ({"RCPT": 5}, "rcpt"), ({"END": 5}, "end")])
def test_slow_server_times_out(delays, phase):
    with ScriptedServer(delays=delays) as server:
        with pytest.raises((SMTPTimeoutError, SMTPUnknownOutcome)) as info:
            send(server=HOST, port=server.port, from_="a@example.com", rcpt="b@example.com", source=[b"x\r\n"],
                 timeout=0.3)
    error = info.value
    if phase == "end":  # the end of data went out: the server may have the message (RFC 1047)
        assert isinstance(error, SMTPUnknownOutcome) and not error.temporary and not error.permanent
        error = error.__cause__
    assert error.phase == phase and error.temporary and isinstance(error, SMTPTimeoutError)


def test_helo_fallback_when_ehlo_is_refused():
    with ScriptedServer(no_ehlo=True) as server:
        result = send(server=HOST, port=server.port, from_="a@example.com", rcpt="b@example.com", source=[b"x\r\n"])
    assert [line.split()[0] for line in server.lines[:3]] == [b"EHLO", b"HELO", b"MAIL"]
    assert server.messages[0].mail_params == [] and result.code == 250  # no extensions after HELO


def test_a_failed_quit_does_not_undo_a_delivery():
    with ScriptedServer(quit_reply="554 5.0.0 not today") as server:
        result = send(server=HOST, port=server.port, from_="a@example.com", rcpt="b@example.com", source=[b"x\r\n"])
    assert result.code == 250 and len(server.messages) == 1 and server.lines[-1] == b"QUIT"


@pytest.mark.parametrize("failure", [OSError("disk gone"), "a str chunk"])
def test_source_error_mid_data_sends_no_end_of_data(failure):
    def source():
        yield b"Subject: half\r\n\r\n" + (b"x" * 98 + b"\r\n") * 1000
        if isinstance(failure, str):
            yield failure
        raise failure

    with ScriptedServer() as server:
        with pytest.raises(SMTPSourceError) as info:
            send(server=HOST, port=server.port, from_="a@example.com", rcpt="b@example.com", source=source())
    assert server.messages == []  # no end of data: the server drops the half message
    if not isinstance(failure, str):
        assert info.value.__cause__ is failure


def test_source_error_before_the_first_bdat_leaves_the_session_usable():
    def failing():
        raise OSError("nothing to read")
        yield b""  # a generator

    with ScriptedServer(extensions=("PIPELINING", "CHUNKING")) as server:
        with Session(server=HOST, port=server.port) as session:
            with pytest.raises(SMTPSourceError):
                session.send(from_="a@example.com", rcpt="b@example.com", source=failing())
            session.send(from_="a@example.com", rcpt="c@example.com", source=[b"Subject: ok\r\n\r\nok\r\n"])
    # The queued MAIL/RCPT were sent, answered and reset; the next message went through.
    assert [line.split(b":")[0] for line in server.lines[1:]] == [
        b"MAIL FROM", b"RCPT TO", b"RSET", b"MAIL FROM", b"RCPT TO", b"BDAT 19 LAST",
        b"RSET", b"QUIT"]  # (an RSET follows each BDAT LAST sent in a window: smtp/window.py)
    assert [m.rcpt_tos for m in server.messages] == [["c@example.com"]]


def test_step_and_create_are_used():
    steps, sockets = [], []

    def step(src, snk):
        steps.append(1)
        return ltn12.pump.step(src, snk)

    def create():
        sockets.append(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
        return sockets[-1]

    with ScriptedServer() as server:
        send(server=HOST, port=server.port, from_="a@example.com", rcpt="b@example.com",
             source=ltn12.source.string(b"Subject: s\r\n\r\n" + (b"y" * 98 + b"\r\n") * 100, 1000), step=step,
             create=create)
    assert len(steps) == 12 and len(sockets) == 1  # 11 chunks, then the end
    assert server.messages[0].content == b"Subject: s\r\n\r\n" + (b"y" * 98 + b"\r\n") * 100
