"""The SMTP engine without sockets: bytes in, bytes and replies out.

Every test feeds server bytes to ``ClientConnection.receive_data`` and reads
what ``data_to_send`` / the body methods give back; the dialogue tests drive
``Client`` generators with canned server bytes and record the I/O actions.
"""
from __future__ import annotations

import hypothesis
import pytest
from hypothesis import strategies as st

from smtpstream.smtp import auth
from smtpstream.smtp._state import REPLY, SEND, State, Verb
from smtpstream.smtp.client import Client, Fetch, Read, UpgradeTLS, Write
from smtpstream.smtp.options import connection_settings, default_domain, message_spec
from smtpstream.smtp.errors import (
    LocalProtocolError,
    RemoteProtocolError,
    SMTPRecipientsRefused,
    SMTPSizeError,
)
from smtpstream.smtp.protocol import (
    NEED_DATA,
    Auth,
    AuthResponse,
    ClientConnection,
    ConnectionClosed,
    Data,
    Ehlo,
    Helo,
    Mail,
    Noop,
    Quit,
    Rcpt,
    Rset,
    StartTLS,
    check_address,
)
from smtpstream.smtp.reply import MAX_REPLY_LINE, MAX_REPLY_LINES, Reply, parse_ehlo

EHLO_PIPELINING = b"250-test.example\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n250 CHUNKING\r\n"
EHLO_PLAIN = b"250-test.example\r\n250 8BITMIME\r\n"


def events(conn: ClientConnection) -> list:
    out = []
    while (event := conn.next_event()) is not NEED_DATA:
        out.append(event)
    return out


def feed(conn: ClientConnection, data: bytes) -> list:
    conn.receive_data(data)
    return events(conn)


def ready(ehlo: bytes = EHLO_PIPELINING) -> ClientConnection:
    conn = ClientConnection()
    feed(conn, b"220 test.example ESMTP\r\n")
    conn.send(Ehlo("client.example"))
    conn.data_to_send()
    feed(conn, ehlo)
    assert conn.state is State.READY
    return conn


# ------------------------------------------------------------------ greeting and EHLO


def test_greeting_then_ehlo_bytes_and_states():
    conn = ClientConnection()
    assert conn.state is State.CONNECTED
    assert conn.data_to_send() == b""
    assert feed(conn, b"220 mx.example ") == []  # half a line: nothing yet
    [greeting] = feed(conn, b"ESMTP ready\r\n")
    assert (greeting.code, greeting.lines, greeting.command.verb) == (220, ("mx.example ESMTP ready",), Verb.GREETING)
    assert conn.state is State.GREETED
    conn.send(Ehlo("client.example"))
    assert conn.state is State.HELLO
    assert conn.data_to_send() == b"EHLO client.example\r\n"
    [reply] = feed(conn, b"250-mx.example\r\n250-pipelining\r\n250-Size 52428800\r\n250-AUTH=LOGIN\r\n"
                         b"250-AUTH PLAIN cram-md5\r\n250\r\n")
    assert reply.code == 250 and reply.command == Ehlo("client.example")
    assert conn.state is State.READY and conn.esmtp
    # Keywords are case-insensitive, AUTH= merged into AUTH, the bare "250" ends the reply.
    assert conn.extensions == {"PIPELINING": "", "SIZE": "52428800", "AUTH": "LOGIN PLAIN cram-md5"}
    assert conn.auth_mechanisms == {"LOGIN", "PLAIN", "CRAM-MD5"}
    assert conn.max_size == 52428800 and conn.pipelining


def test_multiline_reply_whose_last_line_is_just_the_code():
    # LuaSocket waits for "250 " and hangs here (spec 5.4 item 7).
    conn = ClientConnection()
    [reply] = feed(conn, b"220-first\r\n220\r\n")
    assert reply.lines == ("first", "")
    assert conn.state is State.GREETED


def test_bare_lf_line_endings_are_accepted():
    conn = ClientConnection()
    [reply] = feed(conn, b"220-a\n220 b\n")
    assert reply.lines == ("a", "b")


def test_greeting_refused_leaves_only_quit():
    conn = ClientConnection()
    feed(conn, b"554 5.7.1 go away\r\n")
    assert conn.state is State.REFUSED
    with pytest.raises(LocalProtocolError):
        conn.send(Ehlo("client.example"))
    conn.send(Quit())
    assert conn.data_to_send() == b"QUIT\r\n"
    feed(conn, b"221 bye\r\n")
    assert conn.state is State.CLOSED


def test_ehlo_refused_then_helo():
    conn = ClientConnection()
    feed(conn, b"220 old.example\r\n")
    conn.send(Ehlo("client.example"))
    assert conn.data_to_send() == b"EHLO client.example\r\n"
    feed(conn, b"502 5.5.1 EHLO not implemented\r\n")
    assert conn.state is State.GREETED
    conn.send(Helo("client.example"))
    assert conn.data_to_send() == b"HELO client.example\r\n"
    feed(conn, b"250 old.example\r\n")
    assert conn.state is State.READY and conn.extensions == {} and not conn.esmtp


def test_parse_ehlo_keywords():
    assert parse_ehlo(("name", "size 10", "Auth=login", "AUTH plain", "X-Thing a b")) == {
        "SIZE": "10",
        "AUTH": "LOGIN plain",
        "X-THING": "a b",
    }


# ------------------------------------------------------------------ one transaction, step by step


