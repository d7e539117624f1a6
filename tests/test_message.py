"""smtp.message: messages built as sources, read back with the standard library's parser."""
from __future__ import annotations

import copy
import email
import email.policy
import email.utils
import hashlib
import io
import os
import re
from datetime import datetime, timedelta

import pytest

from smtpstream import ltn12, mime
from smtpstream.message import (
    HeaderError,
    MessageError,
    alternative,
    attachment,
    cached,
    html,
    inline,
    message,
    related,
    text,
    write_eml,
)
from smtpstream.smtp import message as smtp_message

PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000") + os.urandom(3000)


def produce(mesgt) -> bytes:
    return b"".join(message(mesgt))


def parse(raw: bytes):
    return email.message_from_bytes(raw, policy=email.policy.default)


def content(part) -> str:
    """A text part's content with its CRLF line breaks read as newlines."""
    return part.get_content().replace("\r\n", "\n")


def header_names(raw: bytes) -> list[str]:
    head = raw.split(b"\r\n\r\n", 1)[0].decode()
    return [line.split(":", 1)[0] for line in head.split("\r\n") if line and not line[0].isspace()]


def assert_wire_clean(raw: bytes) -> None:
    """Every line ends in CRLF and is at most 998 octets."""
    assert raw.endswith(b"\r\n")
    assert b"\r" not in raw.replace(b"\r\n", b"") and b"\n" not in raw.replace(b"\r\n", b"")
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998


# ---------------------------------------------------------------- the seed's examples

def test_seed_first_example():
    mesgt = {
        "headers": {
            "to": "Fulano da Silva <fulano@example.com>",
            "cc": '"Beltrano F. Nunes" <beltrano@example.com>',
            "subject": "My first message",
        },
        "body": "I hope this works. If it does, I can send you another 1000 copies.",
    }
    original = copy.deepcopy(mesgt)
    source = smtp_message(mesgt)
    raw = b"".join(source)
    assert mesgt == original  # LuaSocket replaces the caller's headers table; we do not
    msg = parse(raw)
    assert msg["To"] == "Fulano da Silva <fulano@example.com>"
    assert msg["Cc"] == '"Beltrano F. Nunes" <beltrano@example.com>'
    assert msg["Subject"] == "My first message"
    assert msg["MIME-Version"] == "1.0"
    assert content(msg) == "I hope this works. If it does, I can send you another 1000 copies.\n"
    assert raw.endswith(b"copies.\r\n")
    assert msg.get_content_type() == "text/plain"
    assert header_names(raw)[:4] == ["Date", "Message-ID", "MIME-Version", "X-Mailer"]
    assert source.recipients == ["fulano@example.com", "beltrano@example.com"]
    assert_wire_clean(raw)


def test_seed_second_example(tmp_path):
    image = tmp_path / "image.png"
    image.write_bytes(PNG)
    lines = (
        "        Lines in a message body should always end with CRLF. \n"
        "        The smtp module will *NOT* perform translation. However, the \n"
        "        send function *DOES* perform SMTP stuffing, whereas the message\n"
        "        function does *NOT*.\n"
    )
    source = smtp_message({
        "headers": {
            "from": "Sicrano de Oliveira <sicrano@example.com>",
            "to": "Fulano da Silva <fulano@example.com>",
            "subject": "Here is a message with attachments",
        },
        "body": {
            "preamble": "If your client doesn't understand attachments, \r\n"
            "it will still display the preamble and the epilogue.\r\n"
            "Preamble will probably appear even in a MIME enabled client.",
            1: {"body": mime.eol(0, lines.encode())[0]},
            2: {
                "headers": {
                    "content-type": 'image/png; name="image.png"',
                    "content-disposition": 'attachment; filename="image.png"',
                    "content-description": "a beautiful image",
                    "content-transfer-encoding": "BASE64",
                },
                "body": ltn12.source.chain(
                    ltn12.source.file(open(image, "rb")),
                    ltn12.filter.chain(mime.encode("base64"), mime.wrap()),
                ),
            },
            "epilogue": "This might also show up, but after the attachments",
        },
    })
    assert source.size is None  # a user's source has no known length
    raw = b"".join(source)
    msg = parse(raw)
    assert msg.is_multipart() and msg.get_content_type() == "multipart/mixed"
    assert msg.preamble.startswith("If your client doesn't understand attachments")
    assert msg.epilogue.strip() == "This might also show up, but after the attachments"
    first, second = msg.iter_parts()
    assert content(first) == lines
    assert second.get_filename() == "image.png"
    assert second["Content-Description"] == "a beautiful image"
    assert second.get_content() == PNG
    assert source.sender == "sicrano@example.com"
    assert_wire_clean(raw)


