"""DKIM signing: every signature checked by dkimpy (the oracle), fed the key through ``dnsfunc``.

Messages are built by ``message(..., dkim=signer)`` or signed by the ``dkim=``
send field; the signatures are verified on the bytes the builder gives and on
what a real server (aiosmtpd on 127.0.0.1) stored.
"""
from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import warnings

import dkim as dkimpy
import pytest
from aiosmtpd.controller import Controller
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from dkim.canonicalization import Relaxed, Simple
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smtpstream import filters, ltn12, smtp
from smtpstream.dkim import DKIMError, Signer, body_hash
from smtpstream.filters import CleanLines
from smtpstream.message import MessageError, attachment, cached, message, text
from smtpstream.pool import Pool

from chains import cut, run_chain
from smtp_servers import HOST, AuthHandler, free_port

CANONICALIZATIONS = ["relaxed/relaxed", "simple/simple", "relaxed/simple", "simple/relaxed"]
ALGORITHMS = ["rsa-sha256", "ed25519-sha256"]


def pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@pytest.fixture(scope="module")
def keys():
    return {
        "rsa-sha256": pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        "ed25519-sha256": pem(ed25519.Ed25519PrivateKey.generate()),
    }


def verifies(data: bytes, signer: Signer) -> bool:
    record = signer.dns_record().encode()

    def dnsfunc(name, timeout=5):
        assert name == f"{signer.selector}._domainkey.{signer.domain}.".encode()
        return record

    return dkimpy.verify(data, dnsfunc=dnsfunc)


def table(body, **headers):
    base = {"from": "Ana Lúcia <ana@example.com>", "to": "bob@example.org", "subject": "Relatório"}
    base.update(headers)
    return {"headers": base, "body": body}


# ------------------------------------------------------------------ generated messages

header_text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=40)
line = st.text(st.sampled_from(list("ab .é\t ")), max_size=20)
body_text = st.lists(line, max_size=6).map("\r\n".join) | st.lists(line, max_size=6).map(
    lambda lines: "\n".join(lines) + "\n  \n\n")


def leaf():
    return st.one_of(
        body_text.map(lambda t: {"body": t}),
        st.binary(max_size=300).map(lambda b: {"body": b}),
        st.just({"body": ""}),
    )


parts = st.recursive(leaf(), lambda children: st.lists(children, min_size=1, max_size=3).map(
    lambda ps: {"body": {"parts": ps}}), max_leaves=5)


@pytest.mark.parametrize("canonicalization", CANONICALIZATIONS)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(part=parts, subject=header_text, preamble=st.none() | body_text)
def test_generated_messages_verify(keys, algorithm, canonicalization, part, subject, preamble):
    signer = Signer("example.com", "sel", keys[algorithm], algorithm=algorithm, canonicalization=canonicalization)
    if isinstance(part["body"], dict) and preamble is not None:
        part["body"]["preamble"] = preamble
    source = message(table(part["body"], subject=subject or "x", cc="Zoë <zoe@example.net>"), dkim=signer)
    data = b"".join(source)
    assert len(data) == source.size
    assert data.startswith(b"DKIM-Signature: v=1; a=" + algorithm.encode())
    assert verifies(data, signer)
    # A changed body byte or header breaks it: the signature covers both.
    assert not verifies(data.replace(b"Subject:", b"Subject: Re:", 1), signer)
    assert not verifies(data + b"tampered\r\n", signer)


