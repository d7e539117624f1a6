"""LuaSocket's attachment idiom on the fast path: fused filter chains, same bytes.

``ltn12.filter.chain`` replaces fresh adjacent filters by their fused filter
(smtpstream.fused); the sender then writes base64 lines without normalising
or stuffing them. Checked here:

* any chain of filters, however the input is cut, gives the bytes of its
  filters run one after the other (both twins, via ``filters_impl``);
* which chains fuse, and which never do (filters fed already, mixed twins);
* what a server stores is the same for the idiom and for the same filters
  run by hand into a plain generator, in DATA and in BDAT mode; marking
  chunks as CleanLines, truthfully or not, never changes it.
"""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

import pytest

from smtpstream import filters, ltn12, mime
from smtpstream.filters import CleanLines
from smtpstream.fused import Base64Lines, fuse
from smtpstream.message import message
from smtpstream.message.bodies import SourceBody
from smtpstream.smtp import Session

from chains import cut, make_stage, run_chain
from smtp_servers import HOST, ScriptedServer

SPECIAL = b"\r\n\r\n.. \t==0D3dAZaz09+/\x00\xff\x7f"
texts = st.lists(st.sampled_from(list(SPECIAL)), max_size=400).map(bytes)
inputs = st.one_of(texts, st.binary(max_size=700))

# Stages that fuse, and some that stand between them.
STAGES = ["b64", "wrap", "wrap:1", "wrap:7", "wrap:76", "wrap:1000", "normalize", "normalize:LF",
          "stuff", "dot", "normstuff", "qp", "qpwrap", "b64wrap:5"]
chains_of = st.lists(st.sampled_from(STAGES), min_size=2, max_size=5)
# Chains more likely to fuse: base64 and a wrapper, with what may follow them.
def idioms_wrapping_at(wrappers):
    return st.tuples(
        st.sampled_from(wrappers), st.lists(st.sampled_from(["normalize", "stuff", "normstuff"]), max_size=3),
    ).map(lambda t: ["b64", t[0], *t[1]])


idioms = idioms_wrapping_at(["wrap", "wrap:1", "wrap:57", "wrap:76", "wrap:2000"])
# For a server: lines within RFC 5321's limit (any chain, then a wrapper).
wire_chains = st.one_of(idioms_wrapping_at(["wrap", "wrap:1", "wrap:57", "wrap:998"]),
                        chains_of.map(lambda c: [*c, "wrap:76"]))

EXAMPLES = settings(max_examples=150, deadline=None)


@st.composite
def data_and_cuts(draw):
    data = draw(inputs)
    points = sorted(draw(st.lists(st.integers(0, len(data)), max_size=10)))
    lengths, last = [], 0
    for p in points + [len(data)]:
        lengths.append(p - last)
        last = p
    return data, lengths


def through_chain(impl, specs, chunks) -> list[bytes]:
    f = ltn12.filter.chain(*[make_stage(impl, s) for s in specs])
    return list(ltn12.source.chain(ltn12.source.table(chunks), f))


@EXAMPLES
@given(specs=st.one_of(chains_of, idioms), case=data_and_cuts())
def test_a_fused_chain_gives_the_bytes_of_its_filters(filters_impl, specs, case):
    data, lengths = case
    reference = run_chain(filters_impl, "+".join(specs), [data])
    assert b"".join(through_chain(filters_impl, specs, cut(data, lengths))) == reference
    # a chain over a chain not read yet is one chain, fused across the two
    inner = ltn12.source.chain(ltn12.source.table(cut(data, lengths)), make_stage(filters_impl, specs[0]))
    outer = ltn12.source.chain(inner, *[make_stage(filters_impl, s) for s in specs[1:]])
    assert b"".join(outer) == reference


@EXAMPLES
@given(specs=idioms, case=data_and_cuts())
def test_base64_and_a_wrapper_are_one_filter_whose_chunks_are_clean_lines(filters_impl, specs, case):
    data, lengths = case
    stages = [make_stage(filters_impl, s) for s in specs]
    f = ltn12.filter.chain(*stages)
    assert type(f) is Base64Lines and f.length == stages[1].length
    assert type(f._encoder) is filters_impl.Base64WrapEncoder  # the twin the filters came from
    out = list(ltn12.source.chain(ltn12.source.table(cut(data, lengths)), f))
    assert all(type(chunk) is CleanLines and chunk.holds() for chunk in out)
    assert b"".join(out) == run_chain(filters_impl, "+".join(specs), [data])


def test_which_chains_fuse(filters_impl):
    impl = filters_impl
    assert impl.EOLNormalizer().marker == b"\r\n" and impl.EOLNormalizer(bytearray(b"\n")).marker == b"\n"
    assert type(ltn12.filter.chain(impl.EOLNormalizer(), impl.DotStuffer())) is impl.NormalizeStuffer
    kept = fuse([impl.QPEncoder(), impl.EOLNormalizer(), impl.DotStuffer(), impl.Base64Encoder()])
    assert [type(f) for f in kept] == [impl.QPEncoder, impl.NormalizeStuffer, impl.Base64Encoder]
    lines = fuse([impl.Base64Encoder(), impl.LineWrapper(64), impl.EOLNormalizer(), impl.DotStuffer(),
                  impl.NormalizeStuffer()])
    assert [type(f) for f in lines] == [Base64Lines] and lines[0].length == 64


