"""message.template: a layout built once gives, per message, the bytes message() gives."""
from __future__ import annotations

import email
import email.policy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpstream.message import (
    HeaderError,
    MessageError,
    alternative,
    attachment,
    html,
    message,
    shared,
    template,
    text,
)

DATE = "Tue, 01 Dec 2026 18:00:00 +0000"
FROM = "Shop <shop@example.com>"


def produce(source) -> bytes:
    return b"".join(source)


def merged(base: dict, own: dict) -> dict:
    """What the template promises: base's fields, own's replacing same-named ones in place, new ones after."""
    out = {k.lower(): v for k, v in base.items()}
    out.update({k.lower(): v for k, v in own.items()})
    return out


def test_a_single_part_message_is_byte_for_byte_what_message_builds_with_its_shared_body():
    body = "Dear customer,\nyour invoice is attached.\n.\nA line starting with a dot, and one with caf\u00e9.\n"
    layout = template({"headers": {"From": FROM, "Subject": "Invoice", "Reply-To": "help@example.com"},
                       "body": body})
    for n in range(3):
        own = {"to": f"Customer {n} <c{n}@example.com>", "subject": f"Invoice {n}", "date": DATE,
               "message-id": f"<{n}@example.com>"}
        headers = merged({"From": FROM, "Subject": "Invoice", "Reply-To": "help@example.com"}, own)
        got = produce(layout.message(own))
        assert got == produce(message({"headers": headers, "body": layout.body}))
        # Against the body built anew: the same fields and body (a shared body's
        # Content-* fields come last), each field's bytes the same.
        alone = produce(message({"headers": headers, "body": body}))
        got_head, got_body = got.split(b"\r\n\r\n", 1)
        alone_head, alone_body = alone.split(b"\r\n\r\n", 1)
        assert got_body == alone_body
        assert sorted(got_head.split(b"\r\n")) == sorted(alone_head.split(b"\r\n"))


@pytest.mark.parametrize("body", [
    {1: text("plain \u00e9t\u00e9\n"), 2: attachment(b"%PDF-1.4 " + bytes(range(256)) * 40, "a.pdf")},
    {1: alternative(text("plain\n"), html("<p>html</p>")), 2: attachment(b"\x00\x01" * 3000, "b.bin")},
], ids=["mixed", "nested"])
def test_a_multipart_layout_matches_message_with_the_same_shared_body(body):
    layout = template({"headers": {"from": FROM, "cc": "Boss <boss@example.com>"}, "body": body})
    for n in range(3):
        own = {"To": f"c{n}@example.com", "Subject": f"Report {n}", "Date": DATE, "Message-ID": f"<{n}@x>"}
        expected = produce(message({"headers": merged({"from": FROM, "cc": "Boss <boss@example.com>"}, own),
                                    "body": layout.body}))
        got = produce(layout.message(own))
        assert got == expected
        parsed = email.message_from_bytes(got, policy=email.policy.default)
        assert parsed["To"] == f"c{n}@example.com" and parsed["Cc"] == "Boss <boss@example.com>"
        assert parsed.is_multipart()


_words = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=60)


@settings(max_examples=150, deadline=None)
@given(subject=_words, name=_words, greeting=_words, local=st.from_regex(r"[a-z0-9]{1,20}", fullmatch=True),
       case=st.sampled_from(["subject", "Subject", "SUBJECT"]))
def test_random_fields_give_the_bytes_message_gives(subject, name, greeting, local, case):
    base = {"from": FROM, "subject": "default", "x-greeting": "Hello"}
    layout = template({"headers": base, "body": "Hello.\n"})
    own = {"to": f"{name} <{local}@example.com>".replace("\r", " ").replace("\n", " "),
           case: subject, "X-Greeting": greeting, "date": DATE, "message-id": "<fixed@example.com>"}
    try:
        expected = produce(message({"headers": merged(base, own), "body": layout.body}))
    except (HeaderError, MessageError) as exc:
        with pytest.raises(type(exc)):
            layout.message(own)
        return
    assert produce(layout.message(own)) == expected


def test_each_message_gets_its_own_date_and_message_id_and_envelope():
    layout = template({"headers": {"from": FROM, "bcc": "audit@example.com"}, "body": "x\n"})
    first, second = layout.message({"to": "a@example.com"}), layout.message({"to": "b@example.com"})
    assert first.message_id != second.message_id
    assert (first.sender, first.recipients) == ("shop@example.com", ["a@example.com", "audit@example.com"])
    assert second.recipients == ["b@example.com", "audit@example.com"]
    raw = produce(first)
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["Message-ID"] == first.message_id and parsed["Date"]
    assert b"audit@" not in raw  # Bcc: envelope only
    assert first.size == len(raw)