@pytest.mark.parametrize("canonicalization", CANONICALIZATIONS)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_attachment_and_unsubscribe_verify(keys, algorithm, canonicalization, tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(bytes(range(256)) * 1000 + b"\r\n \r\n")
    signer = Signer("example.com", "s1", keys[algorithm], algorithm=algorithm,
                    canonicalization=canonicalization, expire=3600)
    source = message(table({1: text("trailing   \t\nspaces  \n\n\n"), 2: attachment(str(path))}),
                     dkim=signer, unsubscribe=["https://example.com/u/123", "mailto:u@example.com?subject=u"])
    data = b"".join(source)
    assert verifies(data, signer)
    head = data.split(b"\r\n\r\n", 1)[0]
    field = re.search(rb"DKIM-Signature:.*?(?=\r\n\S)", head, re.S).group().replace(b"\r\n", b"")
    tags = dict(t.strip().split(b"=", 1) for t in field.split(b":", 1)[1].split(b";"))
    assert tags[b"h"].replace(b" ", b"").split(b":") == [
        b"from", b"to", b"subject", b"date", b"message-id", b"mime-version", b"content-type",
        b"list-unsubscribe", b"list-unsubscribe-post", b"from",
    ]
    assert int(tags[b"x"]) - int(tags[b"t"]) == 3600
    unfolded = head.replace(b"\r\n ", b" ") + b"\r\n"
    assert b"\r\nList-Unsubscribe: <https://example.com/u/123>, <mailto:u@example.com?subject=u>\r\n" in unfolded
    assert b"\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" in unfolded
    assert max(map(len, head.split(b"\r\n"))) <= 78


def test_signed_message_rewinds_to_the_same_bytes_and_the_send_field_reuses_the_copy(keys):
    signer = Signer("example.com", "sel", keys["ed25519-sha256"], algorithm="ed25519-sha256")
    source = message(table({1: text("a"), 2: cached(attachment(b"x" * 5000, "x.bin"))}))
    signed = source.with_dkim(signer)
    first = b"".join(signed)
    signed.rewind()
    assert b"".join(signed) == first
    assert source.with_dkim(signer) is signed  # a resend through the dkim= field: same bytes
    assert first == signed._dkim_field + b"".join(source)  # the unsigned original is untouched
    with pytest.raises(ValueError, match="signed already"):
        signed.with_dkim(signer)


def test_a_one_shot_part_is_spilled_to_a_file_and_verifies(keys):
    signer = Signer("example.com", "sel", keys["rsa-sha256"], canonicalization="simple/simple")
    chunks = (b"line %d  \n" % i for i in range(20000))  # a generator: readable once
    source = message(table({1: text("see below"), 2: {"body": chunks}}), dkim=signer)
    assert source.replayable
    spilled = source._root.parts[1].body
    data = b"".join(source)
    assert not spilled.in_memory
    assert b"line 19999  \r\n" in data
    assert verifies(data, signer)


# ------------------------------------------------------------------ the body canonicaliser

SPECIAL = b"ab \t\r\n\r\n\r."
bodies = st.lists(st.sampled_from(list(SPECIAL)), max_size=200).map(bytes) | st.binary(max_size=200)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=bodies, lengths=st.lists(st.integers(0, 40), max_size=8))
def test_canonicaliser_agrees_with_dkimpy(filters_impl, data, lengths):
    # What a receiver sees: SMTP ends the body with CRLF (dkimpy keeps the white
    # space of an unterminated last line; a received body never has one).
    received = data if not data or data.endswith(b"\r\n") else data + b"\r\n"
    assert run_chain(filters_impl, "canon:relaxed", cut(data, lengths)) == Relaxed.canonicalize_body(received)
    assert run_chain(filters_impl, "canon:simple", cut(data, lengths)) == Simple.canonicalize_body(received)


@pytest.mark.parametrize("mode, data, expected", [
    ("relaxed", b"", b""),
    ("simple", b"", b"\r\n"),
    ("relaxed", b"\r\n\r\n", b""),
    ("simple", b"\r\n\r\n", b"\r\n"),
    ("relaxed", b" a \t b \r\n \r\n\t\r\n", b" a b\r\n"),
    ("simple", b" a \t b \r\n \r\n\r\n", b" a \t b \r\n \r\n"),
    ("relaxed", b"a\rb\r", b"a\rb\r\r\n"),
    ("relaxed", b"end  ", b"end\r\n"),
])
def test_canonicaliser_examples(filters_impl, mode, data, expected):
    assert run_chain(filters_impl, f"canon:{mode}", [data]) == expected
    assert run_chain(filters_impl, f"canon:{mode}", [data[i:i + 1] for i in range(len(data))]) == expected


def test_canonicaliser_holds_back_line_breaks_and_refuses_bad_modes(filters_impl):
    f = filters_impl.BodyCanonicalizer("simple")
    assert f(b"a\r\n\r\n") == b"a" and f.held == 2 and f.mode == "simple"
    assert f(b"b") == b"\r\n\r\nb" and f.held == 0
    with pytest.raises(ValueError, match="relaxed"):
        filters_impl.BodyCanonicalizer("loose")
    with pytest.raises(TypeError):
        filters_impl.BodyCanonicalizer()("text")


