"""The ``smtpstream`` command.

``encode base64|quoted-printable``, ``decode ...``, ``normalize`` and
``stuff`` are Unix filters from standard input to standard output, in chunks,
so any input size runs in constant memory. ``serve`` runs a local development
SMTP server; ``bench`` prints filter throughput against the standard library.
"""
from __future__ import annotations

import argparse
import sys

from . import filters
from .campaigncmd import add_campaign_parser
from .sendcmd import EXIT_USAGE, add_send_parser, main_guard

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: typing takes milliseconds to import
    from typing import BinaryIO, Sequence

CHUNK = 64 * 1024


def _encoder(args: argparse.Namespace):
    if args.encoding == "base64":
        return [filters.Base64WrapEncoder(76)]
    if args.binary:
        return [filters.QPEncoder(b"=0D=0A"), filters.QPWrapper()]
    return [filters.EOLNormalizer(), filters.QPEncoder(), filters.QPWrapper()]


def _decoder(args: argparse.Namespace):
    if args.encoding == "base64":
        return [filters.Base64Decoder()]
    return [filters.QPDecoder()]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smtpstream", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    enc = sub.add_parser("encode", help="encode stdin as base64 (76-column lines) or quoted-printable")
    enc.add_argument("encoding", choices=["base64", "quoted-printable"])
    enc.add_argument("--binary", action="store_true", help="quoted-printable: encode line breaks too")
    enc.set_defaults(make=_encoder)
    dec = sub.add_parser("decode", help="decode base64 or quoted-printable from stdin")
    dec.add_argument("encoding", choices=["base64", "quoted-printable"])
    dec.set_defaults(make=_decoder)
    norm = sub.add_parser("normalize", help="turn every CR, LF, CRLF, LFCR into CRLF")
    norm.set_defaults(make=lambda a: [filters.EOLNormalizer()])
    stuff = sub.add_parser("stuff", help="normalise line breaks and SMTP dot-stuff")
    stuff.set_defaults(make=lambda a: [filters.NormalizeStuffer()])
    serve = sub.add_parser("serve", help="a local development SMTP server storing into a Maildir")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8025)
    serve.add_argument("--maildir", default="smtpstream-maildir")
    serve.set_defaults(run=_serve)
    bench = sub.add_parser("bench", help="filter throughput on this machine, against the standard library")
    bench.add_argument("--size", type=int, default=32, metavar="MiB", help="input size (default 32)")
    bench.set_defaults(run=_bench)
    add_send_parser(sub)
    add_campaign_parser(sub)
    return parser


def _serve(args: argparse.Namespace) -> int:
    from .devserver import serve_forever

    serve_forever(args.maildir, args.host, args.port)
    return 0


def _bench(args: argparse.Namespace) -> int:
    from .speed import run

    if args.size < 1:
        raise SystemExit("smtpstream bench: --size must be at least 1")
    run(args.size, sys.stdout)
    return 0


def pump(stages, source: BinaryIO, sink: BinaryIO) -> None:
    """Stream ``source`` through ``stages`` into ``sink``, chunk by chunk."""
    while True:
        chunk = source.read(CHUNK)
        if not chunk:
            break
        for stage in stages:
            chunk = stage(chunk)
        if chunk:
            sink.write(chunk)
    tail = b""
    for stage in stages:
        tail = stage(tail) + stage(None)
    sink.write(tail)
    sink.flush()


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: usage errors exit with our documented code
        return EXIT_USAGE if exc.code not in (0, None) else 0
    if hasattr(args, "run"):
        return main_guard(args.run, args)
    pump(args.make(args), sys.stdin.buffer, sys.stdout.buffer)
    return 0
