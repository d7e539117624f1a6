"""smtpstream.ltn12: sources, sinks, filters and pumps (LuaSocket's ltn12.lua, Python contract)."""
from __future__ import annotations

import binascii
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpstream import ltn12
from smtpstream.ltn12 import filter as lfilter
from smtpstream.ltn12 import pump, sink, source

# --------------------------------------------------------------------------
# Test filters (docs/filters.md contract), each with an independent whole-input oracle.


class Upper:
    def __init__(self):
        self.finished = False

    def __call__(self, chunk):
        if self.finished:
            raise ValueError("Upper was already flushed")
        if chunk is None:
            self.finished = True
            return b""
        return bytes(chunk).upper()


class HoldLast:
    """Holds the last byte back until the end, so the flush carries data."""

    def __init__(self):
        self.held = b""
        self.finished = False

    def __call__(self, chunk):
        if self.finished:
            raise ValueError("HoldLast was already flushed")
        if chunk is None:
            self.finished = True
            return self.held
        data = self.held + bytes(chunk)
        self.held = data[-1:]
        return data[:-1]


class Doubler:
    def __call__(self, chunk):
        if chunk is None:
            return b""
        return bytes(b for b in bytes(chunk) for _ in (0, 1))


class Suffix:
    """Passes data through; adds ``tag`` at the end."""

    def __init__(self, tag=b"!"):
        self.tag = tag

    def __call__(self, chunk):
        return self.tag if chunk is None else bytes(chunk)


class Recorder:
    """Wraps a filter and records the calls it gets."""

    def __init__(self, f):
        self.f = f
        self.calls = []

    def __call__(self, chunk):
        self.calls.append(chunk)
        return self.f(chunk)


WHOLE = {
    Upper: bytes.upper,
    HoldLast: lambda d: d,
    Doubler: lambda d: bytes(b for b in d for _ in (0, 1)),
    Suffix: lambda d: d + b"!",
}


def recording_sink():
    calls = []
    return calls.append, calls


def callable_source(chunks):
    it = iter(chunks)
    return lambda: next(it, None)


# --------------------------------------------------------------------------
# module layout


def test_blocksize_is_64k():
    assert ltn12.BLOCKSIZE == 65536


# --------------------------------------------------------------------------
# source.iterate


def test_iterate_iterable_and_callable():
    assert list(source.iterate([b"a", b"bc"])) == [b"a", b"bc"]
    assert list(source.iterate(c for c in (b"x", b"y"))) == [b"x", b"y"]
    # b"" from a callable source is a data-less chunk, not the end
    assert list(source.iterate(callable_source([b"a", b"", b"b"]))) == [b"a", b"", b"b"]


@pytest.mark.parametrize("bad", [b"abc", "abc", bytearray(b"abc")])
def test_iterate_rejects_bare_data(bad):
    with pytest.raises(TypeError, match=r"not a single .*ltn12\.source\.string"):
        source.iterate(bad)


def test_iterate_rejects_non_sources():
    with pytest.raises(TypeError, match="int object is not a source"):
        source.iterate(42)


# --------------------------------------------------------------------------
# simple sources


def test_empty():
    assert list(source.empty()) == []


def test_error_with_message_raises_source_error_every_time():
    src = source.error("boom")
    for _ in range(2):
        with pytest.raises(ltn12.SourceError, match="^boom$"):
            next(src)


def test_error_with_exception_instance():
    exc = OSError("disk gone")
    with pytest.raises(OSError) as info:
        list(source.error(exc))
    assert info.value is exc


def test_error_rejects_other_types():
    with pytest.raises(TypeError, match="exception or a message string, got int"):
        source.error(3)


def test_string_slices():
    assert list(source.string(b"abcdefg", 3)) == [b"abc", b"def", b"g"]
    assert list(source.string(b"abcdef", 3)) == [b"abc", b"def"]
    assert list(source.string(b"x" * 65537)) == [b"x" * 65536, b"x"]


