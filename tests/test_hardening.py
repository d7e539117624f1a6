"""A hostile server's view (issue 12): false successes, injections, unbounded buffers.

Where timing matters the server runs in a process of its own
(``hostile_server.py``): a thread's busy-wait would hold the interpreter lock
and close the window the attack needs.
"""
from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import os
import ssl
import subprocess
import sys
import time
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpstream import aio, ltn12, smtp
from smtpstream.filters import CleanLines, StuffedLines
from smtpstream.message import attachment, cached, text
from smtpstream.message.builder import MessageError
from smtpstream.message.headers import HeaderError
from smtpstream.smtp import (RemoteProtocolError, SMTPError, SMTPNotSupportedError, SMTPSourceError,
                             SMTPTimeoutError)

from smtp_servers import HOST, ScriptedServer, make_certificate

HOSTILE = os.path.join(os.path.dirname(__file__), "hostile_server.py")


@contextlib.contextmanager
def hostile(*args: str):
    """Run ``hostile_server.py MODE ARGS`` in its own process; yield its port."""
    proc = subprocess.Popen([sys.executable, HOSTILE, *args], stdout=subprocess.PIPE, text=True)
    try:
        yield int(proc.stdout.readline())
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


def deliver(transport: str, **fields):
    """``smtp.send`` or ``aio.send`` with these fields: the SendResult or the SMTPError."""
    try:
        if transport == "aio":
            return asyncio.run(aio.send(**fields))
        return smtp.send(**fields)
    except SMTPError as exc:
        return exc


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    return make_certificate(str(tmp_path_factory.mktemp("hostile-tls")))


# ------------------------------------------------------------------ 1. STARTTLS response injection

@pytest.mark.parametrize("transport", ["blocking", "aio"])
def test_replies_in_clear_after_the_starttls_go_ahead_fail_the_session(certificate, transport):
    # CVE-2011-0411 the other way round: plaintext replies slipped in after
    # "220 go ahead" must never be read as the first replies over TLS.
    cert, key = certificate
    context = ssl.create_default_context(cafile=cert)
    outcomes: Counter = Counter()
    # Today's main: about one attempt in eight delivered "FORGED" over asyncio
    # at these gaps (a loop turn between the 220 and the handshake).
    for gap_us in ("0", "5", "10", "20", "30"):
        with hostile("starttls-inject", cert, key, gap_us) as port:
            for _ in range(25):
                got = deliver(transport, server=HOST, port=port, ssl_context=context, timeout=5,
                              from_="a@example.com", rcpt="b@example.com",
                              source=[b"Subject: x\r\n\r\nbody\r\n"])
                name = type(got).__name__
                outcomes[f"{gap_us}us {name} {getattr(got, 'queue_id', '')}".rstrip()] += 1
                assert isinstance(got, RemoteProtocolError), (got, outcomes)
    print(f"\n{transport}: {dict(outcomes)}")


# ------------------------------------------------------------------ 2. a message() sent again

def _big_message(tmp_path):
    path = tmp_path / "report.bin"
    path.write_bytes(os.urandom(3 << 20))
    return smtp.message({
        "headers": {"from": "a@example.com", "to": "b@example.com", "subject": "again"},
        "body": {1: {"body": "see attached"}, 2: attachment(str(path))},
    })


@pytest.mark.parametrize("transport", ["blocking", "aio"])
def test_a_message_sent_again_is_sent_whole(tmp_path, transport):
    source = _big_message(tmp_path)
    whole = b"".join(_big_message_bytes(source))
    with ScriptedServer(drop_in_data=True) as dying:  # the first attempt dies mid-body
        assert isinstance(deliver(transport, server=HOST, port=dying.port, source=source), SMTPError)
    with ScriptedServer(extensions=("PIPELINING", "SIZE 100000000")) as server:
        first = deliver(transport, server=HOST, port=server.port, source=source)
        second = deliver(transport, server=HOST, port=server.port, source=source)
    assert not isinstance(first, SMTPError) and not isinstance(second, SMTPError), (first, second)
    assert [m.content for m in server.messages] == [whole, whole]
    assert [m.mail_params for m in server.messages] == [[f"SIZE={len(whole)}"]] * 2