def test_filters_fed_already_or_of_two_twins_are_never_fused(filters_impl):
    impl = filters_impl
    other = pytest.importorskip("smtpstream._filters" if impl.__name__.endswith("_py") else "smtpstream._filters_py")
    fed = impl.Base64Encoder()
    fed(b"x")  # one byte pending
    mid_line = impl.LineWrapper(76, 10)
    open_break = impl.EOLNormalizer(b"\r\n")
    open_break(b"a\r")
    flushed = impl.LineWrapper()
    flushed(None)
    cases = [
        [fed, impl.LineWrapper()],
        [impl.Base64Encoder(), mid_line],
        [impl.Base64Encoder(), flushed],
        [open_break, impl.DotStuffer()],
        [impl.EOLNormalizer(b"\n"), impl.DotStuffer()],  # not CRLF: the stuffer would see other lines
        [impl.EOLNormalizer(), impl.DotStuffer(0)],  # mid-line: a leading dot is not stuffed
        [impl.Base64Encoder(), other.LineWrapper()],
        [impl.Base64Encoder(), impl.LineWrapper(1 << 70)],  # clamped in the compiled twin
    ]
    for chain in cases:
        assert fuse(chain) == chain


def test_base64_lines_keep_a_normaliser_that_would_change_them(filters_impl):
    impl = filters_impl
    lines = fuse([impl.Base64Encoder(), impl.LineWrapper()])[0]
    lf = impl.EOLNormalizer(b"\n")
    assert fuse([lines, lf]) == [lines, lf]
    wrapper = impl.LineWrapper(10)
    assert fuse([lines, wrapper]) == [lines, wrapper]


# ------------------------------------------------------------------ on the wire

CHUNKING = ("PIPELINING", "CHUNKING", "8BITMIME")
HEADERS = {"from": "a@example.com", "to": "b@example.com", "subject": "idiom",
           "date": "Mon, 1 Jan 2024 00:00:00 +0000", "message-id": "<fixed@example.com>",
           "content-type": "application/octet-stream", "content-transfer-encoding": "BASE64"}


def by_hand(impl, specs, chunks):
    """The same filters, one after the other, into a plain generator: nothing marked."""
    stages = [make_stage(impl, s) for s in specs]
    for chunk in chunks:
        for stage in stages:
            chunk = stage(chunk)
        if chunk:
            yield bytes(chunk)
    tail = b""
    for stage in stages:
        tail = stage(tail) + stage(None)
    if tail:
        yield bytes(tail)


def stored(port, bodies) -> list[bytes]:
    with ScriptedServer(extensions=CHUNKING) if port == "bdat" else ScriptedServer() as server:
        with Session(server=HOST, port=server.port, domain="client.example") as session:
            for body in bodies:
                source = message({"headers": HEADERS, "body": body})
                session.send(from_="a@example.com", rcpt=["b@example.com"], source=source)
    assert [m.mode for m in server.messages] == ["BDAT" if port == "bdat" else "DATA"] * len(bodies)
    return [m.content for m in server.messages]


WIRE = settings(max_examples=25, deadline=None)


@pytest.mark.parametrize("mode", ["data", "bdat"])
@WIRE
@given(specs=wire_chains, case=data_and_cuts(), big=st.booleans())
def test_the_idiom_stores_what_the_filters_run_by_hand_store(filters_impl, mode, specs, case, big):
    data, lengths = case
    if big:  # past the sender's write and BDAT sizes
        data = data * (300_000 // max(1, len(data))) if data else bytes(range(256)) * 1200
        lengths = [65536, 1, 2, 100_000]
    chunks = cut(data, lengths)
    idiom = ltn12.source.chain(ltn12.source.table(chunks),
                               ltn12.filter.chain(*[make_stage(filters_impl, s) for s in specs]))
    fused, plain = stored(mode, [idiom, by_hand(filters_impl, specs, chunks)])
    assert fused == plain


@pytest.mark.parametrize("mode", ["data", "bdat"])
@WIRE
@given(pieces=st.lists(st.tuples(st.one_of(texts, st.binary(max_size=60)), st.booleans()), max_size=12))
def test_a_chunk_marked_clean_lines_truthfully_or_not_is_stored_as_plain_bytes(mode, pieces):
    marked = [CleanLines(p) if mark else p for p, mark in pieces]
    plain = [bytes(p) for p, _ in pieces]
    assert stored(mode, [iter(marked), iter(plain)]) == [stored(mode, [iter(plain)])[0]] * 2


def test_the_seed_idiom_is_a_seven_bit_body_of_short_lines(tmp_path):
    path = tmp_path / "image.png"
    path.write_bytes(bytes(range(256)) * 40)

    def idiom(*wrap):
        return ltn12.source.chain(ltn12.source.file(open(path, "rb")),
                                  ltn12.filter.chain(mime.encode("base64"), mime.wrap(*wrap)))

    body = SourceBody(idiom())
    assert body.seven_bit and body.short_lines
    long_lines = SourceBody(idiom("base64", 1200))
    assert long_lines.seven_bit and not long_lines.short_lines  # the sender checks those lines
    # an unfused source says nothing about its lines
    plain = SourceBody(ltn12.source.chain(ltn12.source.file(open(path, "rb")), mime.encode("base64")))
    assert not plain.seven_bit and not plain.short_lines
    src = idiom()
    next(src)  # read already: no longer known from its start
    assert not SourceBody(src).short_lines
    encoder = filters.Base64WrapEncoder(76)
    assert b"".join(SourceBody(idiom()).chunks()) == encoder(path.read_bytes()) + encoder(None)