def test_string_empty_and_none_give_no_chunk():
    assert list(source.string(b"")) == []
    assert list(source.string(None)) == []


def test_string_copies_mutable_data():
    data = bytearray(b"abcd")
    src = source.string(data, 2)
    data[:] = b"zzzz"
    assert list(src) == [b"ab", b"cd"]
    assert list(source.string(memoryview(b"hello"), 4)) == [b"hell", b"o"]


def test_string_bad_input():
    with pytest.raises(TypeError, match="got str"):
        source.string("text")
    with pytest.raises(TypeError, match="got int"):
        source.string(5)
    with pytest.raises(ValueError, match="blocksize must be >= 1"):
        source.string(b"a", 0)


def test_table_skips_holes_keeps_empty_chunks():
    assert list(source.table([b"a", None, b"", b"b"])) == [b"a", b"", b"b"]


def test_table_bad_input():
    with pytest.raises(TypeError, match="item 1 is str"):
        list(source.table([b"a", "b"]))
    with pytest.raises(TypeError, match="needs a list of chunks, got int"):
        source.table(3)
    with pytest.raises(TypeError, match="needs a list of chunks, got bytes"):
        source.table(b"ab")


# --------------------------------------------------------------------------
# source.file


def test_file_reads_blocks_then_closes():
    handle = io.BytesIO(b"0123456789")
    src = source.file(handle, blocksize=4)
    assert next(src) == b"0123"
    assert not handle.closed
    assert list(src) == [b"4567", b"89"]
    assert handle.closed


def test_file_none_handle_is_an_error_source():
    with pytest.raises(ltn12.SourceError, match="^unable to open file$"):
        list(source.file(None))
    with pytest.raises(ltn12.SourceError, match="^no such file$"):
        list(source.file(None, "no such file"))