def test_body_hash_takes_clean_base64_lines_as_they_are():
    lines = CleanLines(b"QUJD\r\n" * 10)
    assert body_hash([b"x\r\n", lines]) == body_hash([b"x\n", bytes(lines)])
    # an open CR before a clean chunk still goes through the normaliser
    assert body_hash([b"x\r", lines, b"\n"]) == body_hash([b"x\r" + bytes(lines) + b"\n"])


def reference_dkim_canonical(data: bytes) -> bool:
    i = 0
    while i < len(data):
        if data[i] < 0x2B:  # below "+": only a CRLF pair may be there
            if data[i:i + 2] != b"\r\n":
                return False
            i += 1
        i += 1
    return True


pieces = st.sampled_from([b"QUJDREVGR0g=", b"+/09", b"\r\n", b"\r", b"\n", b" ", b"\t", b"!", b"*", b".",
                          b"\x00", b"\x80\xff", b"-", b"x" * 20])


@settings(max_examples=400, deadline=None)
@given(data=st.lists(pieces, max_size=40).map(b"".join))
def test_dkim_canonical_in_both_twins_and_what_it_promises(filters_impl, data):
    ok = filters_impl.dkim_canonical(data)
    assert ok == reference_dkim_canonical(data)
    if ok and data.strip(b"\r\n"):
        # what it promises: both canonicalisations change nothing but the trailing line breaks
        body = data.rstrip(b"\r\n") + b"\r\n"
        assert Relaxed.canonicalize_body(data + b"\r\n") == Simple.canonicalize_body(data + b"\r\n") == body
    with pytest.raises(TypeError):
        filters_impl.dkim_canonical(bytearray(data))


# ------------------------------------------------------------------ bad settings


def test_bad_signer_settings_are_clear_errors(keys, tmp_path):
    key = keys["rsa-sha256"]
    with pytest.raises(DKIMError, match="does not parse"):
        Signer("example.com", "sel", b"-----BEGIN PRIVATE KEY-----\nnonsense\n-----END PRIVATE KEY-----\n")
    with pytest.raises(DKIMError, match="cannot read"):
        Signer("example.com", "sel", str(tmp_path / "missing.pem"))
    # cryptography will not make keys this small; openssl will
    small = subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:768"],
                           capture_output=True, check=True).stdout
    with pytest.raises(DKIMError, match="768 bits is refused"):
        Signer("example.com", "sel", small)
    weak = pem(rsa.generate_private_key(public_exponent=65537, key_size=1024))
    with pytest.warns(UserWarning, match="1024 bits is weak"):
        Signer("example.com", "sel", weak)
    with pytest.raises(DKIMError, match="selector 'bad_sel' is not a domain"):
        Signer("example.com", "bad_sel", key)
    with pytest.raises(DKIMError, match="domain 'exa mple.com'"):
        Signer("exa mple.com", "sel", key)
    with pytest.raises(DKIMError, match="must include From"):
        Signer("example.com", "sel", key, headers=["To", "Subject"])
    with pytest.raises(DKIMError, match="Ed25519 key"):
        Signer("example.com", "sel", key, algorithm="ed25519-sha256")
    with pytest.raises(DKIMError, match="RSA key"):
        Signer("example.com", "sel", pem(ec.generate_private_key(ec.SECP256R1())))
    with pytest.raises(DKIMError, match="algorithm"):
        Signer("example.com", "sel", key, algorithm="rsa-sha1")
    with pytest.raises(DKIMError, match="canonicalization"):
        Signer("example.com", "sel", key, canonicalization="relaxed/loose")
    with pytest.raises(DKIMError, match="expire"):
        Signer("example.com", "sel", key, expire=0)
    path = tmp_path / "key.pem"
    path.write_bytes(key)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert Signer("Example.COM", "sel", path).domain == "example.com"


@pytest.mark.parametrize("uris, error", [
    ("http://example.com/u", "not an https URL"),
    ("https://example.com/a b", "not an https URL"),
    ("https:example.com", "not an https URL"),
    ("mailto:a@example.com>", "no spaces"),
    ([], "give an https URL"),
])
def test_bad_unsubscribe_uris_are_refused(uris, error):
    with pytest.raises(MessageError, match=error):
        message(table("hi"), unsubscribe=uris)


