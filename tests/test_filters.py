"""Exact outputs of each filter, both implementations (the ``filters_impl`` fixture).

Vectors are LuaSocket's own (spec sections 2 and 3.3); the conformance module
checks many more against the real LuaSocket.
"""
from __future__ import annotations

import binascii
import importlib
import os
import subprocess
import sys

import pytest

from chains import run_chain

ALL_CLASSES = [
    "Base64Encoder", "Base64Decoder", "QPEncoder", "QPDecoder", "LineWrapper",
    "QPWrapper", "EOLNormalizer", "DotStuffer", "Base64WrapEncoder", "NormalizeStuffer",
]


def whole(impl, spec, data):
    return run_chain(impl, spec, [data])


# ---------------------------------------------------------------- vectors

@pytest.mark.parametrize(
    "spec, data, expected",
    [
        ("b64+wrap", b"hello world", b"aGVsbG8gd29ybGQ=\r\n"),
        ("b64wrap", b"hello world", b"aGVsbG8gd29ybGQ=\r\n"),
        ("b64", b"", b""),
        ("b64", b"a", b"YQ=="),
        ("b64", b"ab", b"YWI="),
        ("unb64", b"QQ==QUJD", b"AABC"),
        ("unb64", b"=AAA", b"\0\0\0"),
        ("unb64", b"Q===", b"@"),
        ("unb64", b"QQ=A", b"A"),
        ("unb64", b"Q=Q=", b"@\x04"),
        ("unb64", b"QUJ", b""),
        ("unb64", b"Q U\r\nJ-D_\xff", b"ABC"),
        ("qp+qpwrap", b"abc", b"abc=\r\n"),
        ("qp+qpwrap", b"a b", b"a=20b=\r\n"),
        ("qp+qpwrap", b"line1\nline2\n", b"line1=0Aline2=0A=\r\n"),
        ("normalize+qp+qpwrap", b"a b \r\n.x\r\n", b"a b=20\r\n.x\r\n"),
        ("qp+qpwrap", b"x" * 76 + b"\r\n", b"x" * 75 + b"=\r\nx\r\n"),
        ("qp+qpwrap", b"x" * 73 + b"=yy\r\n", b"x" * 73 + b"=\r\n=3Dyy\r\n"),
        ("qp", b"a  \r\n", b"a =20\r\n"),
        ("qp", b" \nX", b" =0AX"),
        ("qp", b"a \rX", b"a =0DX"),
        ("qp", b" \n", b"=20=0A=\r\n"),
        ("qp", b"abc\r", b"abc=0D=\r\n"),
        ("qp", b"ab\t", b"ab=09=\r\n"),
        ("qp", b"ma\xe7\xe3", b"ma=E7=E3"),
        ("qp-binary", b"x \r\n", b"x=20=0D=0A"),
        ("unqp", b"soft=\nbreak", b"soft=\nbreak"),
        ("unqp", b"line1\nline2\n", b"line1line2"),
        ("unqp", b"a\rbcd", b"acd"),
        ("unqp", b"=4G==4", b"=4G==4"),
        ("unqp", b"a=\r\nb=3d=3D", b"ab=="),
        ("unqp", b"tail=4", b"tail"),
        ("wrap:4", b"abcdefghij", b"abcd\r\nefgh\r\nij\r\n"),
        ("wrap:4", b"abcd\nef\r", b"abcd\r\nef\r\n"),
        ("wrap:4", b"abcd", b"abcd\r\n"),
        ("normalize", b"x\r\r\ny", b"x\r\n\r\n\r\ny"),
        ("normalize", b"a\n\n\rb", b"a\r\n\r\n\r\nb"),
        ("normalize", b"a\r\n\r\nb", b"a\r\n\r\nb"),
        ("normalize:LF", b"a\r\nb\n\rc\rd", b"a\nb\nc\nd"),
        ("normalize:NONE", b"a\r\nb\nc", b"abc"),
        ("stuff", b".", b".."),
        ("dot", b".", b"."),
        ("stuff", b"a\r\n.b\n.c\r.d\r\n..", b"a\r\n..b\n.c\r.d\r\n..."),
        ("normstuff", b".a\n.b\r.c", b"..a\r\n..b\r\n..c"),
    ],
)
def test_vectors(filters_impl, spec, data, expected):
    assert whole(filters_impl, spec, data) == expected


def test_base64_matches_binascii(filters_impl):
    data = os.urandom(100_000)
    assert whole(filters_impl, "b64", data) == binascii.b2a_base64(data, newline=False)
    assert whole(filters_impl, "unb64", binascii.b2a_base64(data)) == data


def test_base64_wrapped_lines_are_those_of_the_email_package(filters_impl):
    # The email package writes b2a_base64 of each 57-byte slice: 76 columns + newline.
    data = os.urandom(57 * 40 + 13)
    expected = b"".join(
        binascii.b2a_base64(data[i : i + 57]).replace(b"\n", b"\r\n")
        for i in range(0, len(data), 57)
    )
    assert whole(filters_impl, "b64wrap", data) == expected
    assert whole(filters_impl, "b64+wrap", data) == expected


# ---------------------------------------------------------------- state