def test_file_rejects_text_mode(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("hi")
    with open(path) as handle:
        with pytest.raises(TypeError, match=r"binary handle \(open\(path, 'rb'\)\)"):
            source.file(handle)
    with pytest.raises(TypeError, match="binary handle"):
        source.file(io.StringIO("hi"))


def test_file_closes_when_read_fails():
    class Failing(io.BytesIO):
        def read(self, n=-1):
            if self.tell() >= 2:
                raise OSError("read error")
            return super().read(n)

    handle = Failing(b"abcdef")
    src = source.file(handle, blocksize=2)
    assert next(src) == b"ab"
    with pytest.raises(OSError, match="read error"):
        next(src)
    assert handle.closed


# --------------------------------------------------------------------------
# source.chain


def test_source_chain_one_filter_exact_chunks():
    assert list(source.chain(source.string(b"abcdef", 4), Upper())) == [b"ABCD", b"EF"]


def test_source_chain_flushes_held_output():
    out = list(source.chain(source.table([b"ab", b"c", b"d"]), HoldLast()))
    assert out == [b"a", b"b", b"c", b"d"]


def test_source_chain_skips_empty_output():
    # HoldLast gives b"" for the one-byte chunk and for b"" input.
    out = list(source.chain(source.table([b"a", b"", b"bc"]), HoldLast()))
    assert out == [b"ab", b"c"]


def test_source_chain_several_filters_is_filter_chain():
    chunks = [b"ab", b"cd"]
    a = list(source.chain(chunks, HoldLast(), Doubler(), Suffix(b"#")))
    b = list(source.chain(chunks, lfilter.chain(HoldLast(), Doubler(), Suffix(b"#"))))
    assert a == b == [b"aa", b"bbcc", b"dd#"]


def test_source_chain_accepts_callable_source():
    assert list(source.chain(callable_source([b"x", b"", b"y"]), Upper())) == [b"X", b"Y"]


def test_source_chain_source_error_drops_held_output():
    # LuaSocket behaviour kept: the filter is not flushed on a source error.
    def failing():
        yield b"abc"
        raise OSError("boom")

    f = Recorder(HoldLast())
    src = source.chain(failing(), f)
    assert next(src) == b"ab"
    with pytest.raises(OSError, match="boom"):
        next(src)
    assert f.calls == [b"abc"]


def test_source_chain_after_end_stays_ended():
    f = Recorder(Upper())
    src = source.chain([b"a"], f)
    assert list(src) == [b"A"]
    assert list(src) == []
    assert f.calls == [b"a", None]


def test_source_chain_filter_returning_none_is_an_error():
    with pytest.raises(TypeError, match="returned None for a data chunk"):
        list(source.chain([b"a"], lambda c: None))
    with pytest.raises(TypeError, match="returned None at end of input"):
        list(source.chain([b"a"], lambda c: None if c is None else c))


def test_source_chain_bad_filter():
    with pytest.raises(TypeError, match="int object is not a filter"):
        source.chain([b"a"], 3)


# --------------------------------------------------------------------------
# source.cat / simplify / rewind


def test_cat():
    src = source.cat(source.string(b"ab"), [b"c", b""], callable_source([b"d"]), source.empty())
    assert list(src) == [b"ab", b"c", b"", b"d"]
    assert list(source.cat()) == []


def test_cat_stays_on_failing_source():
    src = source.cat([b"a"], source.error("bad"), [b"b"])
    assert next(src) == b"a"
    for _ in range(2):
        with pytest.raises(ltn12.SourceError, match="bad"):
            next(src)


def test_cat_rejects_non_source_at_once():
    with pytest.raises(TypeError, match="not a source"):
        source.cat([b"a"], 1.5)


def test_simplify_follows_replacements():
    second = callable_source([b"c", b"d"])
    answers = iter([b"a", (b"b", second)])
    fancy = lambda: next(answers)  # noqa: E731
    assert list(source.simplify(fancy)) == [b"a", b"b", b"c", b"d"]


def test_simplify_error_pair():
    with pytest.raises(ltn12.SourceError, match="^broken$"):
        list(source.simplify(lambda: (None, "broken")))
    with pytest.raises(TypeError, match="needs a callable source"):
        source.simplify([b"a"])


def test_rewind_push_is_lifo_and_works_after_end():
    src = source.rewind([b"1", b"2"])
    assert next(src) == b"1"
    src.push(b"x")
    src.push(b"y")
    assert [next(src), next(src), next(src)] == [b"y", b"x", b"2"]
    assert list(src) == []
    src.push(b"z")
    assert src() == b"z"
    assert src() is None
    with pytest.raises(TypeError, match="cannot push None"):
        src.push(None)


def test_rewind_is_a_source():
    src = source.rewind(source.string(b"abc", 2))
    first = next(src)
    src.push(first)
    snk, t = sink.table()
    pump.all(src, snk)
    assert t == [b"ab", b"c"]


# --------------------------------------------------------------------------
# sinks


def test_sink_table_keeps_empty_chunks_ignores_none():
    snk, t = sink.table()
    for chunk in (b"a", b"", b"b", None):
        snk(chunk)
    assert t == [b"a", b"", b"b"]
    existing = [b"0"]
    snk, t = sink.table(existing)
    snk(b"1")
    assert t is existing and existing == [b"0", b"1"]


def test_sink_table_bad_argument():
    with pytest.raises(TypeError, match="needs a list, got int"):
        sink.table(1)


def test_sink_file_writes_and_closes():
    handle = io.BytesIO()
    snk = sink.file(handle)
    snk(b"ab")
    snk(b"")
    snk(memoryview(b"cd"))
    assert handle.getvalue() == b"abcd"
    snk(None)
    assert handle.closed


def test_sink_file_finishes_short_writes():
    class Raw:
        def __init__(self):
            self.data = bytearray()

        def write(self, chunk):  # like a raw file: at most 3 bytes a call
            part = bytes(chunk[:3])
            self.data += part
            return len(part)

        def close(self):
            pass

    raw = Raw()
    snk = sink.file(raw)
    snk(b"0123456789")
    assert bytes(raw.data) == b"0123456789"


def test_sink_file_bad_inputs():
    with pytest.raises(TypeError, match="needs bytes-like chunks, got str"):
        sink.file(io.BytesIO())("text")
    with pytest.raises(TypeError, match=r"binary handle \(open\(path, 'wb'\)\)"):
        sink.file(io.StringIO())
    with pytest.raises(ltn12.SinkError, match="^unable to open file$"):
        sink.file(None)(b"a")
    with pytest.raises(ltn12.SinkError, match="^denied$"):
        sink.file(None, "denied")(None)


def test_sink_null_and_error():
    snk = sink.null()
    assert snk(b"a") is None and snk(None) is None
    failing = sink.error("full")
    for chunk in (b"a", None):
        with pytest.raises(ltn12.SinkError, match="^full$"):
            failing(chunk)
    with pytest.raises(KeyError):
        sink.error(KeyError("k"))(b"a")


def test_sink_chain_exact_calls():
    f = Recorder(HoldLast())
    snk, calls = recording_sink()
    chained = sink.chain(f, snk)
    for chunk in (b"ab", b"", b"c", b"d", None):
        chained(chunk)
    assert calls == [b"a", b"b", b"c", b"d", None]
    assert f.calls == [b"ab", b"c", b"d", None]  # b"" never reaches the filter


def test_sink_chain_several_filters():
    snk, calls = recording_sink()
    chained = sink.chain(HoldLast(), Doubler(), Suffix(b"#"), snk)
    for chunk in (b"ab", b"cd", None):
        chained(chunk)
    assert calls == [b"aa", b"bbcc", b"dd#", None]


def test_sink_chain_bad_use():
    with pytest.raises(TypeError, match="at least one filter and a sink"):
        sink.chain(sink.null())
    with pytest.raises(TypeError, match="not a sink"):
        sink.chain(Upper(), 3)
    with pytest.raises(TypeError, match="returned None for a data chunk"):
        sink.chain(lambda c: None, sink.null())(b"a")


def test_sink_simplify_follows_replacements():
    snk2, calls2 = recording_sink()
    calls1 = []

    def fancy(chunk):
        calls1.append(chunk)
        return (1, snk2)

    simple = sink.simplify(fancy)
    for chunk in (b"a", b"b", None):
        simple(chunk)
    assert calls1 == [b"a"]
    assert calls2 == [b"b", None]


def test_sink_simplify_failure_pair():
    with pytest.raises(ltn12.SinkError, match="^nope$"):
        sink.simplify(lambda chunk: (None, "nope"))(b"a")
    with pytest.raises(TypeError, match="needs a callable sink"):
        sink.simplify([])


# --------------------------------------------------------------------------
# filter.chain / filter.cycle


def test_filter_chain_single_is_the_filter():
    f = Upper()
    assert lfilter.chain(f) is f


def test_filter_chain_flushes_in_order():
    # out = f1(None); out = f2(out) + f2(None): the suffix comes after the held byte.
    f = lfilter.chain(HoldLast(), Suffix(b"!"))
    assert [f(b"abc"), f(None)] == [b"ab", b"c!"]


def test_filter_chain_feeds_each_output_to_next():
    f = lfilter.chain(Doubler(), HoldLast(), Upper())
    assert [f(b"ab"), f(b"c"), f(None)] == [b"AAB", b"BC", b"C"]


def test_filter_chain_bad_use():
    with pytest.raises(TypeError, match="at least one filter"):
        lfilter.chain()
    with pytest.raises(TypeError, match="str object is not a filter"):
        lfilter.chain(Upper(), "x")
    f = lfilter.chain(lambda c: None, Upper())
    with pytest.raises(TypeError, match="returned None for a data chunk"):
        f(b"a")


def _count_low(ctx, chunk, extra):
    # LuaSocket-style low-level function: copies data, counts bytes, reports at the end.
    if chunk is None:
        return extra + b"%d" % ctx, 0
    if not chunk:
        return None, ctx
    return chunk, ctx + len(chunk)


def test_cycle():
    f = lfilter.cycle(_count_low, 0, b"=")
    assert f(b"abc") == b"abc"
    assert f.ctx == 3
    assert f(b"") == b""  # low's None becomes b""
    assert f(b"de") == b"de"
    assert f(None) == b"=5"
    with pytest.raises(ValueError, match="already flushed"):
        f(b"x")


def test_cycle_over_mime_functions_as_mime_lua_builds_them():
    # LuaSocket's mime.lua: cycle(b64, ""), cycle(qp, "", marker), cycle(eol, 0, marker),
    # cycle(dot, 2); cycle always passes its extra, None (Lua's nil) when not given.
    from smtpstream import mime

    def run(f, *chunks):
        return b"".join(f(c) for c in chunks) + f(None)

    assert run(lfilter.cycle(mime.b64, b""), b"ab", b"c", b"d") == b"YWJjZA=="
    assert run(lfilter.cycle(mime.unb64, b""), b"YWJj", b"ZA=", b"=") == b"abcd"
    assert run(lfilter.cycle(mime.qp, b""), b"caf\xc3\xa9\r\n") == b"caf=C3=A9\r\n"
    assert run(lfilter.cycle(mime.qp, b"", b"=0D=0A"), b"a\r\n") == b"a=0D=0A"
    assert run(lfilter.cycle(mime.unqp, b""), b"a=", b"3Db") == b"a=b"
    assert run(lfilter.cycle(mime.wrp, 76), b"x" * 80) == b"x" * 76 + b"\r\nxxxx\r\n"
    assert run(lfilter.cycle(mime.qpwrp, 76), b"x" * 80) == b"x" * 75 + b"=\r\nxxxxx=\r\n"
    assert run(lfilter.cycle(mime.eol, 0), b"a\n", b"b\r") == b"a\r\nb\r\n"
    assert run(lfilter.cycle(mime.eol, 0, b"\n"), b"a\r\nb") == b"a\nb"
    assert run(lfilter.cycle(mime.dot, 2), b".a\r\n", b".b") == b"..a\r\n..b"


def test_mime_functions_without_a_third_parameter_refuse_a_value_there():
    from smtpstream import mime

    for fn in (mime.b64, mime.unb64, mime.unqp):
        with pytest.raises(TypeError, match=rf"mime.{fn.__name__} takes no third argument"):
            fn(b"", b"a", b"x")
    with pytest.raises(TypeError, match="mime.dot takes no third argument"):
        mime.dot(2, b"a", 1)


def test_cycle_bad_low():
    with pytest.raises(TypeError, match="low must be callable"):
        lfilter.cycle(None, 0)


# --------------------------------------------------------------------------
# pumps


def test_pump_step():
    it = source.iterate([b"a"])
    snk, calls = recording_sink()
    assert pump.step(it, snk) is True
    assert calls == [b"a"]
    assert pump.step(it, snk) is False
    assert calls == [b"a", None]


def test_pump_all_fast_path_and_custom_step():
    snk1, calls1 = recording_sink()
    pump.all(callable_source([b"a", b"", b"b"]), snk1)
    steps = []

    def counting_step(it, snk):
        steps.append(1)
        return pump.step(it, snk)

    snk2, calls2 = recording_sink()
    pump.all(callable_source([b"a", b"", b"b"]), snk2, counting_step)
    assert calls1 == calls2 == [b"a", b"", b"b", None]
    assert len(steps) == 4


@pytest.mark.parametrize("step", [None, pump.step])
def test_pump_all_source_error_does_not_end_the_sink(step):
    def failing():
        yield b"part"
        raise OSError("connection lost")

    handle = io.BytesIO()
    with pytest.raises(OSError, match="connection lost"):
        pump.all(failing(), sink.file(handle), step)
    assert not handle.closed  # not finished as if the data were whole
    assert handle.getvalue() == b"part"


def test_pump_all_sink_error_propagates():
    with pytest.raises(ltn12.SinkError, match="full"):
        pump.all([b"a"], sink.error("full"))


@pytest.mark.parametrize("step", [None, pump.step])
def test_pump_all_none_chunk_in_iterable(step):
    snk, calls = recording_sink()
    with pytest.raises(TypeError, match="gave None as a chunk"):
        pump.all([b"a", None, b"b"], snk, step)
    assert calls == [b"a"]


def test_pump_all_bad_arguments():
    with pytest.raises(TypeError, match="not a sink"):
        pump.all([b"a"], None)
    with pytest.raises(TypeError, match="not a source"):
        pump.all(7, sink.null())
    with pytest.raises(TypeError, match="needs bytes-like chunks, got str"):
        pump.all(["text"], sink.file(io.BytesIO()))


def test_file_to_file_round_trip(tmp_path):
    src_path, dst_path = tmp_path / "in.bin", tmp_path / "out.bin"
    data = bytes(range(256)) * 1000
    src_path.write_bytes(data)
    with open(src_path, "rb") as fin, open(dst_path, "wb") as fout:
        pump.all(source.chain(source.file(fin, blocksize=1000), HoldLast(), Upper()), sink.file(fout))
        assert fin.closed and fout.closed
    assert dst_path.read_bytes() == data.upper()


# --------------------------------------------------------------------------
# property: source.chain == sink.chain == the whole-input transform, for any chunking

FILTER_KINDS = st.lists(st.sampled_from(list(WHOLE)), min_size=1, max_size=3)


@st.composite
def chunkings(draw, max_size=300):
    data = draw(st.binary(max_size=max_size))
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=8)))
    bounds = [0, *cuts, len(data)]
    return data, [data[a:b] for a, b in zip(bounds, bounds[1:])]