def test_bad_fields_are_refused_when_given_and_nothing_is_built():
    with pytest.raises(HeaderError):
        template({"headers": {"from": FROM, "subject": "a\r\nBcc: x@evil.example"}, "body": "x"})
    with pytest.raises(MessageError, match="zone"):
        template({"headers": {"from": FROM}, "body": "x", "zone": "CET"})
    with pytest.raises(MessageError, match="unknown keys"):
        template({"headers": {}, "body": "x", "bodyy": "y"})
    with pytest.raises(MessageError, match="brings its own content-type"):
        template({"headers": {"content-type": "text/html"}, "body": "x"})
    layout = template({"headers": {"from": FROM}, "body": "x"})
    with pytest.raises(HeaderError, match="header injection|CR, LF"):
        layout.message({"to": "a@example.com\r\nRCPT TO:<x@evil.example>"})
    with pytest.raises(MessageError, match="brings its own content-transfer-encoding"):
        layout.message({"Content-Transfer-Encoding": "8bit"})
    with pytest.raises(MessageError, match="given twice"):
        layout.message({"to": "a@example.com", "TO": "b@example.com"})


def test_unsubscribe_and_a_shared_body_given_as_such():
    body = shared("same body\n")
    layout = template({"headers": {"from": FROM}, "body": body})
    assert layout.body is body
    own = {"to": "a@example.com", "date": DATE, "message-id": "<1@x>"}
    got = produce(layout.message(own, unsubscribe="https://example.com/u/1"))
    expected = produce(message({"headers": merged({"from": FROM}, own), "body": body},
                               unsubscribe="https://example.com/u/1"))
    assert got == expected and b"List-Unsubscribe: <https://example.com/u/1>" in got
    with pytest.raises(MessageError, match="do not give that header too"):
        layout.message({"list-unsubscribe": "<mailto:u@example.com>"}, unsubscribe="https://example.com/u")


@pytest.mark.parametrize("part", [text("caf\u00e9 \u00e9t\u00e9\n"), alternative(text("plain\n"), html("<p>x</p>"))],
                         ids=["text", "alternative"])
def test_a_whole_part_as_the_body_keeps_its_content_fields(part):
    layout = template({"headers": {"from": FROM}, "body": part})
    own = {"to": "a@example.com", "subject": "s", "date": DATE, "message-id": "<1@x>"}
    got = produce(layout.message(own))
    parsed = email.message_from_bytes(got, policy=email.policy.default)
    assert parsed.get_content_type() == part["headers"]["content-type"].split(";")[0]
    head = got.split(b"\r\n\r\n", 1)[0]
    assert head.count(b"Content-Type:") == 1 and head.count(b"MIME-Version:") == 1
    if not parsed.is_multipart():  # the same bytes as the part given to message() directly
        alone = produce(message({"headers": {**merged({"from": FROM}, own), **part["headers"]},
                                 "body": part["body"]}))
        assert got.split(b"\r\n\r\n", 1)[1] == alone.split(b"\r\n\r\n", 1)[1]
        assert sorted(head.split(b"\r\n")) == sorted(alone.split(b"\r\n\r\n", 1)[0].split(b"\r\n"))


def test_a_campaign_body_without_placeholders_is_built_once_and_reads_the_same(tmp_path, monkeypatch):
    from smtpstream.campaign import template as campaign_template
    from smtpstream.campaign.manifest import Row
    from smtpstream.campaign.template import Template

    shared_file = tmp_path / "terms.pdf"
    shared_file.write_bytes(b"%PDF-1.4 terms" * 500)
    tpl = Template("Billing <billing@example.com>", "Invoice {n}", "Dear customer,\nsee the terms.\n",
                   html="<p>see the terms</p>", attach_all=[str(shared_file)], headers={"X-Campaign": "dec"})
    built = []
    monkeypatch.setattr(campaign_template, "template", lambda mesgt: built.append(mesgt) or template(mesgt))
    rows = [Row(number=n, key=str(n), email=f"c{n}@example.com", values={"n": str(n)}, name=f"Customer {n}",
                headers={"X-Campaign": "override"} if n == 2 else {}) for n in range(1, 4)]
    raws = [produce(tpl.source(row, f"<{row.key}@billing.example.com>")) for row in rows]
    assert len(built) == 1  # one layout for every row
    # What the per-row path (message()) builds for the same row reads the same.
    monkeypatch.setattr(tpl, "_same_body", False)
    for row, raw in zip(rows, raws):
        alone = produce(tpl.source(row, f"<{row.key}@billing.example.com>"))
        got, want = (email.message_from_bytes(r, policy=email.policy.default) for r in (raw, alone))
        fields = ("From", "To", "Subject", "Message-ID", "X-Campaign", "MIME-Version")
        assert [got[f] for f in fields] == [want[f] for f in fields]
        assert got["X-Campaign"] == ("override" if row.number == 2 else "dec")
        assert [p.get_content_type() for p in got.walk()] == [p.get_content_type() for p in want.walk()]
        assert [p.get_payload(decode=True) for p in got.walk() if not p.is_multipart()] == \
               [p.get_payload(decode=True) for p in want.walk() if not p.is_multipart()]
