"""Build filter chains by name, the same names tests/luasocket_filter.lua knows.

A spec is stages joined by "+", e.g. "normalize:CRLF+qp+qpwrap". ``run_chain``
feeds chunks through fresh filters of one implementation module and returns
the concatenated output, flushing each stage in order at the end.
"""
from __future__ import annotations

MARKERS = {"CRLF": b"\r\n", "LF": b"\n", "CR": b"\r", "NONE": b""}


def make_cycle(spec: str):
    """``ltn12.filter.cycle`` over one of smtpstream.mime's low-level functions.

    The same specs as luasocket_filter.lua's ``cycle-*`` stages; the filter
    classes the functions use are whatever ``smtpstream.filters`` holds.
    """
    from smtpstream import ltn12, mime

    name, _, arg = spec.partition(":")
    n = int(arg) if arg.isdigit() else None
    cycle = ltn12.filter.cycle
    makers = {
        "cycle-b64": lambda: cycle(mime.b64, b""),
        "cycle-unb64": lambda: cycle(mime.unb64, b""),
        "cycle-qp": lambda: cycle(mime.qp, b""),
        "cycle-qp-binary": lambda: cycle(mime.qp, b"", b"=0D=0A"),
        "cycle-unqp": lambda: cycle(mime.unqp, b""),
        "cycle-wrp": lambda: cycle(mime.wrp, n or 76, n),
        "cycle-qpwrp": lambda: cycle(mime.qpwrp, n or 76, n),
        "cycle-eol": lambda: cycle(mime.eol, 0, MARKERS.get(arg)),
        "cycle-dot": lambda: cycle(mime.dot, 2 if n is None else n),
    }
    return makers[name]()


def make_stage(impl, spec: str):
    name, _, arg = spec.partition(":")
    if name.startswith("cycle-"):
        return make_cycle(spec)
    if name == "b64":
        return impl.Base64Encoder()
    if name == "unb64":
        return impl.Base64Decoder()
    if name == "qp":
        return impl.QPEncoder()
    if name == "qp-binary":
        return impl.QPEncoder(b"=0D=0A")
    if name == "unqp":
        return impl.QPDecoder()
    if name == "wrap":
        return impl.LineWrapper(int(arg)) if arg else impl.LineWrapper()
    if name == "qpwrap":
        return impl.QPWrapper()
    if name == "qpwrp":
        return impl.QPWrapper(int(arg))
    if name == "normalize":
        return impl.EOLNormalizer(MARKERS[arg or "CRLF"])
    if name == "stuff":
        return impl.DotStuffer()
    if name == "dot":
        return impl.DotStuffer(0)
    if name == "b64wrap":  # fused base64 + wrap
        return impl.Base64WrapEncoder(int(arg)) if arg else impl.Base64WrapEncoder()
    if name == "normstuff":  # fused normalize + stuff
        return impl.NormalizeStuffer()
    if name == "canon":  # DKIM body canonicalisation
        return impl.BodyCanonicalizer(arg or "relaxed")
    raise ValueError(f"unknown stage {spec!r}")


def run_chain(impl, spec: str, chunks) -> bytes:
    stages = [make_stage(impl, s) for s in spec.split("+")]
    out = []
    for chunk in chunks:
        for stage in stages:
            chunk = stage(chunk)
        out.append(chunk)
    tail = b""
    for stage in stages:
        tail = stage(tail) + stage(None)
    out.append(tail)
    return b"".join(out)


def cut(data: bytes, lengths) -> list[bytes]:
    """Cut ``data`` into chunks of the given lengths; whatever is left is the last chunk."""
    chunks, at = [], 0
    for n in lengths:
        chunks.append(data[at : at + n])
        at += n
    chunks.append(data[at:])
    return chunks