@settings(max_examples=150, deadline=None)
@given(chunkings(), FILTER_KINDS)
def test_source_chain_and_sink_chain_agree(case, kinds):
    data, chunks = case
    expected = data
    for kind in kinds:
        expected = WHOLE[kind](expected)

    via_source = list(source.chain(chunks, *[kind() for kind in kinds]))

    snk, via_sink = sink.table()
    pump.all(chunks, sink.chain(*[kind() for kind in kinds], snk))

    assert b"".join(via_source) == b"".join(via_sink) == expected
    assert b"" not in via_source and b"" not in via_sink


# --------------------------------------------------------------------------
# with the MIME filters of smtpstream.filters


def wrapped_base64(data: bytes, length: int = 76) -> bytes:
    b64 = binascii.b2a_base64(data, newline=False)
    return b"".join(b64[i : i + length] + b"\r\n" for i in range(0, len(b64), length))


@settings(max_examples=50, deadline=None)
@given(chunkings(max_size=2000))
def test_base64_and_wrap_through_both_chains(case):
    from smtpstream import filters

    data, chunks = case
    expected = wrapped_base64(data)
    via_source = b"".join(source.chain(chunks, filters.Base64Encoder(), filters.LineWrapper(76)))
    snk, t = sink.table()
    pump.all(chunks, sink.chain(filters.Base64Encoder(), filters.LineWrapper(76), snk))
    assert via_source == b"".join(t) == expected


def test_base64_file_source_default_blocksize():
    from smtpstream import filters

    data = bytes(range(256)) * 700  # 179,200 bytes: three 64 KiB blocks
    out = b"".join(
        source.chain(source.file(io.BytesIO(data)), filters.Base64Encoder(), filters.LineWrapper())
    )
    assert out == wrapped_base64(data)


def test_mime_filter_rejects_str_chunk():
    from smtpstream import filters

    with pytest.raises(TypeError, match="needs a bytes-like chunk or None, got str"):
        list(source.chain(["text"], filters.Base64Encoder()))