# ---------------------------------------------------------------- headers

def test_headers_canonical_case_stable_order_and_defaults_first():
    raw = produce({
        "headers": {"subject": "s", "x-custom-thing": "1", "from": "a@example.com", "reply-to": "b@example.com"},
        "body": "x",
    })
    assert header_names(raw) == [
        "Date", "Message-ID", "MIME-Version", "X-Mailer", "Content-Type",
        "Content-Transfer-Encoding", "Subject", "X-Custom-Thing", "From", "Reply-To",
    ]


def test_given_defaults_are_kept_and_mime_version_is_forced():
    raw = produce({
        "headers": {"Date": "Mon, 1 Jan 2024 00:00:00 +0000", "Message-ID": "<x@y>",
                    "MIME-Version": "2.0", "X-Mailer": "me"},
        "body": "x",
    })
    msg = parse(raw)
    assert b"\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n" in b"\r\n" + raw
    assert msg["Message-ID"] == "<x@y>"
    assert msg.get_all("MIME-Version") == ["1.0"]
    assert msg["X-Mailer"] == "me"


def test_date_carries_the_real_utc_offset():
    raw = produce({"body": "x"})
    value = parse(raw)["Date"]
    when = email.utils.parsedate_to_datetime(str(value))
    local = datetime.now().astimezone()
    assert when.utcoffset() == local.utcoffset()
    assert not str(value).endswith("-0000")
    assert abs(when - local) < timedelta(minutes=1)


def test_message_ids_are_unique_and_use_the_sender_domain():
    ids = {parse(produce({"headers": {"from": "x@mail.example.org"}, "body": "x"}))["Message-ID"] for _ in range(50)}
    assert len(ids) == 50
    assert all(re.fullmatch(r"<[0-9a-f]{32}@mail\.example\.org>", str(i)) for i in ids)


def test_bcc_is_never_written_but_reaches_the_envelope():
    source = message({
        "headers": {"from": "a@example.com", "to": "b@example.com", "BCC": "Secret <hidden@secret.example>, d@example.com"},
        "body": "x",
    })
    raw = b"".join(source)
    # (no "bcc" anywhere would be flaky: a random hex Message-ID or boundary may contain it)
    assert b"hidden" not in raw and b"secret" not in raw.lower()
    assert not any(line.lower().startswith(b"bcc:") for line in raw.split(b"\r\n"))
    assert source.recipients == ["b@example.com", "hidden@secret.example", "d@example.com"]


@pytest.mark.parametrize("value", ["x\r\nBcc: victim@example.com", "x\nBcc: v@example.com", "x\rY", "x\0y"])
def test_header_injection_is_refused_before_anything_is_produced(value):
    with pytest.raises(HeaderError, match="injection"):
        message({"headers": {"subject": value}, "body": "x"})
    with pytest.raises(HeaderError):
        message({"body": {1: {"headers": {"content-description": value}, "body": "x"}}})