def _big_message_bytes(source):
    chunks = list(source)
    source.rewind()
    return chunks


@pytest.mark.parametrize("transport", ["blocking", "aio"])
def test_a_consumed_one_shot_message_is_refused_before_mail(transport):
    source = smtp.message({
        "headers": {"from": "a@example.com", "to": "b@example.com", "subject": "once"},
        "body": ltn12.source.string(b"read once\r\n"),
    })
    with ScriptedServer() as server:
        assert not isinstance(deliver(transport, server=HOST, port=server.port, source=source), SMTPError)
        again = deliver(transport, server=HOST, port=server.port, source=source)
    assert isinstance(again, SMTPSourceError), again
    assert len(server.messages) == 1
    assert sum(line.startswith(b"MAIL") for line in server.lines) == 1


# ------------------------------------------------------------------ 3. sources that reuse their buffer

def _refilled(blocks: int, view: bool):
    """The readinto pattern: one bytearray, refilled and yielded again for every block."""
    buffer = bytearray(4096)
    for i in range(blocks):
        buffer[:] = b"".join(b"block %05d line %02d %s\r\n" % (i, j, b"x" * 40) for j in range(64))[:4096]
        yield memoryview(buffer) if view else buffer


def _refilled_bytes(blocks: int) -> bytes:
    return b"".join(bytes(b) for b in _refilled(blocks, view=False))


@pytest.mark.parametrize("view", [False, True], ids=["bytearray", "memoryview"])
@pytest.mark.parametrize("extensions", [(), ("PIPELINING",), ("CHUNKING",), ("PIPELINING", "CHUNKING")],
                         ids=["data", "data-pipelined", "bdat", "bdat-pipelined"])
@pytest.mark.parametrize("transport", ["blocking", "aio"])
def test_a_source_that_reuses_its_buffer_arrives_intact(transport, extensions, view):
    blocks = 600  # 2.4 MB: several BDAT commands of 1 MiB
    with ScriptedServer(extensions=extensions) as server:
        got = deliver(transport, server=HOST, port=server.port, from_="a@example.com", rcpt="b@example.com",
                      source=_refilled(blocks, view))
    assert not isinstance(got, SMTPError), got
    (stored,) = server.messages
    assert stored.mode == ("BDAT" if "CHUNKING" in extensions else "DATA")
    assert stored.content == _refilled_bytes(blocks)


# ------------------------------------------------------------------ 4. only 250 completes

@pytest.mark.parametrize("mail, rcpt, final", [
    ("250 2.1.0 ok", "250 2.1.5 ok", "221 2.0.0 bye"),
    ("250 2.1.0 ok", "250 2.1.5 ok", "220 2.0.0 ready"),
    ("250 2.1.0 ok", "250 2.1.5 ok", "299 2.0.0 queued as WHAT"),
    ("220 2.1.0 ok", "250 2.1.5 ok", "250 2.0.0 queued as X"),
    ("250 2.1.0 ok", "221 2.1.5 ok", "250 2.0.0 queued as X"),
], ids=["end-221", "end-220", "end-299", "mail-220", "rcpt-221"])
@pytest.mark.parametrize("transport", ["blocking", "aio"])
def test_a_positive_reply_other_than_250_is_not_a_delivery(transport, mail, rcpt, final):
    with hostile("replies", mail, rcpt, final) as port:
        got = deliver(transport, server=HOST, port=port, from_="a@example.com", rcpt="b@example.com",
                      source=[b"Subject: x\r\n\r\nbody\r\n"])
    assert isinstance(got, RemoteProtocolError), got
    assert got.phase in (("mail",) if mail[:3] != "250" else ("rcpt",) if rcpt[:3] != "250" else ("body", "end"))


def test_251_accepts_a_recipient():
    with hostile("replies", "250 2.1.0 ok", "251 2.1.5 forwarded", "250 2.0.0 queued as Y") as port:
        got = deliver("blocking", server=HOST, port=port, from_="a@example.com", rcpt="b@example.com",
                      source=[b"Subject: x\r\n\r\nbody\r\n"])
    assert got.queue_id == "Y" and got.accepted == ("b@example.com",)