def test_transaction_without_pipelining_each_transition():
    conn = ready(EHLO_PLAIN)
    steps = [
        (Mail("a@example.com", ("BODY=8BITMIME",)), b"MAIL FROM:<a@example.com> BODY=8BITMIME\r\n", State.MAIL,
         b"250 2.1.0 ok\r\n", State.MAIL),
        (Rcpt("<b@example.com>"), b"RCPT TO:<b@example.com>\r\n", State.RCPT, b"250 2.1.5 ok\r\n", State.RCPT),
        (Rcpt("c@example.com"), b"RCPT TO:<c@example.com>\r\n", State.RCPT, b"550 5.1.1 unknown\r\n", State.RCPT),
        (Data(), b"DATA\r\n", State.DATA, b"354 go ahead\r\n", State.BODY),
    ]
    for command, wire, after_send, reply, after_reply in steps:
        conn.send(command)
        assert conn.data_to_send() == wire
        assert conn.state is after_send
        [event] = feed(conn, reply)
        assert event.command == command
        assert conn.state is after_reply
    assert conn.send_body(b"Subject: x\r\n\r\nbody") == b"Subject: x\r\n\r\nbody"
    assert conn.end_body() == b"\r\n.\r\n"
    assert conn.state is State.FINISHING
    [final] = feed(conn, b"250 2.0.0 Ok: queued as 4AB12C\r\n")
    assert final.command.verb is Verb.END_DATA and final.queue_id == "4AB12C"
    assert conn.state is State.READY
    conn.send(Rset())
    with pytest.raises(LocalProtocolError, match="PIPELINING"):
        conn.send(Quit())  # RSET's reply first: this server has no PIPELINING


def test_rset_noop_quit_transitions():
    conn = ready(EHLO_PLAIN)
    conn.send(Mail("a@example.com"))
    feed(conn, b"250 ok\r\n")
    conn.send(Rset())
    assert conn.state is State.READY and conn.data_to_send() == b"MAIL FROM:<a@example.com>\r\nRSET\r\n"
    feed(conn, b"250 reset\r\n")
    conn.send(Noop())
    feed(conn, b"250 ok\r\n")
    assert conn.state is State.READY
    conn.send(Quit())
    assert conn.state is State.QUITTING
    feed(conn, b"221 bye\r\n")
    assert conn.state is State.CLOSED


def test_mail_refused_returns_to_ready():
    conn = ready(EHLO_PLAIN)
    conn.send(Mail("a@example.com"))
    [reply] = feed(conn, b"550 5.7.1 sender refused\r\n")
    assert reply.permanent and reply.enhanced == "5.7.1" and reply.message == "sender refused"
    assert conn.state is State.READY
    with pytest.raises(LocalProtocolError):
        conn.send(Rcpt("b@example.com"))


def test_data_refused_returns_to_ready():
    conn = ready(EHLO_PLAIN)
    for command, reply in ((Mail("a@x.example"), b"250 ok\r\n"), (Rcpt("b@x.example"), b"250 ok\r\n"),
                           (Data(), b"554 5.5.1 no valid recipients\r\n")):
        conn.send(command)
        feed(conn, reply)
    assert conn.state is State.READY


# ------------------------------------------------------------------ pipelining