def test_unsubscribe_mailto_only_has_no_one_click_header():
    data = b"".join(message(table("hi"), unsubscribe="mailto:leave@example.com"))
    assert b"\r\nList-Unsubscribe: <mailto:leave@example.com>\r\n" in data
    assert b"List-Unsubscribe-Post" not in data
    with pytest.raises(MessageError, match="do not give that header too"):
        message(table("hi", **{"List-Unsubscribe": "<mailto:x@example.com>"}), unsubscribe="mailto:y@example.com")


# ------------------------------------------------------------------ through a real server


@contextlib.contextmanager
def aiosmtpd_server():
    handler = AuthHandler()
    port = free_port()
    controller = Controller(handler, hostname=HOST, port=port, server_hostname="aiosmtpd.test")
    controller.start()
    try:
        yield port, handler
    finally:
        controller.stop()


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_signatures_verify_as_the_server_stored_them(keys, algorithm, tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(bytes(range(256)) * 4000)
    signers = [Signer("example.com", "sel", keys[algorithm], algorithm=algorithm, canonicalization=c)
               for c in CANONICALIZATIONS]

    def build(i):
        return message(table({1: text(f".dot line {i}  \n\ttabbed\n\n"), 2: attachment(str(path))},
                             subject=f"message {i}"), unsubscribe=f"https://example.com/u/{i}")

    with aiosmtpd_server() as (port, handler):
        # message(dkim=) and the dkim= send field, one message each
        smtp.send(source=message(table("first .\n.\n"), dkim=signers[0]), server=HOST, port=port, timeout=20)
        smtp.send(source=build(0), dkim=signers[1], server=HOST, port=port, timeout=20)
        # and through a pool, which passes the field on
        pool = Pool(server=HOST, port=port, connections=2, timeout=20)
        results = pool.send_many({"source": build(i), "dkim": signers[i % 4]} for i in range(1, 9))
        assert all(r.ok for r in results), [r.error for r in results]
        stored = [bytes(envelope.original_content) for envelope in handler.box]
    assert len(stored) == 10
    used = [signers[0], signers[1]] + [signers[i % 4] for i in range(1, 9)]
    by_subject = {}
    for data in stored:
        subject = re.search(rb"\r\nSubject: ([^\r]*)", data).group(1)
        by_subject[subject] = data
    assert verifies(by_subject[b"=?utf-8?q?Relat=C3=B3rio?="], used[0])
    for i in range(9):
        assert verifies(by_subject[b"message %d" % i], used[i + 1]), i


def test_the_sender_never_imports_cryptography():
    code = ("import sys, smtpstream.smtp, smtpstream.aio, smtpstream.message;"
            "assert 'cryptography' not in sys.modules and 'smtpstream.dkim' not in sys.modules, 'imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@settings(max_examples=200, deadline=None)
@given(lines=st.lists(st.sampled_from([b"QUJD", b"", b"x/+9", b"Zm9v="]), max_size=12),
       before=st.sampled_from([b"", b"a \r\n\r\n", b"t\t", b"x\r"]), after=st.sampled_from([b"", b"\r\n", b" z\r\n"]),
       mode=st.sampled_from(["relaxed", "simple"]))
def test_clean_chunks_hash_as_if_canonicalised(lines, before, after, mode):
    import hashlib

    clean = CleanLines(b"".join(line + b"\r\n" for line in lines))
    data = run_chain(filters, "normalize", [before + bytes(clean) + after])  # as the transport sends it
    oracle = (Relaxed if mode == "relaxed" else Simple).canonicalize_body(
        data if not data or data.endswith(b"\r\n") else data + b"\r\n")
    assert body_hash([before, clean, after], mode) == hashlib.sha256(oracle).digest()


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_shared_body_is_hashed_once_for_many_messages(keys, algorithm, monkeypatch):
    from smtpstream.message import shared

    signer = Signer("example.com", "sel", keys[algorithm], algorithm=algorithm)
    body = shared({1: text("same text  \n\n"), 2: cached(attachment(b"\x00\xff" * 30000, "a.bin"))})
    hashed = []
    real = signer.body_hash
    monkeypatch.setattr(signer, "body_hash", lambda chunks: hashed.append(1) or real(chunks))
    messages = [b"".join(message({"headers": {"from": "a@example.com", "to": f"u{i}@example.com",
                                              "subject": f"n {i}"}, "body": body}, dkim=signer))
                for i in range(5)]
    assert len(hashed) == 1
    bodies = {m.split(b"\r\n\r\n", 1)[1] for m in messages}
    assert len(bodies) == 1  # the same bytes, boundaries included
    for data in messages:
        assert verifies(data, signer)
    assert not verifies(messages[0].replace(b"n 0", b"n 9"), signer)
    # a one-part shared body, unsigned: the same bytes as the unshared message but for the random fields
    one = message({"headers": {"from": "a@example.com"}, "body": shared("plain")})
    data = b"".join(one)
    assert len(data) == one.size and data.endswith(b"\r\n\r\nplain\r\n")
    with pytest.raises(MessageError, match="brings its own content-type"):
        message({"headers": {"content-type": "text/html"}, "body": body})


def test_a_shared_body_tells_the_sender_whether_its_lines_are_short():
    from smtpstream.message import shared

    # short_lines lets the sender skip its 998-octet line check on every message of a campaign
    short = message({"headers": {"from": "a@example.com"}, "body": shared({1: text("hi\n"), 2: text("there\n")})})
    # a source's lines are not known (the builder encodes bytes and text itself)
    long = message({"headers": {"from": "a@example.com"}, "body": shared(ltn12.source.string(b"x" * 1200))})
    assert short.short_lines is True and short.seven_bit is True
    assert long.short_lines is False


def test_a_pool_wide_signer_signs_every_message_that_names_none(keys):
    pool_signer = Signer("example.com", "pool", keys["rsa-sha256"])
    own = Signer("example.com", "own", keys["ed25519-sha256"], algorithm="ed25519-sha256")
    with aiosmtpd_server() as (port, handler):
        pool = Pool(server=HOST, port=port, connections=2, timeout=20, dkim=pool_signer)
        fields = [{"source": message(table(f"body {i}\n", subject=f"m{i}"))} for i in range(4)]
        fields[3]["dkim"] = own  # a message's own signer wins
        assert all(r.ok for r in pool.send_many(fields))
        stored = {re.search(rb"\r\nSubject: ([^\r]*)", bytes(e.original_content)).group(1): bytes(e.original_content)
                  for e in handler.box}
    for i in range(3):
        assert b"s=pool;" in stored[b"m%d" % i] and verifies(stored[b"m%d" % i], pool_signer)
    assert b"s=own;" in stored[b"m3"] and verifies(stored[b"m3"], own)


def test_an_rsa_key_whose_numbers_disagree_is_refused(keys):
    # The key is loaded without OpenSSL's slow primality check; one signature
    # verified with its own public half stands for it.
    good = serialization.load_pem_private_key(keys["rsa-sha256"], password=None).private_numbers()
    p, q = good.p, good.q
    d = good.d ^ 2  # a wrong exponent, with CRT values that agree with it
    bad = rsa.RSAPrivateNumbers(p, q, d, d % (p - 1), d % (q - 1), good.iqmp, good.public_numbers)
    with pytest.raises(DKIMError, match="inconsistent"):
        Signer("example.com", "sel", pem(bad.private_key(unsafe_skip_rsa_key_validation=True)))


@pytest.mark.parametrize("mode", ["relaxed", "simple"])
@pytest.mark.parametrize("chunk", [b"QU  JD\r\n", b"QUJD \r\n", b"QUJD\t\r\n", b"QUJD\nQUJD\r\n", b"QU\rJD\r\n"])
def test_a_clean_chunk_that_breaks_its_promise_is_canonicalised(chunk, mode):
    import hashlib

    # CleanLines is a marker anyone can set: what it holds is checked before it skips the canonicaliser.
    data = run_chain(filters, "normalize", [b"x\r\n" + chunk])
    oracle = (Relaxed if mode == "relaxed" else Simple).canonicalize_body(data)
    assert body_hash([b"x\r\n", CleanLines(chunk)], mode) == hashlib.sha256(oracle).digest()