# ------------------------------------------------------------------ 5. a server flooding the client

FLOOD_CLIENT = r"""
import asyncio, sys
from smtpstream import aio, smtp

def hwm():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmHWM:")) / 1024

def body():
    block = (b"x" * 127 + b"\n") * 512  # 64 KiB of short lines (a line over 1,000 octets is refused)
    for _ in range(64 * 16):  # 64 MiB: the server never reads it
        yield block

fields = dict(server="127.0.0.1", port=int(sys.argv[2]), from_="a@example.com", rcpt="b@example.com",
              timeout=3, source=body())
before = hwm()
try:
    asyncio.run(aio.send(**fields)) if sys.argv[1] == "aio" else smtp.send(**fields)
    outcome = "delivered"
except smtp.SMTPError as exc:
    outcome = type(exc).__name__
print(f"{hwm() - before:.1f} {outcome}")
"""


@pytest.mark.parametrize("transport", ["blocking", "aio"])
def test_a_flooding_server_does_not_grow_the_client(transport):
    # 128 MiB without a line end after the 354; today's asyncio client took it all in.
    with hostile("flood", "128") as port:
        out = subprocess.run([sys.executable, "-c", FLOOD_CLIENT, transport, str(port)], capture_output=True,
                             text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}, timeout=60)
    assert out.returncode == 0, out.stderr
    grown, outcome = out.stdout.split()
    print(f"\n{transport}: peak memory grew by {grown} MiB while flooded with 128 MiB ({outcome})")
    assert outcome in ("RemoteProtocolError", "SMTPTimeoutError")
    assert float(grown) < 32


# ------------------------------------------------------------------ 6. a reply dripped byte by byte

@pytest.mark.parametrize("transport", ["blocking", "aio"])
def test_the_timeout_bounds_a_whole_reply(transport):
    # The MAIL reply comes one byte every 0.3 s (4.2 s in all) under timeout=1.
    with hostile("drip", "0.3") as port:
        started = time.monotonic()
        got = deliver(transport, server=HOST, port=port, from_="a@example.com", rcpt="b@example.com",
                      timeout=1, source=[b"Subject: x\r\n\r\nbody\r\n"])
        elapsed = time.monotonic() - started
    print(f"\n{transport}: {type(got).__name__} after {elapsed:.2f} s (reply dripped over 4.2 s, timeout=1)")
    assert isinstance(got, SMTPTimeoutError) and got.phase == "mail", got


# ------------------------------------------------------------------ 8. IDNA 2008, not 2003

@pytest.mark.parametrize("domain, ascii_domain", [
    ("straße.de", "xn--strae-oqa.de"),       # IDNA 2003: strasse.de, another registrant
    ("ςπ.example", "xn--1xad.example"),      # IDNA 2003: the σπ domain
    ("Bücher.example", "xn--bcher-kva.example"),
])
def test_a_unicode_domain_goes_to_its_own_a_label(domain, ascii_domain):
    source = smtp.message({"headers": {"from": "a@example.com", "to": f"anna@{domain}", "subject": "idn"},
                           "body": "hello"})
    with ScriptedServer() as server:  # no SMTPUTF8
        got = deliver("blocking", server=HOST, port=server.port, source=source)
    assert not isinstance(got, SMTPError), got
    (stored,) = server.messages
    assert stored.rcpt_tos == [f"anna@{ascii_domain}"]
    assert f"To: anna@{ascii_domain}\r\n".encode() in stored.content


def test_a_domain_idna_2008_forbids_is_refused_not_rewritten():
    joined = "a\u200db.example"  # a zero-width joiner: IDNA 2003 drops it silently
    with pytest.raises(HeaderError):
        smtp.message({"headers": {"from": "a@example.com", "to": f"anna@{joined}"}, "body": "x"})
    with ScriptedServer() as server:
        got = deliver("blocking", server=HOST, port=server.port, from_="a@example.com",
                      rcpt=f"anna@{joined}", source=[b"Subject: x\r\n\r\nx\r\n"])
    assert isinstance(got, SMTPNotSupportedError), got
    assert server.messages == [] and not any(line.startswith(b"RCPT") for line in server.lines)