def test_pipelined_group_is_one_write_and_replies_pair_in_order():
    conn = ready()
    conn.send(Mail("a@example.com", ("SIZE=10",)))
    conn.send(Rcpt("b@example.com"))
    conn.send(Rcpt("c@example.com"))
    conn.send(Data())
    assert conn.data_to_send() == (
        b"MAIL FROM:<a@example.com> SIZE=10\r\nRCPT TO:<b@example.com>\r\nRCPT TO:<c@example.com>\r\nDATA\r\n"
    )
    assert [c.verb for c in conn.pending] == [Verb.MAIL, Verb.RCPT, Verb.RCPT, Verb.DATA]
    replies = feed(conn, b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n550 5.1.1 no\r\n354 go\r\n")  # one segment
    assert [(r.code, r.command) for r in replies] == [
        (250, Mail("a@example.com", ("SIZE=10",))),
        (250, Rcpt("b@example.com")),
        (550, Rcpt("c@example.com")),
        (354, Data()),
    ]
    assert conn.state is State.BODY and conn.pending == ()


def test_pipelined_replies_pair_the_same_however_the_bytes_are_split():
    wire = b"250 ok\r\n250-a\r\n250 b\r\n550 5.1.1 no\r\n354 go\r\n"
    for cut1 in range(len(wire)):
        for cut2 in range(cut1, len(wire), 7):
            conn = ready()
            for command in (Mail("a@x.example"), Rcpt("b@x.example"), Rcpt("c@x.example"), Data()):
                conn.send(command)
            got = []
            for piece in (wire[:cut1], wire[cut1:cut2], wire[cut2:]):
                if piece:
                    got += feed(conn, piece)
            assert [(r.code, r.command.verb) for r in got] == [
                (250, Verb.MAIL), (250, Verb.RCPT), (550, Verb.RCPT), (354, Verb.DATA)
            ]
            assert conn.state is State.BODY


def test_refused_mail_of_an_old_transaction_does_not_cancel_the_new_one():
    conn = ready()
    conn.send(Mail("a@x.example"))
    conn.send(Rset())
    conn.send(Mail("b@x.example"))
    conn.send(Rcpt("c@x.example"))
    feed(conn, b"550 first MAIL refused\r\n250 reset\r\n")
    assert conn.state is State.RCPT  # still the second transaction
    feed(conn, b"250 ok\r\n250 ok\r\n")
    conn.send(Data())
    assert conn.state is State.DATA


def test_mail_refused_in_a_pipelined_group():
    conn = ready()
    for command in (Mail("a@x.example"), Rcpt("b@x.example"), Data()):
        conn.send(command)
    feed(conn, b"550 5.7.1 no\r\n503 5.5.1 need MAIL\r\n503 5.5.1 need RCPT\r\n")
    assert conn.state is State.READY


def test_no_pipelining_without_the_extension():
    conn = ready(EHLO_PLAIN)
    conn.send(Mail("a@x.example"))
    with pytest.raises(LocalProtocolError, match="PIPELINING"):
        conn.send(Rcpt("b@x.example"))
    assert conn.data_to_send() == b"MAIL FROM:<a@x.example>\r\n"  # nothing of the refused command


def test_nothing_may_follow_a_group_ender():
    conn = ready()
    conn.send(Noop())
    with pytest.raises(LocalProtocolError, match="RFC 2920"):
        conn.send(Mail("a@x.example"))


# ------------------------------------------------------------------ illegal commands


@pytest.mark.parametrize(
    "setup, command",
    [
        ([], Ehlo("c.example")),  # before the greeting
        (["greet"], Mail("a@x.example")),  # before EHLO
        (["greet", "ehlo"], Rcpt("a@x.example")),  # RCPT without MAIL
        (["greet", "ehlo"], Data()),
        (["greet", "ehlo", "mail"], Data()),  # DATA without RCPT
        (["greet", "ehlo"], AuthResponse("abc=")),  # no challenge pending
    ],
)
def test_illegal_command_in_a_state(setup, command):
    conn = ClientConnection()
    if "greet" in setup:
        feed(conn, b"220 x\r\n")
    if "ehlo" in setup:
        conn.send(Ehlo("c.example"))
        feed(conn, EHLO_PLAIN)
    if "mail" in setup:
        conn.send(Mail("a@x.example"))
        feed(conn, b"250 ok\r\n")
    state = conn.state
    conn.data_to_send()
    with pytest.raises(LocalProtocolError):
        conn.send(command)
    assert conn.state is state and conn.data_to_send() == b""


def test_body_outside_the_body_state():
    conn = ready()
    with pytest.raises(LocalProtocolError):
        conn.send_body(b"x")
    with pytest.raises(LocalProtocolError):
        conn.end_body()
    with pytest.raises(LocalProtocolError):
        conn.send_bdat([b"x"])


def test_every_send_transition_is_reachable_in_the_table():
    # Each state's legal verbs; a guard that the table is the single source.
    assert SEND[(State.READY, Verb.MAIL)] is State.MAIL
    assert (State.BODY, Verb.MAIL) not in SEND
    assert all(isinstance(k[0], State) and isinstance(k[1], Verb) for k in REPLY)


# ------------------------------------------------------------------ malformed replies


@pytest.mark.parametrize(
    "wire",
    [
        b"hello\r\n",
        b"25\r\n",
        b"250x ok\r\n",
        b"199 too low\r\n",
        b"600 too high\r\n",
        b"2a0 letters\r\n",
        b"220-one\r\n221 two\r\n",  # the code changed inside a multi-line reply
    ],
)
def test_malformed_reply_is_a_remote_protocol_error(wire):
    conn = ClientConnection()
    conn.receive_data(wire)
    with pytest.raises(RemoteProtocolError):
        events(conn)
    assert conn.state is State.ERROR
    with pytest.raises(RemoteProtocolError):  # sticky
        conn.next_event()
    with pytest.raises(LocalProtocolError):
        conn.send(Quit())


def test_overlong_reply_line_is_refused_before_its_end_arrives():
    conn = ClientConnection()
    conn.receive_data(b"220 " + b"x" * (MAX_REPLY_LINE - 10))
    assert conn.next_event() is NEED_DATA
    conn.receive_data(b"x" * 20)
    with pytest.raises(RemoteProtocolError, match="MAX_REPLY_LINE"):
        conn.next_event()


def test_too_many_reply_lines():
    conn = ClientConnection()
    conn.receive_data(b"220-x\r\n" * (MAX_REPLY_LINES + 1))
    with pytest.raises(RemoteProtocolError, match="MAX_REPLY_LINES"):
        events(conn)


def test_reply_class_that_cannot_answer_the_command():
    conn = ready(EHLO_PLAIN)
    conn.send(Mail("a@x.example"))
    with pytest.raises(RemoteProtocolError, match="354 cannot answer MAIL"):
        feed(conn, b"354 what\r\n")
    conn = ready(EHLO_PLAIN)
    for command in (Mail("a@x.example"), Rcpt("b@x.example")):
        conn.send(command)
        feed(conn, b"250 ok\r\n")
    conn.send(Data())
    with pytest.raises(RemoteProtocolError, match="250 cannot answer DATA"):
        feed(conn, b"250 ok\r\n")


def test_unsolicited_reply_is_refused_but_421_closes():
    conn = ready()
    with pytest.raises(RemoteProtocolError, match="unsolicited"):
        feed(conn, b"250 surprise\r\n")
    conn = ready()
    [reply] = feed(conn, b"421 4.3.2 shutting down\r\n")
    assert reply.command is None and reply.temporary
    assert conn.state is State.CLOSED


def test_421_to_a_command_closes():
    conn = ready()
    conn.send(Mail("a@x.example"))
    [reply] = feed(conn, b"421 4.7.0 try later\r\n")
    assert reply.command.verb is Verb.MAIL and conn.state is State.CLOSED


def test_end_of_stream_reports_the_unanswered_commands():
    conn = ready()
    conn.send(Mail("a@x.example"))
    conn.send(Rcpt("b@x.example"))
    conn.receive_data(b"250 ok\r\n")
    conn.receive_data(b"")
    got = events(conn)
    assert got[0].code == 250
    assert got[1] == ConnectionClosed((Rcpt("b@x.example"),))
    assert conn.state is State.CLOSED


# ------------------------------------------------------------------ STARTTLS and AUTH


def test_starttls_then_start_over():
    conn = ready(b"250-test.example\r\n250-STARTTLS\r\n250 PIPELINING\r\n")
    conn.send(StartTLS())
    assert conn.data_to_send() == b"STARTTLS\r\n"
    feed(conn, b"220 2.0.0 go ahead\r\n")
    assert conn.state is State.TLS_HANDSHAKE
    with pytest.raises(LocalProtocolError):
        conn.send(Ehlo("c.example"))
    conn.tls_started()
    assert conn.state is State.GREETED and conn.extensions == {}  # forget what was said in clear


def test_bytes_after_the_starttls_go_ahead_are_an_injection():
    conn = ready(b"250-test.example\r\n250 STARTTLS\r\n")
    conn.send(StartTLS())
    with pytest.raises(RemoteProtocolError, match="STARTTLS"):
        feed(conn, b"220 go ahead\r\n250-injected\r\n")


def test_auth_exchange_and_secrets_never_shown():
    conn = ready(b"250-test.example\r\n250 AUTH LOGIN\r\n")
    conn.send(Auth("LOGIN"))
    assert conn.data_to_send() == b"AUTH LOGIN\r\n"
    feed(conn, b"334 VXNlcm5hbWU6\r\n")
    assert conn.state is State.AUTH_CHALLENGE
    secret = auth.b64(b"hunter2")
    response = AuthResponse(secret)
    assert secret not in repr(response) and "hunter2" not in repr(Auth("PLAIN", secret))
    conn.send(response)
    assert conn.data_to_send() == secret.encode() + b"\r\n"
    feed(conn, b"235 2.7.0 ok\r\n")
    assert conn.state is State.READY
    with pytest.raises(LocalProtocolError) as info:
        AuthResponse("hunter2 \r\nMAIL")
    assert "hunter2" not in str(info.value)


def test_sasl_functions():
    # RFC 2195's example.
    answer = auth.cram_md5(b"<1896.697170952@postoffice.reston.mci.net>", "tim", "tanstaaftanstaaf")
    assert answer == b"tim b913a602c7eda7a495b4e6e7334d3890"
    assert auth.plain("u", "p") == b"\0u\0p"
    assert auth.xoauth2("u@x", "tok") == b"user=u@x\x01auth=Bearer tok\x01\x01"
    assert auth.login(b"Username:", "u", "p", 0) == b"u" and auth.login(b"Password:", "u", "p", 0) == b"p"
    offered = {"LOGIN", "PLAIN", "CRAM-MD5", "XOAUTH2"}
    assert auth.choose(offered, secure=True, token=False) == "PLAIN"
    assert auth.choose(offered, secure=False, token=False) == "CRAM-MD5"
    assert auth.choose({"LOGIN"}, secure=True, token=False) == "LOGIN"
    assert auth.choose(offered, secure=True, token=True) == "XOAUTH2"
    assert auth.choose({"PLAIN"}, secure=True, token=True) is None
    assert auth.choose(offered, secure=True, token=False, wanted="login") == "LOGIN"


# ------------------------------------------------------------------ the body


def body_of(chunks: list[bytes]) -> bytes:
    conn = ready(EHLO_PLAIN)
    for command in (Mail("a@x.example"), Rcpt("b@x.example"), Data()):
        conn.send(command)
        feed(conn, b"354 go\r\n" if isinstance(command, Data) else b"250 ok\r\n")
    out = b"".join(conn.send_body(c) for c in chunks)
    return out + conn.end_body()


@pytest.mark.parametrize(
    "chunks, wire",
    [
        ([b"Hello\r\n"], b"Hello\r\n.\r\n"),  # the body's CRLF starts the terminator (LuaSocket adds one)
        ([b"Hello"], b"Hello\r\n.\r\n"),
        ([], b".\r\n"),
        ([b""], b".\r\n"),
        ([b".start\r\n"], b"..start\r\n.\r\n"),
        ([b"a\n.\r\n"], b"a\r\n..\r\n.\r\n"),  # smuggling: bare LF then ".CRLF" is data
        ([b"a\r\n.\n"], b"a\r\n..\r\n.\r\n"),
        ([b"a\r", b"\n", b".", b"b"], b"a\r\n..b\r\n.\r\n"),  # state survives chunk boundaries
        ([b"a\r"], b"a\r\n.\r\n"),
        ([b"x\r\r\ny"], b"x\r\n\r\n\r\ny\r\n.\r\n"),  # LuaSocket's eol pairs: CR, CR LF = 3 breaks
    ],
)
def test_body_is_normalised_and_stuffed_with_the_right_terminator(chunks, wire):
    assert body_of(chunks) == wire


def test_bdat_frames_normalised_chunks_without_stuffing():
    conn = ready()
    conn.send(Mail("a@x.example"))
    conn.send(Rcpt("b@x.example"))
    first = conn.send_bdat([b"Subject: x\n", b"\n.line\n"])
    # The queued MAIL/RCPT go in the same buffer as the BDAT line; the data follows uncopied.
    assert first == [b"MAIL FROM:<a@x.example>\r\nRCPT TO:<b@x.example>\r\nBDAT 21\r\n",
                     b"Subject: x\r\n", b"\r\n.line\r\n"]
    assert conn.state is State.BDAT
    last = conn.send_bdat([b"end"], last=True)
    assert last == [b"BDAT 5 LAST\r\n", b"end", b"\r\n"]  # the last line ended, as DATA would
    assert conn.state is State.FINISHING and conn.body_size == 26
    replies = feed(conn, b"250 ok\r\n250 ok\r\n250 21 octets\r\n250 2.0.0 queued as BD1\r\n")
    assert [r.command.verb for r in replies] == [Verb.MAIL, Verb.RCPT, Verb.BDAT, Verb.BDAT_LAST]
    assert conn.state is State.READY


def test_bdat_refused_stops_the_chunks():
    conn = ready()
    conn.send(Mail("a@x.example"))
    conn.send(Rcpt("b@x.example"))
    conn.send_bdat([b"x" * 10])
    feed(conn, b"250 ok\r\n250 ok\r\n552 5.3.4 too big\r\n")
    assert conn.state is State.READY
    with pytest.raises(LocalProtocolError):
        conn.send_bdat([b"more"])


def test_empty_bdat_last():
    conn = ready()
    conn.send(Mail("a@x.example"))
    conn.send(Rcpt("b@x.example"))
    assert conn.send_bdat([], last=True) == [b"MAIL FROM:<a@x.example>\r\nRCPT TO:<b@x.example>\r\nBDAT 0 LAST\r\n"]


# ------------------------------------------------------------------ arguments


@pytest.mark.parametrize("bad", ["a@b\r\nRCPT TO:<x@y>", "a@b\n", "a\0@b", "a@b\x7f", "<a@b> SIZE=1", "a b@c", "a<b@c"])
def test_addresses_with_controls_or_syntax_are_refused(bad):
    with pytest.raises(LocalProtocolError):
        Rcpt(bad)
    with pytest.raises(LocalProtocolError):
        Mail(bad)


def test_addresses_are_wrapped_once():
    assert check_address("a@b") == "<a@b>"
    assert check_address("<a@b>") == "<a@b>"
    assert check_address('"john doe"@b') == '<"john doe"@b>'
    assert Mail("").encode() == b"MAIL FROM:<>\r\n" and Mail("<>").encode() == b"MAIL FROM:<>\r\n"
    with pytest.raises(LocalProtocolError):
        Rcpt("")
    assert Rcpt("jos\u00e9@b\u00fccher.example").encode() == "RCPT TO:<jos\u00e9@b\u00fccher.example>\r\n".encode()


def test_a_remembered_address_check_answers_as_the_check_does():
    # check_address remembers what it accepted: per argument, never a refusal.
    assert Mail("").encode() == b"MAIL FROM:<>\r\n"  # the null sender, remembered with null_ok
    for _ in range(2):
        with pytest.raises(LocalProtocolError, match="sender is empty"):
            check_address("", "sender")  # the same text and label without null_ok: refused every time
        with pytest.raises(LocalProtocolError, match="white space"):
            check_address("a b@c", "recipient")
    assert check_address("x@y.example", "sender") == check_address("x@y.example", "recipient") == "<x@y.example>"
    with pytest.raises(TypeError, match="must be str"):
        check_address(["a@b"])  # not a str: checked, never remembered (nor hashed)
    for n in range(3000):  # past the bound: forgotten and checked again, the same answers
        assert check_address(f"user{n}@example.com", "recipient") == f"<user{n}@example.com>"
    with pytest.raises(LocalProtocolError):
        check_address("a\r\nRCPT TO:<b@c>", "recipient")


@pytest.mark.parametrize("bad", ["SIZE=1\r\nQUIT", "=x", "SIZE=", "A B", "NOTIFY=a=b"])
def test_parameters_are_checked(bad):
    with pytest.raises(LocalProtocolError):
        Mail("a@b", (bad,))


def test_ehlo_domain_is_checked():
    with pytest.raises(LocalProtocolError):
        Ehlo("evil\r\nMAIL FROM:<x>")
    with pytest.raises(LocalProtocolError):
        Ehlo("two words")


def test_default_domain_is_an_fqdn_or_an_address_literal():
    assert default_domain("host.example.org", "192.0.2.7") == "host.example.org"
    assert default_domain("host", "192.0.2.7") == "[192.0.2.7]"
    assert default_domain("localhost.localdomain", "127.0.0.1") == "[127.0.0.1]"
    assert default_domain("box", "2001:db8::1") == "[IPv6:2001:db8::1]"
    assert default_domain(None, None) == "[127.0.0.1]"


def test_reply_helpers():
    reply = Reply(250, ("2.0.0 Ok: queued as 4XyZ12",))
    assert reply.enhanced == "2.0.0" and reply.queue_id == "4XyZ12" and reply.positive
    assert Reply(250, ("OK id=1qAbCd-0001Xy-Ab",)).queue_id == "1qAbCd-0001Xy-Ab"
    assert Reply(250, ("2.0.0 OK  1700000000 d2-20020a.123 - gsmtp",)).queue_id == "d2-20020a.123"
    assert Reply(250, ("OK",)).queue_id is None
    assert Reply(550, ("4.1.1 mismatched class",)).enhanced is None
    assert str(Reply(550, ("5.1.1 a", "5.1.1 b"))) == "550 5.1.1 a / 550 5.1.1 b"
    # IGNORECASE's own equivalents of i and s, which lower() does not give
    assert Reply(250, ("OK ıD=x1",)).queue_id == "x1" and Reply(250, ("queued aſ Q9",)).queue_id == "Q9"


_REPLY_PIECES = ["queued as ", "QUEUED AS ", "Queued mail for delivery", "id=", "ID=", "ıd=", "aſ", "ıD=Q1",
                 "queued aſ Q9", "<Q7> Queued mail for delivery", "Q5 Message accepted for delivery",
                 " Message accepted for delivery", "OK ", " - gsmtp", "GSMTP", "<", ">", "1700000000 ",
                 "4AB12", "2.0.0 ", " ", "K", "İ", "x"]


@hypothesis.settings(max_examples=400, deadline=None)
@hypothesis.given(st.lists(st.lists(st.sampled_from(_REPLY_PIECES) | st.text(max_size=4), max_size=8)
                           .map("".join), min_size=1, max_size=3))
def test_queue_id_hints_never_change_the_answer(lines):
    reply = Reply(250, tuple(lines))
    assert reply.queue_id == reply._queue_id_by_patterns()  # the patterns alone, no hint first


# ------------------------------------------------------------------ the dialogue, sans I/O


def drive(gen, server: list[bytes]):
    """Run a Client generator against canned server bytes; return (result, actions)."""
    actions, value, error = [], None, None
    server = list(server)
    while True:
        try:
            action = gen.throw(error) if error is not None else gen.send(value)
        except StopIteration as stop:
            return stop.value, actions
        actions.append(action)
        value = error = None
        if isinstance(action, Read):
            value = server.pop(0) if server else b""
        elif isinstance(action, Fetch):
            try:  # as the transports do: the caller's error is thrown into the dialogue
                value = action.fetch(action.now)
            except Exception as exc:
                error = exc
        elif isinstance(action, UpgradeTLS):
            raise AssertionError("no TLS here")


def opened_client(ehlo: bytes, **fields) -> Client:
    client = Client(connection_settings(fields))
    drive(client.open("host.example.org", "192.0.2.1"), [b"220 hi\r\n", ehlo])
    return client


def test_client_pipelines_mail_rcpt_data_in_one_write():
    client = opened_client(b"250-x\r\n250-PIPELINING\r\n250 SIZE 100000\r\n")
    spec = message_spec({"from": "a@x.example", "rcpt": ["b@x.example", "c@x.example"], "source": [b"hi\r\n"]})
    result, actions = drive(client.send(spec), [
        b"250 ok\r\n250 ok\r\n550 5.1.1 no\r\n354 go\r\n",
        b"250 2.0.0 Ok: queued as Q1\r\n",
    ])
    writes = [a for a in actions if isinstance(a, Write)]
    assert b"".join(writes[0].buffers) == (
        b"MAIL FROM:<a@x.example> SIZE=4\r\nRCPT TO:<b@x.example>\r\nRCPT TO:<c@x.example>\r\nDATA\r\n"
    )
    assert b"".join(writes[1].buffers) == b"hi\r\n.\r\n"  # body and terminator: one write
    assert len(writes) == 2
    assert result.accepted == ("b@x.example",) and list(result.refused) == ["c@x.example"]
    assert result.queue_id == "Q1" and result.size == 4


def test_client_size_limit_fails_before_anything_is_sent():
    client = opened_client(b"250-x\r\n250 SIZE 10\r\n")
    spec = message_spec({"from": "a@x.example", "rcpt": "b@x.example", "source": [b"x" * 11]})
    gen = client.send(spec)
    with pytest.raises(SMTPSizeError):
        drive(gen, [])
    assert client.usable


def test_client_all_recipients_refused_resets():
    client = opened_client(b"250-x\r\n250 PIPELINING\r\n")
    spec = message_spec({"from": "a@x.example", "rcpt": ["b@x.example", "c@x.example"], "source": [b"hi"]})
    gen = client.send(spec)
    actions = []
    with pytest.raises(SMTPRecipientsRefused) as info:
        value = None
        server = [b"250 ok\r\n550 5.1.1 b\r\n450 4.2.0 c\r\n554 5.5.1 no valid recipients\r\n", b"250 reset\r\n"]
        while True:
            action = gen.send(value)
            actions.append(action)
            if isinstance(action, Fetch):
                value = action.fetch(action.now)
            else:
                value = server.pop(0) if isinstance(action, Read) else None
    assert set(info.value.refused) == {"b@x.example", "c@x.example"}
    assert info.value.temporary and not info.value.permanent
    assert b"".join([a for a in actions if isinstance(a, Write)][-1].buffers) == b"RSET\r\n"
    assert client.usable


def test_the_engine_imports_no_io():
    # House rule 6: the engine and the dialogue must serve any transport.
    import ast
    import pathlib

    import smtpstream.smtp as package

    root = pathlib.Path(package.__file__).parent
    for name in ("_state.py", "protocol.py", "reply.py", "errors.py", "auth.py", "client.py", "options.py"):
        tree = ast.parse((root / name).read_text())
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                imported.add(node.module.split(".")[0])
        assert not imported & {"socket", "ssl", "asyncio", "time", "select", "selectors"}, name


# ------------------------------------------------------------------ the table has no holes

from hypothesis import given, settings, strategies as st  # noqa: E402

from smtpstream.smtp._state import OUTCOMES, Outcome  # noqa: E402

_CODES = {Outcome.OK: b"250", Outcome.MORE: b"354", Outcome.NO: b"550"}


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_legal_walk_keeps_the_engine_consistent(data):
    """Random legal sends and well-formed replies: every reply finds a transition,
    illegal sends change nothing, and the FIFO never loses a command."""
    conn = ready(b"250-x\r\n250-PIPELINING\r\n250 CHUNKING\r\n")
    sent = answered = 0
    for _ in range(data.draw(st.integers(1, 25))):
        action = data.draw(st.sampled_from(["mail", "rcpt", "data", "bdat", "last", "rset", "noop", "body",
                                            "quit", "reply", "reply", "reply"]))
        before = (conn.state, conn.pending)
        try:
            if action == "mail":
                conn.send(Mail("a@x.example"))
            elif action == "rcpt":
                conn.send(Rcpt("b@x.example"))
            elif action == "data":
                conn.send(Data())
            elif action == "rset":
                conn.send(Rset())
            elif action == "noop":
                conn.send(Noop())
            elif action == "quit":
                conn.send(Quit())
            elif action in ("bdat", "last"):
                if not conn.send_bdat([b"chunk"], last=action == "last"):
                    continue
            elif action == "body":
                conn.send_body(b"x\n.")
                conn.end_body()
            elif conn.pending:
                verb = conn.pending[0].verb
                outcome = data.draw(st.sampled_from(sorted(OUTCOMES[verb], key=lambda o: o.value)))
                [reply] = feed(conn, _CODES[outcome] + b" ok\r\n")
                assert reply.command.verb is verb
                answered += 1
                continue
            else:
                continue
        except LocalProtocolError:
            assert (conn.state, conn.pending) == before
            continue
        sent += 1
    conn.data_to_send()
    assert len(conn.pending) == sent - answered
    assert conn.state is not State.ERROR


# Base64 bodies come as filters.CleanLines; the engine skips the stuffing scan for
# them. Whatever surrounds them, the wire must be what the full scan gives.
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from smtpstream.filters import Base64WrapEncoder, CleanLines  # noqa: E402


@st.composite
def mixed_bodies(draw):
    pieces = []
    for _ in range(draw(st.integers(1, 5))):
        if draw(st.booleans()):
            raw = draw(st.binary(max_size=300))
            encoder = Base64WrapEncoder(76)
            text = encoder(raw) + encoder(None)
            # cut anywhere except between the CR and LF of a break
            cuts = sorted(c for c in draw(st.lists(st.integers(0, len(text)), max_size=4))
                          if not (0 < c < len(text) and text[c - 1] == 13))
            end = len(text) if draw(st.booleans()) else (cuts[-1] if cuts else 0)  # maybe stop mid-line
            last = 0
            for c in [c for c in cuts if c <= end] + [end]:
                pieces.append(CleanLines(text[last:c]))
                last = c
        else:
            pieces.append(draw(st.lists(st.sampled_from([b"\r", b"\n", b".", b"a", b"\r\n", b" "]),
                                        max_size=8).map(b"".join)))
    return pieces


@settings(max_examples=300, deadline=None)
@given(chunks=mixed_bodies())
def test_clean_base64_chunks_skip_the_scan_with_identical_bytes(chunks):
    assert body_of(chunks) == body_of([bytes(c) for c in chunks])


# ------------------------------------------------------------------ pipelining across messages


def test_engine_allows_the_next_mail_right_after_the_end_of_data():
    conn = ready()
    for command in (Mail("a@x.example"), Rcpt("b@x.example"), Data()):
        conn.send(command)
    conn.data_to_send()
    feed(conn, b"250 ok\r\n250 ok\r\n354 go\r\n")
    conn.send_body(b"one\r\n")
    assert conn.end_body() == b".\r\n"
    for command in (Mail("c@x.example"), Rcpt("d@x.example"), Data()):
        conn.send(command)  # RFC 2920 3.1: allowed in the same group as the end of data
    assert conn.data_to_send() == b"MAIL FROM:<c@x.example>\r\nRCPT TO:<d@x.example>\r\nDATA\r\n"
    replies = feed(conn, b"250 2.0.0 queued as A\r\n250 ok\r\n250 ok\r\n354 go\r\n")
    assert [(r.code, r.command.verb) for r in replies] == [
        (250, Verb.END_DATA), (250, Verb.MAIL), (250, Verb.RCPT), (354, Verb.DATA)
    ]
    assert conn.state is State.BODY


def test_a_refused_end_of_data_does_not_touch_the_next_transaction():
    conn = ready()
    for command in (Mail("a@x.example"), Rcpt("b@x.example"), Data()):
        conn.send(command)
    feed(conn, b"250 ok\r\n250 ok\r\n354 go\r\n")
    conn.end_body()
    conn.send(Mail("c@x.example"))
    conn.send(Rcpt("d@x.example"))
    feed(conn, b"554 5.7.1 message refused\r\n250 ok\r\n")
    assert conn.state is State.RCPT  # the refusal belonged to the finished transaction
    conn.send(Data())
    assert conn.state is State.DATA


def test_no_mail_after_the_end_of_data_without_pipelining():
    conn = ready(EHLO_PLAIN)
    for command, reply in ((Mail("a@x.example"), b"250 ok\r\n"), (Rcpt("b@x.example"), b"250 ok\r\n"),
                           (Data(), b"354 go\r\n")):
        conn.send(command)
        feed(conn, reply)
    conn.end_body()
    with pytest.raises(LocalProtocolError, match="PIPELINING"):
        conn.send(Mail("c@x.example"))


def stream(client: Client, specs: list, server: list[bytes], later_at: set[int] = frozenset()):
    """Drive ``client.send_stream`` over ``specs``; returns (verdicts, actions).

    ``later_at``: indexes of messages that fetch(now=True) never gives (LATER).
    """
    from smtpstream.smtp.client import LATER

    queue = list(enumerate(specs))
    verdicts = []

    def fetch(now):
        if queue and now and queue[0][0] in later_at:
            return LATER
        return queue.pop(0) if queue else None

    _, actions = drive(client.send_stream(fetch, lambda key, res, err: verdicts.append((key, res, err))), server)
    return verdicts, actions


def spec_to(rcpt: str, body: bytes):
    return message_spec({"from": "a@x.example", "rcpt": [rcpt], "source": [body]})


def test_stream_writes_each_end_of_data_with_the_next_envelope():
    client = opened_client(b"250-x\r\n250 PIPELINING\r\n")
    specs = [spec_to(f"r{i}@x.example", b"body %d\r\n" % i) for i in range(3)]
    verdicts, actions = stream(client, specs, [
        b"250 ok\r\n250 ok\r\n354 go\r\n",
        b"250 queued as Q0\r\n250 ok\r\n250 ok\r\n354 go\r\n",
        b"250 queued as Q1\r\n250 ok\r\n250 ok\r\n354 go\r\n",
        b"250 queued as Q2\r\n",
    ])
    writes = [b"".join(a.buffers) for a in actions if isinstance(a, Write)]
    envelope = b"MAIL FROM:<a@x.example>\r\nRCPT TO:<r%d@x.example>\r\nDATA\r\n"
    assert writes == [
        envelope % 0,
        b"body 0\r\n.\r\n" + envelope % 1,
        b"body 1\r\n.\r\n" + envelope % 2,
        b"body 2\r\n.\r\n",
    ]
    reads = [a for a in actions if isinstance(a, Read)]
    assert len(reads) == 4  # K messages: K + 1 round trips, not 2K
    assert [(k, r.queue_id, e) for k, r, e in verdicts] == [(0, "Q0", None), (1, "Q1", None), (2, "Q2", None)]
    assert [r.accepted for _, r, _ in verdicts] == [("r0@x.example",), ("r1@x.example",), ("r2@x.example",)]


def test_stream_verdicts_stay_with_their_messages_when_some_fail():
    client = opened_client(b"250-x\r\n250 PIPELINING\r\n")
    specs = [spec_to(f"r{i}@x.example", b"body %d\r\n" % i) for i in range(3)]
    verdicts, actions = stream(client, specs, [
        b"250 ok\r\n250 ok\r\n354 go\r\n",
        # message 0 refused at the end of data; message 1's recipient refused
        b"554 5.7.1 spam\r\n250 ok\r\n550 5.1.1 unknown\r\n554 5.5.1 no valid recipients\r\n",
        b"250 reset\r\n",
        b"250 ok\r\n250 ok\r\n354 go\r\n",
        b"250 queued as Q2\r\n",
    ])
    (k0, r0, e0), (k1, r1, e1), (k2, r2, e2) = verdicts
    assert (k0, r0, e0.code, e0.phase) == (0, None, 554, "end")
    assert (k1, r1, type(e1).__name__, list(e1.refused)) == (1, None, "SMTPRecipientsRefused", ["r1@x.example"])
    assert (k2, e2, r2.queue_id) == (2, None, "Q2")
    writes = [b"".join(a.buffers) for a in actions if isinstance(a, Write)]
    assert writes[2] == b"RSET\r\n"


def test_stream_finishes_the_held_message_before_waiting_for_the_next():
    client = opened_client(b"250-x\r\n250 PIPELINING\r\n")
    specs = [spec_to(f"r{i}@x.example", b"body %d\r\n" % i) for i in range(2)]
    verdicts, actions = stream(client, specs, [
        b"250 ok\r\n250 ok\r\n354 go\r\n",
        b"250 queued as Q0\r\n",
        b"250 ok\r\n250 ok\r\n354 go\r\n",
        b"250 queued as Q1\r\n",
    ], later_at={1})
    writes = [b"".join(a.buffers) for a in actions if isinstance(a, Write)]
    assert writes[1] == b"body 0\r\n.\r\n"  # written and answered before fetching again
    fetches = [a.now for a in actions if isinstance(a, Fetch)]
    # message 0; a look-ahead while its envelope is answered (LATER); the
    # same when its end is held (LATER: finish it); then wait for message 1
    assert fetches == [False, True, True, False, True]
    assert [r.queue_id for _, r, _ in verdicts] == ["Q0", "Q1"]


def test_stream_a_lost_connection_fails_the_message_in_flight_and_the_next():
    client = opened_client(b"250-x\r\n250 PIPELINING\r\n")
    specs = [spec_to(f"r{i}@x.example", b"body %d\r\n" % i) for i in range(3)]
    verdicts, actions = stream(client, specs, [b"250 ok\r\n250 ok\r\n354 go\r\n"])  # then EOF
    # 0 was in flight (its end of data went out with 1's envelope: its fate is unknown),
    # 1 had its envelope written, 2 was fetched ahead: neither was delivered
    assert [(k, r, type(e).__name__) for k, r, e in verdicts] == [
        (0, None, "SMTPUnknownOutcome"), (1, None, "SMTPServerDisconnected"), (2, None, "SMTPServerDisconnected")
    ]
    assert verdicts[0][2].phase == "end" and "before this message was sent" in str(verdicts[2][2])
    assert not client.usable


def test_stream_with_chunking_and_a_window_of_one_sends_each_message_in_one_write_without_354():
    client = opened_client(b"250-x\r\n250-PIPELINING\r\n250 CHUNKING\r\n", window=1)
    specs = [spec_to(f"r{i}@x.example", b"body %d\r\n" % i) for i in range(2)]
    verdicts, actions = stream(client, specs, [
        b"250 ok\r\n250 ok\r\n250 queued as Q0\r\n",
        b"250 ok\r\n250 ok\r\n250 queued as Q1\r\n",
    ])
    writes = [b"".join(a.buffers) for a in actions if isinstance(a, Write)]
    assert writes == [
        b"MAIL FROM:<a@x.example>\r\nRCPT TO:<r%d@x.example>\r\nBDAT 8 LAST\r\nbody %d\r\n" % (i, i) for i in range(2)
    ]
    assert [r.queue_id for _, r, _ in verdicts] == ["Q0", "Q1"]


def test_stream_with_chunking_writes_the_next_messages_before_reading_the_verdicts():
    client = opened_client(b"250-x\r\n250-PIPELINING\r\n250 CHUNKING\r\n", window=2)
    specs = [spec_to(f"r{i}@x.example", b"body %d\r\n" % i) for i in range(3)]
    verdicts, actions = stream(client, specs, [
        b"250 ok\r\n250 ok\r\n250 queued as Q0\r\n250 reset\r\n",
        b"250 ok\r\n250 ok\r\n250 queued as Q1\r\n250 reset\r\n",
        b"250 ok\r\n250 ok\r\n250 queued as Q2\r\n250 reset\r\n",
    ])
    message = b"MAIL FROM:<a@x.example>\r\nRCPT TO:<r%d@x.example>\r\nBDAT 8 LAST\r\nbody %d\r\nRSET\r\n"
    kinds = [(type(a).__name__, b"".join(a.buffers) if isinstance(a, Write) else None)
             for a in actions if isinstance(a, (Write, Read))]
    # two messages in flight, then the first verdict makes room for the third
    assert kinds == [("Write", message % (0, 0)), ("Write", message % (1, 1)), ("Read", None),
                     ("Write", message % (2, 2)), ("Read", None), ("Read", None)]
    assert [(key, r.queue_id, r.replies[-1].text) for key, r, _ in verdicts] == [
        (0, "Q0", "queued as Q0"), (1, "Q1", "queued as Q1"), (2, "Q2", "queued as Q2")]
    assert client.usable and not client.conn.pending  # the last RSET's reply was read too


def test_stream_an_error_of_the_caller_s_iterator_comes_after_the_verdicts_before_it():
    client = opened_client(b"250-x\r\n250 PIPELINING\r\n")
    specs = iter([(0, spec_to("r0@x.example", b"body 0\r\n")), (1, spec_to("r1@x.example", b"body 1\r\n"))])
    verdicts = []

    def fetch(now):
        item = next(specs, None)
        if item is None:
            raise RuntimeError("the producer broke")
        return item

    gen = client.send_stream(fetch, lambda key, res, err: verdicts.append((key, res.queue_id if res else err)))
    server = [b"250 ok\r\n250 ok\r\n354 go\r\n", b"250 queued as Q0\r\n250 ok\r\n250 ok\r\n354 go\r\n",
              b"250 queued as Q1\r\n"]
    with pytest.raises(RuntimeError, match="producer broke"):
        drive(gen, server)
    assert verdicts == [(0, "Q0"), (1, "Q1")]  # both finished before the error surfaced
    assert client.usable


def test_bdat_sends_each_full_command_at_once_and_ends_with_bdat_0_last_on_a_boundary():
    from smtpstream.smtp.client import BDAT_SIZE

    client = opened_client(b"250-x\r\n250 CHUNKING\r\n")
    line = b"y" * 62 + b"\r\n"
    body = line * (BDAT_SIZE // len(line))
    assert len(body) == BDAT_SIZE
    spec = message_spec({"from": "a@x.example", "rcpt": ["b@x.example"], "source": [body]})
    result, actions = drive(client.send(spec), [
        b"250 ok\r\n", b"250 ok\r\n", b"250 2.0.0 %d octets\r\n" % BDAT_SIZE, b"250 2.0.0 queued as Q9\r\n",
    ])
    writes = [b"".join(a.buffers) for a in actions if isinstance(a, Write)]
    assert writes[2] == b"BDAT %d\r\n" % BDAT_SIZE + body  # sent when full, not held back
    assert writes[3] == b"BDAT 0 LAST\r\n"  # RFC 3030 2: a zero-length last chunk ends the message
    assert result.queue_id == "Q9" and result.size == BDAT_SIZE
