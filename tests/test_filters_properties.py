"""Property tests (hypothesis) for every filter, both implementations.

* The output never depends on how the input is cut into chunks, with cuts
  drawn anywhere, so also inside CRLF, inside ``\\r\\n.`` and inside ``=XX``.
* Encoding then decoding gives the input back.
* Wrapped output never has a line longer than the limit.
* The fused filters give exactly the bytes of the chains they replace.
* The compiled and the pure-Python filters give the same bytes.
"""
from __future__ import annotations

import binascii
import importlib
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chains import cut, run_chain

# Bytes that matter to some filter, so random text hits every rule often.
SPECIAL = b"\r\n\r\n.. \t==0D3dAZaz09+/\x00\xff\x7f"
texts = st.lists(st.sampled_from(list(SPECIAL)), max_size=300).map(bytes)
binaries = st.binary(max_size=600)
inputs = st.one_of(texts, binaries)

SPECS = [
    "b64", "unb64", "qp", "qp-binary", "unqp", "wrap", "wrap:1", "wrap:7",
    "qpwrap", "qpwrp:4", "qpwrp:9", "normalize", "normalize:LF", "normalize:NONE",
    "stuff", "dot", "b64wrap", "b64wrap:5", "normstuff",
    "normalize+qp+qpwrap", "b64+wrap", "normalize+stuff", "normalize+unqp",
    "canon:relaxed", "canon:simple", "normalize+canon:relaxed",
]

EXAMPLES = settings(max_examples=150, deadline=None)


@st.composite
def data_and_cuts(draw, source=inputs):
    data = draw(source)
    points = sorted(draw(st.lists(st.integers(0, len(data)), max_size=12)))
    lengths, last = [], 0
    for p in points + [len(data)]:
        lengths.append(p - last)
        last = p
    return data, lengths


@pytest.mark.parametrize("spec", SPECS)
@EXAMPLES
@given(case=data_and_cuts())
def test_output_does_not_depend_on_chunking(filters_impl, spec, case):
    data, lengths = case
    whole = run_chain(filters_impl, spec, [data])
    assert run_chain(filters_impl, spec, cut(data, lengths)) == whole
    assert run_chain(filters_impl, spec, [data[i : i + 1] for i in range(len(data))]) == whole


@EXAMPLES
@given(case=data_and_cuts(binaries))
def test_base64_round_trip_and_oracle(filters_impl, case):
    data, lengths = case
    encoded = run_chain(filters_impl, "b64wrap", cut(data, lengths))
    assert encoded == run_chain(filters_impl, "b64+wrap", [data])
    assert encoded.replace(b"\r\n", b"") == binascii.b2a_base64(data, newline=False)
    assert run_chain(filters_impl, "unb64", cut(encoded, lengths)) == data
    assert all(len(line) <= 76 for line in encoded.split(b"\r\n"))


@EXAMPLES
@given(case=data_and_cuts(), binary=st.booleans())
def test_quoted_printable_round_trip(filters_impl, case, binary):
    data, lengths = case
    spec = "qp-binary+qpwrap" if binary else "normalize+qp+qpwrap"
    encoded = run_chain(filters_impl, spec, cut(data, lengths))
    lines = encoded.split(b"\r\n")
    assert all(len(line) <= 76 for line in lines)
    assert all(32 <= b <= 126 or b == 9 for line in lines for b in line)
    expected = data if binary else run_chain(filters_impl, "normalize", [data])
    assert run_chain(filters_impl, "unqp", cut(encoded, lengths)) == expected
    # An independent decoder reads it the same way.
    assert binascii.a2b_qp(encoded) == expected


@pytest.mark.parametrize("length", [1, 2, 5, 76, 998])
@EXAMPLES
@given(case=data_and_cuts())
def test_wrapped_lines_never_exceed_the_limit(filters_impl, length, case):
    data, lengths = case
    out = run_chain(filters_impl, f"wrap:{length}", cut(data, lengths))
    assert all(len(line) <= length for line in out.split(b"\r\n"))
    assert b"\r" not in out.replace(b"\r\n", b"")
    assert out.replace(b"\r\n", b"") == data.replace(b"\r", b"").replace(b"\n", b"")