# ------------------------------------------------------------------ 9. CleanLines is checked, not trusted

@pytest.mark.parametrize("transport", ["blocking", "aio"])
def test_a_forged_clean_lines_chunk_cannot_smuggle_a_transaction(transport):
    forged = (b"Subject: x\r\n\r\nhi\r\n.\r\nMAIL FROM:<evil@example.com>\r\nRCPT TO:<victim@example.com>\r\n"
              b"DATA\r\nsmuggled\r\n")
    with ScriptedServer() as server:
        got = deliver(transport, server=HOST, port=server.port, from_="a@example.com", rcpt="b@example.com",
                      source=[CleanLines(forged)])
    assert not isinstance(got, SMTPError), got
    assert [m.content for m in server.messages] == [forged]
    assert [m.mail_from for m in server.messages] == ["a@example.com"]


def test_clean_lines_holds_only_when_it_keeps_its_promise():
    assert CleanLines(b"QUJD\r\nREVG\r\n").holds() and CleanLines(b"QUJD\r\nRE").holds()
    for broken in (b"QU.J\r\n", b"QUJD\n", b"QUJD\r", b"\nQUJD", b"QU\rJD\r\n", b"QUJD\n\r"):
        assert not CleanLines(broken).holds(), broken


@pytest.mark.parametrize("transport", ["blocking", "aio"])
def test_a_forged_stuffed_lines_chunk_cannot_smuggle_a_transaction(transport):
    forged = b"hi\r\n.\r\nMAIL FROM:<evil@example.com>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\nx\r\n"
    with ScriptedServer() as server:
        got = deliver(transport, server=HOST, port=server.port, from_="a@example.com", rcpt="b@example.com",
                      source=[b"Subject: x\r\n\r\n", StuffedLines(forged)])
    assert not isinstance(got, SMTPError), got
    assert [m.content for m in server.messages] == [b"Subject: x\r\n\r\n" + forged]
    assert [m.mail_from for m in server.messages] == ["a@example.com"]


def test_stuffed_lines_holds_only_when_it_keeps_its_promise():
    assert StuffedLines(b"").holds() and StuffedLines(b"a.b\r\n\r\nc .\r\n").holds()
    for broken in (b".a\r\n", b"a\r\n.b\r\n", b"a\n", b"a\r", b"a\r\nb", b"a\rb\r\n", b"\n\r\n", b"a\r\r\n"):
        assert not StuffedLines(broken).holds(), broken


_PIECES = [b"a", b".", b"..", b"\r\n", b"\r", b"\n", b" ", b"x" * 50, b""]


@pytest.mark.parametrize("chunking", [False, True], ids=["data", "bdat"])
@settings(max_examples=40, deadline=None)
@given(pieces=st.lists(st.tuples(st.lists(st.sampled_from(_PIECES), max_size=12).map(b"".join), st.booleans()),
                       max_size=8))
def test_chunks_marked_stuffed_lines_truthfully_or_not_are_stored_as_plain_bytes(chunking, pieces):
    marked = [StuffedLines(p) if mark else p for p, mark in pieces]
    plain = [bytes(p) for p, _ in pieces]
    stored = []
    for chunks in (marked, plain):
        with ScriptedServer(extensions=("PIPELINING", "CHUNKING") if chunking else ("PIPELINING",)) as server:
            got = deliver("blocking", server=HOST, port=server.port, from_="a@example.com", rcpt="b@example.com",
                          source=[b"Subject: x\r\n\r\n", *chunks])
        assert not isinstance(got, SMTPError), got
        stored.append([m.content for m in server.messages])
    assert stored[0] == stored[1] and len(stored[0]) == 1


# ------------------------------------------------------------------ 10. small gaps, clear errors