def test_non_ascii_headers_are_encoded_and_read_back():
    raw = produce({
        "headers": {
            "from": "José Cão <jose@bücher.example>",
            "subject": "Relatório de vendas — março 2026 ✓ " * 4,
        },
        "body": "x",
    })
    assert raw.split(b"\r\n\r\n")[0].isascii()
    msg = parse(raw)
    assert str(msg["Subject"]) == "Relatório de vendas — março 2026 ✓ " * 4
    assert msg["From"].addresses[0].display_name == "José Cão"
    assert msg["From"].addresses[0].domain == "xn--bcher-kva.example"
    assert max(len(line) for line in raw.split(b"\r\n\r\n")[0].split(b"\r\n")) <= 78


def test_case_variant_duplicate_headers_are_an_error():
    with pytest.raises(MessageError, match="twice"):
        message({"headers": {"Subject": "a", "subject": "b"}, "body": "x"})


# ---------------------------------------------------------------- bodies

def test_text_bodies_choose_their_encoding():
    ascii_msg = parse(produce({"body": "plain\nascii\rtext"}))
    assert ascii_msg["Content-Transfer-Encoding"] == "7bit"
    assert content(ascii_msg) == "plain\nascii\ntext\n"
    accented = "Caf\u00e9 au lait for everyone at the meeting today, as agreed.\n" * 20
    qp = parse(produce({"body": accented}))
    assert qp["Content-Transfer-Encoding"] == "quoted-printable"
    assert content(qp) == accented
    russian = "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440! " * 40
    b64 = parse(produce({"body": russian}))
    assert b64["Content-Transfer-Encoding"] == "base64"
    assert content(b64) == russian
    long_line = "x" * 2000
    wrapped = produce({"body": long_line})
    assert parse(wrapped)["Content-Transfer-Encoding"] == "quoted-printable"
    assert content(parse(wrapped)) == long_line
    assert_wire_clean(wrapped)


def test_nil_body_is_an_empty_body_even_inside_a_multipart():
    raw = produce({"body": {1: {"body": None}, 2: {"body": "second"}}})
    first, second = parse(raw).iter_parts()
    assert content(first) == "" and content(second) == "second"


def test_a_source_body_is_passed_on_with_crlf_line_breaks():
    raw = produce({"body": [b"line one\n", b"line two\r", b"\nthree"]})
    assert raw.endswith(b"\r\n\r\nline one\r\nline two\r\nthree\r\n")


def test_multipart_errors_and_boundaries():
    with pytest.raises(MessageError, match="at least one part"):
        message({"body": {"preamble": "p"}})
    with pytest.raises(MessageError, match="holes"):
        message({"body": {1: {"body": "a"}, 3: {"body": "b"}}})
    with pytest.raises(MessageError, match="multipart"):
        message({"headers": {"content-type": "text/plain"}, "body": {1: {"body": "a"}}})
    raw = produce({
        "headers": {"content-type": 'multipart/alternative; boundary="mine"'},
        "body": {"parts": [{"body": "a"}, {"body": {1: {"body": "b"}}}]},
    })
    boundaries = re.findall(rb'boundary="([^"]+)"', raw)
    assert len(boundaries) == 2 and boundaries[0] != boundaries[1]
    assert b"mine" not in raw
    assert all(re.fullmatch(rb"=_[0-9a-f]{32}", b) for b in boundaries)
    msg = parse(raw)
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.walk()] == [
        "multipart/alternative", "text/plain", "multipart/mixed", "text/plain"]


# ---------------------------------------------------------------- conveniences

def test_attachments_from_path_file_bytes_and_source(tmp_path):
    path = tmp_path / "report.pdf"
    payload = os.urandom(200_000)
    path.write_bytes(payload)
    handle = open(path, "rb")
    source = message({
        "headers": {"subject": "files"},
        "body": {"parts": [
            text("see attached"),
            attachment(path),
            attachment(handle, "copy.pdf"),
            attachment(payload[:1000], "bytes.bin"),
            attachment([payload[:10], payload[10:500]], "stream.dat", "application/x-thing"),
        ]},
    })
    assert source.size is None  # the last one is an unsized stream
    msg = parse(b"".join(source))
    handle.close()
    parts = list(msg.iter_parts())
    assert parts[1].get_filename() == "report.pdf"
    assert parts[1].get_content_type() == "application/pdf"
    assert parts[1].get_content() == payload
    assert parts[2].get_filename() == "copy.pdf" and parts[2].get_content() == payload
    assert parts[3].get_filename() == "bytes.bin" and parts[3].get_content() == payload[:1000]
    assert parts[4].get_content_type() == "application/x-thing"
    assert parts[4].get_content() == payload[:500]
    assert all(p.get_content_disposition() == "attachment" for p in parts[1:])