@EXAMPLES
@given(case=data_and_cuts())
def test_normalize_and_stuff_give_clean_smtp_data(filters_impl, case):
    data, lengths = case
    out = run_chain(filters_impl, "normstuff", cut(data, lengths))
    assert out == run_chain(filters_impl, "normalize+stuff", [data])
    # Every line break is CRLF and no line starts with a lone '.'.
    assert b"\r" not in out.replace(b"\r\n", b"") and b"\n" not in out.replace(b"\r\n", b"")
    for line in out.split(b"\r\n"):
        assert not line.startswith(b".") or line.startswith(b"..")
    # Un-stuffing (RFC 5321 4.5.2) gives the normalised text back.
    unstuffed = b"\r\n".join(l[1:] if l.startswith(b".") else l for l in out.split(b"\r\n"))
    assert unstuffed == run_chain(filters_impl, "normalize", [data])


NO_EXTENSIONS = os.environ.get("SMTPSTREAM_NO_EXTENSIONS", "") not in ("", "0")


@pytest.mark.c_extension
@pytest.mark.parametrize("spec", SPECS)
@EXAMPLES
@given(case=data_and_cuts())
def test_compiled_and_pure_give_the_same_bytes(spec, case):
    data, lengths = case
    c = importlib.import_module("smtpstream._filters")
    py = importlib.import_module("smtpstream._filters_py")
    assert run_chain(c, spec, cut(data, lengths)) == run_chain(py, spec, cut(data, lengths))


@pytest.mark.c_extension
@pytest.mark.parametrize("name", ["LineWrapper", "QPWrapper"])
@settings(max_examples=200, deadline=None)
@given(length=st.one_of(st.integers(4, 100), st.integers(2**62, 2**80)),
       left=st.one_of(st.none(), st.integers(-(2**80), 2**80), st.integers(-5, 100)),
       data=st.binary(max_size=300), lengths=st.lists(st.integers(0, 40), max_size=8))
def test_compiled_and_pure_report_the_same_left_for_any_int(name, length, left, data, lengths):
    # ints beyond a C long long are clamped the same way in both twins (issue 12, item 10)
    filters = [getattr(importlib.import_module(m), name)(length, left)
               for m in ("smtpstream._filters", "smtpstream._filters_py")]
    assert filters[0].left == filters[1].left and filters[0].length == filters[1].length
    for piece in cut(data, lengths):
        assert filters[0](piece) == filters[1](piece)
        assert filters[0].left == filters[1].left
    assert filters[0](None) == filters[1](None) and filters[0].left == filters[1].left


def _crlf_lines_by_definition(data: bytes) -> bool:
    # No ".", and removing every CRLF pair leaves no CR or LF.
    rest = data.replace(b"\r\n", b"")
    return b"." not in data and b"\r" not in rest and b"\n" not in rest


@settings(max_examples=2000, deadline=None)
@given(data=st.lists(st.sampled_from([b"QUJD", b"\r\n", b"\r", b"\n", b".", b"x" * 70, b""]), max_size=20).map(b"".join))
def test_crlf_lines_only_is_its_definition(filters_impl, data):
    assert filters_impl.crlf_lines_only(data) is _crlf_lines_by_definition(data)


def _stuffed_lines_by_definition(data: bytes) -> bool:
    # Whole CRLF lines, no other CR or LF, none starting with ".".
    if not data:
        return True
    if not data.endswith(b"\r\n"):
        return False
    lines = data[:-2].split(b"\r\n")
    return all(b"\r" not in line and b"\n" not in line and not line.startswith(b".") for line in lines)


@settings(max_examples=2000, deadline=None)
@given(data=st.lists(st.sampled_from([b"ab", b"\r\n", b"\r", b"\n", b".", b"x" * 70, b""]), max_size=20).map(b"".join))
def test_stuffed_lines_only_is_its_definition_and_the_stuffer_leaves_such_bytes_alone(filters_impl, data):
    holds = filters_impl.stuffed_lines_only(data)
    assert holds is _stuffed_lines_by_definition(data)
    if holds:  # the promise the sender relies on to skip the stuffer
        stuffer = filters_impl.NormalizeStuffer()
        stuffer(b"Subject: x\r\n\r\n")
        assert stuffer(data) == data and stuffer.state == 2 and stuffer.eol_state == 0


def test_crlf_lines_only_on_encoded_lines_and_one_flaw(filters_impl):
    lines = binascii.b2a_base64(bytes(range(256)) * 40, newline=False)
    body = b"\r\n".join(lines[i:i + 76] for i in range(0, len(lines), 76)) + b"\r\n"
    assert filters_impl.crlf_lines_only(body)
    for flaw in (b".", b"\r", b"\n"):
        for where in (0, 1, 77, len(body) // 2, len(body) - 1):
            assert not filters_impl.crlf_lines_only(body[:where] + flaw + body[where:]), (flaw, where)
    with pytest.raises(TypeError):
        filters_impl.crlf_lines_only(bytearray(body))