def test_pending_and_state_attributes(filters_impl):
    enc = filters_impl.Base64Encoder()
    assert enc(b"abcd") == b"YWJj" and enc.pending == b"d"
    dec = filters_impl.Base64Decoder()
    assert dec(b"YWJjZA") == b"abc" and dec.pending == b"ZA"
    qp = filters_impl.QPEncoder()
    assert qp(b"a \r") == b"a" and qp.pending == b" \r"
    unqp = filters_impl.QPDecoder()
    assert unqp(b"x=4") == b"x" and unqp.pending == b"=4"
    wrapper = filters_impl.LineWrapper(10)
    assert wrapper(b"abc") == b"abc" and wrapper.left == 7 and wrapper.length == 10
    qpw = filters_impl.QPWrapper(left=2)
    assert qpw(b"ab") == b"a=\r\nb" and qpw.left == 75
    eol = filters_impl.EOLNormalizer(b"\n")
    assert eol(b"a\r") == b"a\n" and eol.state == 13
    assert eol(b"\nb") == b"b" and eol.state == 0
    dot = filters_impl.DotStuffer()
    assert dot.state == 2 and dot(b"x\r") == b"x\r" and dot.state == 1
    assert dot(b"\n.") == b"\n.." and dot.state == 0
    ns = filters_impl.NormalizeStuffer()
    assert ns(b"a\n") == b"a\r\n" and ns.state == 2 and ns.eol_state == 10


def test_initial_state_arguments(filters_impl):
    assert filters_impl.LineWrapper(5, left=0)(b"ab") == b"\r\nab"
    assert filters_impl.EOLNormalizer(b"\r\n", 13)(b"\nx") == b"x"
    assert filters_impl.EOLNormalizer(b"\r\n", 65)(b"\nx") == b"\r\nx"
    assert filters_impl.DotStuffer(0)(b".") == b"."
    assert filters_impl.DotStuffer(1)(b"\n.") == b"\n.."


def test_finished_filter_refuses_more_input(filters_impl):
    for name in ALL_CLASSES:
        f = getattr(filters_impl, name)()
        assert f.finished is False
        f(b"abc")
        f(None)
        assert f.finished is True
        with pytest.raises(ValueError, match="already flushed"):
            f(b"more")
        with pytest.raises(ValueError, match="already flushed"):
            f(None)


@pytest.mark.parametrize("name", ALL_CLASSES)
def test_accepts_every_bytes_like(filters_impl, name):
    data = b"Hello =\r\n.world \t\r\nxyz\n"
    outputs = set()
    for chunk in (data, bytearray(data), memoryview(data), memoryview(b"??" + data)[2:]):
        f = getattr(filters_impl, name)()
        out = f(chunk) + f(None)
        assert type(out) is bytes
        outputs.add(out)
    assert len(outputs) == 1


@pytest.mark.parametrize("name", ALL_CLASSES)
@pytest.mark.parametrize("bad", ["text", 12, 1.5, ["a"], object()])
def test_refuses_non_bytes(filters_impl, name, bad):
    f = getattr(filters_impl, name)()
    with pytest.raises(TypeError, match=f"{name} needs a bytes-like chunk or None, got {type(bad).__name__}"):
        f(bad)


@pytest.mark.parametrize("name, minimum", [("LineWrapper", 1), ("QPWrapper", 4), ("Base64WrapEncoder", 1)])
def test_length_must_be_positive_int(filters_impl, name, minimum):
    cls = getattr(filters_impl, name)
    for bad in (0, -1, minimum - 1):
        with pytest.raises(ValueError, match="at least"):
            cls(bad)
    for bad in ("76", 7.5, None if name == "Base64WrapEncoder" else b"1"):
        with pytest.raises(TypeError):
            cls(bad)
    assert cls(minimum)(b"") == b""


def test_marker_must_be_bytes(filters_impl):
    with pytest.raises(TypeError, match="marker"):
        filters_impl.QPEncoder("\r\n")
    with pytest.raises(TypeError, match="marker"):
        filters_impl.EOLNormalizer("\n")
    with pytest.raises(TypeError):
        filters_impl.DotStuffer("2")


def test_empty_chunks_change_nothing(filters_impl):
    data = b"a\r\n.b =c\r"
    for spec in ("b64", "unb64", "qp", "unqp", "wrap", "qpwrap", "normalize", "stuff", "b64wrap", "normstuff"):
        expected = run_chain(filters_impl, spec, [data])
        assert run_chain(filters_impl, spec, [b"", data[:3], b"", data[3:], b""]) == expected


# ---------------------------------------------------------------- selection

@pytest.mark.c_extension
def test_both_implementations_have_the_same_public_names():
    py = importlib.import_module("smtpstream._filters_py")
    c = importlib.import_module("smtpstream._filters")
    for name in ALL_CLASSES:
        public = lambda cls: {a for a in dir(cls) if not a.startswith("_")}  # noqa: E731
        assert public(getattr(c, name)) == public(getattr(py, name)), name


@pytest.mark.c_extension
def test_c_extension_is_built_and_selected():
    """Fails (never skips) when the build should have produced the extension."""
    from smtpstream import filters

    compiled = importlib.import_module("smtpstream._filters")
    assert filters.IMPLEMENTATION == "cython"
    assert filters.Base64Encoder is compiled.Base64Encoder


def test_environment_variable_selects_pure_python():
    code = "from smtpstream import filters; print(filters.IMPLEMENTATION, filters.DotStuffer.__module__)"
    env = dict(os.environ, SMTPSTREAM_NO_EXTENSIONS="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["python", "smtpstream._filters_py"]