def test_attachment_lines_are_76_columns_and_read_lazily(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(os.urandom(57 * 100 + 1))
    source = message({"body": {1: attachment(path)}})
    path.write_bytes(os.urandom(57 * 10))  # nothing was read yet: the new content goes out
    raw = b"".join(source)
    body = parse(raw).get_payload(0).get_content()
    assert body == path.read_bytes()
    b64_lines = [line for line in raw.split(b"\r\n") if re.fullmatch(rb"[A-Za-z0-9+/=]{20,}", line)]
    assert {len(line) for line in b64_lines[:-1]} == {76}


def test_non_ascii_filename_has_rfc2231_and_name_fallback(tmp_path):
    name = "relat\u00f3rio \u65e5\u672c \U0001f600 final.pdf"
    raw = produce({"body": {1: attachment(b"%PDF-1.4 x", name)}})
    assert raw.split(b"\r\n\r\n")[0].isascii()
    part = parse(raw).get_payload(0)
    assert part.get_filename() == name
    assert b"filename*" in raw and b"name=" in raw
    legacy = email.message_from_bytes(raw, policy=email.policy.compat32).get_payload(0)
    decoded = email.header.make_header(email.header.decode_header(legacy.get_param("name")))
    assert str(decoded) == name


def test_alternative_and_related_with_inline_image():
    raw = produce({
        "headers": {"subject": "newsletter"},
        "body": {"parts": [
            alternative("plain version", related(html('<p><img src="cid:logo@x"></p>'), inline(PNG, "logo@x", filename="logo.png"))),
        ]},
    })
    msg = parse(raw)
    types = [p.get_content_type() for p in msg.walk()]
    assert types == ["multipart/mixed", "multipart/alternative", "text/plain", "multipart/related", "text/html", "image/png"]
    image = [p for p in msg.walk() if p.get_content_type() == "image/png"][0]
    assert image["Content-ID"] == "<logo@x>"
    assert image.get_content_disposition() == "inline"
    assert image.get_content() == PNG


def test_cached_part_is_encoded_once_for_many_messages(tmp_path):
    path = tmp_path / "big.bin"
    payload = os.urandom(300_000)
    path.write_bytes(payload)
    shared = cached(attachment(path), threshold=100_000)  # spills to a temporary file
    outputs = set()
    for i in range(30):
        raw = produce({"headers": {"to": f"u{i}@example.com"}, "body": {1: text(f"hi {i}"), 2: shared}})
        outputs.add(hashlib.sha256(parse(raw).get_payload(1).get_content()).digest())
    assert outputs == {hashlib.sha256(payload).digest()}
    body = shared["body"]
    assert body.encode_count == 1 and not body.in_memory
    small = cached(attachment(b"tiny", "t.txt"))
    produce({"body": {1: small}})
    produce({"body": {1: small}})
    assert small["body"].encode_count == 1 and small["body"].in_memory


def test_size_is_exact_without_producing(tmp_path):
    path = tmp_path / "f.bin"
    for n in (0, 1, 2, 3, 56, 57, 58, 1000, 99_999):
        path.write_bytes(os.urandom(n))
        source = message({
            "headers": {"subject": "s\u00e9"},
            "body": {"preamble": "p", 1: text("t\u00e9"), 2: attachment(path), 3: cached(attachment(path)),
                     "epilogue": "e"},
        })
        size = source.size
        assert size == len(b"".join(source))


def test_write_eml(tmp_path):
    target = tmp_path / "out.eml"
    size = write_eml({"headers": {"subject": "saved"}, "body": {1: attachment(PNG, "a.png")}}, target)
    raw = target.read_bytes()
    assert size == len(raw)
    assert parse(raw).get_payload(0).get_content() == PNG


def test_bad_tables_give_clear_errors():
    with pytest.raises(MessageError, match="mapping"):
        message("just a string")
    with pytest.raises(MessageError, match="body must be"):
        message({"body": 42})
    with pytest.raises(MessageError, match="unknown keys"):
        message({"headers": {}, "bdy": "typo"})
    with pytest.raises(FileNotFoundError):
        attachment("/nonexistent/file.pdf")
    with pytest.raises(TypeError, match="binary"):
        attachment(io.StringIO("text"))


def test_a_thousand_messages_share_one_encoding_of_a_1_mib_attachment(tmp_path):
    path = tmp_path / "shared.bin"
    path.write_bytes(os.urandom(1 << 20))
    shared = cached(attachment(path))
    sizes = set()
    for i in range(1000):
        source = message({"headers": {"to": f"user{i}@example.com"}, "body": {1: text("hi"), 2: shared}})
        sizes.add(sum(len(chunk) for chunk in source) - len(str(i)))
    assert shared["body"].encode_count == 1
    assert len(sizes) == 1  # the same length every time, once the varying To is taken out


# ------------------------------------------------------------------ rewinding a message


def test_a_message_of_replayable_parts_rewinds_to_the_same_bytes(tmp_path):
    from smtpstream.message import attachment, cached, message, text

    path = tmp_path / "data.bin"
    path.write_bytes(bytes(range(256)) * 1000)
    source = message({
        "headers": {"from": "a@example.com", "to": "b@example.com", "subject": "twice"},
        "body": {1: text("caf\u00e9\n"), 2: attachment(str(path)), 3: cached(attachment(b"xyz" * 999, "c.bin"))},
    })
    assert source.replayable
    first = next(source) + next(source)  # half-read, then rewound
    source.rewind()
    whole = b"".join(source)
    assert whole.startswith(first) and len(whole) == source.size
    source.rewind()
    assert b"".join(source) == whole  # same Date, Message-ID, boundaries, bodies


def test_a_message_with_a_one_shot_part_cannot_rewind(tmp_path):
    from smtpstream.message import attachment, message

    with open(tmp_path / "f.bin", "wb") as handle:
        handle.write(b"data")
    with open(tmp_path / "f.bin", "rb") as handle:  # an open file is read from where it is, once
        opened = message({"headers": {"subject": "x"}, "body": {1: attachment(handle)}})
        generated = message({"headers": {"subject": "y"}, "body": (line for line in [b"a\n", b"b\n"])})
        for source in (opened, generated):
            assert not source.replayable
            with pytest.raises(ValueError, match="one-shot"):
                source.rewind()


@pytest.mark.parametrize("line", [10, 998, 999, 5000])
def test_short_lines_is_promised_only_where_every_line_fits(line):
    """``short_lines`` lets the sender skip its 998-octet line check: an encoded text
    (whatever its input lines) promises it and keeps it; a body whose encoding the
    caller chose is measured."""
    from smtpstream.message import message, text

    part = text("x" * line + "\n" + "y" * 20)
    built = message({"headers": {"from": "a@example.com", "to": "b@example.com", **part["headers"]},
                     "body": part["body"]})
    data = b"".join(built)
    assert built.short_lines is True and max(map(len, data.split(b"\r\n"))) <= 998
    raw = message({"headers": {"from": "a@example.com", "to": "b@example.com",
                               "content-transfer-encoding": "8bit"}, "body": "x" * line + "\n"})
    assert raw.short_lines is (line <= 998)
    assert b"x" * line in b"".join(raw).split(b"\r\n")  # sent as given: the check is what stops it