def test_bad_part_arguments_are_refused_when_the_part_is_made():
    with pytest.raises(TypeError):
        text(5)  # bytes(5): five NUL bytes
    with pytest.raises(MessageError):
        text("x", subtype="plain; charset=utf-7")
    with pytest.raises(MessageError):
        attachment(b"x", "a.bin", content_type='application/pdf; name="evil.exe"')
    with pytest.raises(TypeError):
        attachment(None)
    with pytest.raises(MessageError):
        attachment(b"x", filename="=?utf-8?q?invoice=2Eexe?=")
    assert attachment(b"x", "a.pdf", content_type="application/pdf")["headers"]["content-type"].startswith(
        "application/pdf;")


def test_header_names_and_address_comments_are_checked_as_they_are():
    with pytest.raises(MessageError):
        smtp.message({"headers": {"from": "a@example.com", "\u212aeywords": "x"}, "body": "x"})
    nested = "(" * 5000 + "x" + ")" * 5000
    with pytest.raises(HeaderError):
        smtp.message({"headers": {"from": "a@example.com", "to": f"{nested} b@example.com"}, "body": "x"})


@pytest.mark.parametrize("field, value, error", [
    ("timeout", float("nan"), ValueError),
    ("timeout", float("inf"), ValueError),
    ("timeout", {"mail": float("inf")}, ValueError),
    ("auth", ["PLAIN", 5], TypeError),
    ("ssl_context", 5, TypeError),
    ("create", lambda: None, TypeError),
])
@pytest.mark.parametrize("transport", ["blocking", "aio"])
def test_bad_connection_fields_are_clear_errors(transport, field, value, error):
    with ScriptedServer() as server:
        with pytest.raises(error) as info:
            fields = dict(server=HOST, port=server.port, from_="a@example.com", rcpt="b@example.com",
                          source=[b"x\r\n"], **{field: value})
            asyncio.run(aio.send(**fields)) if transport == "aio" else smtp.send(**fields)
    assert not isinstance(info.value, AttributeError)
    assert server.messages == []


@pytest.mark.parametrize("fields", [
    {"source": itertools.repeat(b"")},
    {"source": [b"x\r\n"], "step": lambda source, sink: True},
], ids=["empty-chunks", "idle-step"])
def test_a_source_that_never_gives_a_byte_is_given_up(fields):
    with ScriptedServer() as server:
        got = deliver("blocking", server=HOST, port=server.port, from_="a@example.com", rcpt="b@example.com",
                      **fields)
    assert isinstance(got, SMTPSourceError), got
    assert server.messages == []


def test_a_closed_cached_part_cannot_be_sent():
    part = cached(attachment(b"report" * 100, "r.bin"))
    message = {"headers": {"from": "a@example.com", "to": "b@example.com"}, "body": {1: part}}
    assert b"".join(smtp.message(message))
    part["body"].close()
    with pytest.raises(ValueError):
        b"".join(smtp.message(message))


def test_a_replay_running_across_close_reads_its_own_file(tmp_path):
    data = os.urandom(1 << 20)
    body = cached(attachment(data, "r.bin"), threshold=0)["body"]
    replay = body.chunks()
    first = next(replay)
    body.close()
    with open(tmp_path / "other", "wb+") as other:  # may get the closed descriptor's number
        other.write(b"\0" * (2 << 20))
        other.flush()
        rest = b"".join(replay)
    assert base64.b64decode(first + rest) == data


@pytest.mark.parametrize("param", ["boundary*=utf-8''evil", 'boundary*0="ev"; boundary*1="il"', "boundary*0*=us-ascii''evil"])
def test_a_callers_rfc_2231_boundary_does_not_survive_beside_ours(param):
    import email
    import email.policy

    source = smtp.message({"headers": {"from": "a@example.com", "content-type": f"multipart/mixed; {param}"},
                           "body": {1: {"body": "one"}, 2: {"body": "two"}}})
    raw = b"".join(source)
    assert b"boundary*" not in raw and b"evil" not in raw
    default = email.message_from_bytes(raw, policy=email.policy.default)
    compat = email.message_from_bytes(raw, policy=email.policy.compat32)
    assert default.get_boundary() == compat.get_boundary() and len(default.get_payload()) == 2
