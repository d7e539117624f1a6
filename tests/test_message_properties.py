"""Round trips of random message trees through the standard library's parser."""
from __future__ import annotations

import email
import email.policy

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smtpstream.message import attachment, message, text

unicode_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters="\x00"),
    min_size=1, max_size=60,
).filter(lambda s: s.strip() == s and "  " not in s)
filenames = unicode_text.filter(lambda s: "/" not in s and "\\" not in s and '"' not in s)
# Python 3.11's address parser merges some white space (gh-128110), so display
# names here are single words; tests/test_headers.py covers spaced names.
display_names = st.text(alphabet=st.characters(whitelist_categories=("L", "N")), min_size=1, max_size=30)
body_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=400)


@st.composite
def trees(draw, depth=0):
    kind = draw(st.sampled_from(["text", "attachment", "multipart"] if depth < 3 else ["text", "attachment"]))
    if kind == "text":
        content = draw(body_text)
        return {"kind": "text", "content": content}, text(content)
    if kind == "attachment":
        data = draw(st.binary(max_size=600))
        name = draw(filenames)
        return {"kind": "attachment", "data": data, "name": name}, attachment(data, name)
    children = draw(st.lists(trees(depth=depth + 1), min_size=1, max_size=3))
    return (
        {"kind": "multipart", "children": [c[0] for c in children]},
        {"body": {"parts": [c[1] for c in children]}},
    )


def check(expected, part):
    if expected["kind"] == "text":
        # Text is carried with CRLF line breaks: any CR, LF or CRLF is one break.
        want = expected["content"].replace("\r\n", "\n").replace("\r", "\n")
        assert part.get_content().replace("\r\n", "\n") == want
    elif expected["kind"] == "attachment":
        assert part.get_filename() == expected["name"]
        # The decoded payload, not get_content(): its type depends on the MIME type
        # guessed from the name (a name like "0.A" is text/vnd.a, decoded to str).
        assert part.get_payload(decode=True) == expected["data"]
    else:
        children = list(part.iter_parts())
        assert len(children) == len(expected["children"])
        for e, p in zip(expected["children"], children):
            check(e, p)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=trees(), subject=unicode_text, name=display_names)
def test_random_trees_round_trip(tree, subject, name):
    expected, part = tree
    quoted = name.replace("\\", "\\\\").replace('"', '\\"')
    table = {"headers": {"subject": subject, "from": f'"{quoted}" <sender@example.com>'}}
    table["body"] = part.get("body") if expected["kind"] == "multipart" else {"parts": [part]}
    if expected["kind"] != "multipart":
        expected = {"kind": "multipart", "children": [expected]}
    source = message(table)
    size = source.size
    raw = b"".join(source)
    assert size == len(raw)
    lines = raw.split(b"\r\n")
    assert lines[-1] == b"" and all(len(line) <= 998 for line in lines)
    assert b"\r" not in raw.replace(b"\r\n", b"") and b"\n" not in raw.replace(b"\r\n", b"")
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert str(msg["Subject"]) == subject
    # The name has no spaces; 3.11 keeps the space between its encoded words (gh-128110).
    assert msg["From"].addresses[0].display_name.replace(" ", "") == name
    check(expected, msg)
