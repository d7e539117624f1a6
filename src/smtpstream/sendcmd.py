"""``smtpstream send`` and ``smtpstream demo``: the builder and the sender from the shell.

Exit codes (scripts may rely on them; see :data:`EXIT_CODES`)::

    0   sent to every recipient
    1   sent, but the server refused some recipients (their replies on stderr)
    64  usage error (bad or missing arguments)
    66  an input file (text, HTML, attachment) is missing or unreadable
    69  the server could not be reached
    75  temporary failure (a 4xx reply, a timeout, a dropped connection): retry later
    76  permanent failure (a 5xx reply, every recipient refused, a protocol error)
    78  configuration error (the server's certificate failed verification, a --cafile
        that cannot be loaded, another TLS failure): fix the setup, retrying will not help
"""
from __future__ import annotations

import argparse
import os
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: typing takes milliseconds to import
    from typing import Any, Iterator, TextIO

EXIT_OK = 0
EXIT_PARTIAL = 1
EXIT_USAGE = 64
EXIT_NOINPUT = 66
EXIT_UNAVAILABLE = 69
EXIT_TEMPFAIL = 75
EXIT_PERMFAIL = 76
EXIT_CONFIG = 78

EXIT_CODES = {
    EXIT_OK: "sent to every recipient",
    EXIT_PARTIAL: "sent, some recipients refused",
    EXIT_USAGE: "usage error",
    EXIT_NOINPUT: "input file missing or unreadable",
    EXIT_UNAVAILABLE: "server unreachable",
    EXIT_TEMPFAIL: "temporary failure",
    EXIT_PERMFAIL: "permanent failure",
    EXIT_CONFIG: "configuration error (TLS certificate or CA file)",
}

PROGRESS_MIN = 4 * 1024 * 1024  # smaller messages go too fast for a bar to help


class CommandError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def add_send_parser(sub: Any) -> None:
    p = sub.add_parser("send", help="build a message and send it (or write it with --dry-run)")
    p.add_argument("--from", dest="sender", required=True, metavar="ADDRESS")
    p.add_argument("--to", action="append", default=[], metavar="ADDRESS")
    p.add_argument("--cc", action="append", default=[], metavar="ADDRESS")
    p.add_argument("--bcc", action="append", default=[], metavar="ADDRESS")
    p.add_argument("--subject", default="")
    body = p.add_mutually_exclusive_group()
    body.add_argument("--text", help="the text body")
    body.add_argument("--text-file", metavar="FILE")
    p.add_argument("--html-file", metavar="FILE")
    p.add_argument("--attach", action="append", default=[], metavar="PATH")
    add_connection_options(p)
    p.add_argument("--dry-run", action="store_true", help="write the message instead of sending it")
    p.add_argument("--output", metavar="FILE.eml", help="with --dry-run: write here, not to stdout")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--timeout", type=float, default=None, help="seconds for every phase")
    p.set_defaults(run=run_send)
    d = sub.add_parser("demo", help="send a message with an attachment to a local server and check it")
    d.add_argument("--size", type=int, default=8, metavar="MiB", help="attachment size (default 8)")
    d.set_defaults(run=run_demo)


def add_connection_options(p: Any) -> None:
    """The relay options of ``send`` and ``campaign send``: see :func:`connection_fields`."""
    p.add_argument("--server", default="localhost:25", metavar="HOST[:PORT]")
    tls = p.add_mutually_exclusive_group()
    tls.add_argument("--tls", action="store_true",
                     help="implicit TLS from the first byte (port 465, also the default port then)")
    tls.add_argument("--starttls", action="store_true",
                     help="require STARTTLS (the default with --user; otherwise STARTTLS is used when offered)")
    p.add_argument("--cafile", metavar="FILE.pem",
                   help="also trust the CA certificate(s) in this PEM file (a private or corporate CA)")
    p.add_argument("--capath", metavar="DIR", help="also trust the CAs in this hashed directory (openssl rehash)")
    p.add_argument("--insecure", action="store_true",
                   help="do not verify the server's certificate (encrypted, not authenticated: tests only)")
    p.add_argument("--user")
    password = p.add_mutually_exclusive_group()
    password.add_argument("--password-env", metavar="VAR", help="read the password from this environment variable")
    password.add_argument("--password-stdin", action="store_true",
                          help="read the password from the first line of standard input")
    p.add_argument("-v", "--debug", action="store_true",
                   help="print the SMTP dialogue on stderr (C: and S: lines of the smtpstream.smtp logger;"
                        " AUTH secrets hidden)")


def connection_fields(args: Any) -> dict[str, Any]:
    """smtp.send's connection fields from the options :func:`add_connection_options` adds
    (``args`` may be a Namespace or anything with those attributes; missing ones are off)."""
    opt = lambda name: getattr(args, name, None)  # noqa: E731
    host, port = _server(args.server)
    fields: dict[str, Any] = {"server": host}
    if port is not None:
        fields["port"] = port
    if opt("tls"):
        fields["tls"] = True
    if opt("starttls"):
        fields["starttls"] = "required"
    if opt("cafile"):
        fields["cafile"] = args.cafile
    if opt("capath"):
        fields["capath"] = args.capath
    if opt("insecure"):
        fields["verify"] = False
    if opt("user"):
        fields["user"], fields["password"] = args.user, _password(args)
    elif opt("password_env") or opt("password_stdin"):
        raise CommandError(EXIT_USAGE, "a password needs --user")
    if opt("debug"):
        _log_dialogue(sys.stderr)
    if opt("timeout") is not None:
        fields["timeout"] = args.timeout
    return fields


def read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError as exc:
        raise CommandError(EXIT_NOINPUT, f"cannot read {path}: {exc.strerror}") from None


def build_table(args: argparse.Namespace) -> dict:
    from .message import alternative, attachment, html, text

    if not args.to and not args.cc and not args.bcc:
        raise CommandError(EXIT_USAGE, "give at least one recipient (--to, --cc or --bcc)")
    headers: dict[str, str] = {"from": args.sender}
    if args.to:
        headers["to"] = ", ".join(args.to)
    if args.cc:
        headers["cc"] = ", ".join(args.cc)
    if args.bcc:
        headers["bcc"] = ", ".join(args.bcc)
    headers["subject"] = args.subject
    body_text = args.text if args.text is not None else read_text(args.text_file) if args.text_file else ""
    first: Any = text(body_text)
    if args.html_file:
        first = alternative(first, html(read_text(args.html_file)))
    for path in args.attach:
        if not os.path.isfile(path) or not os.access(path, os.R_OK):
            raise CommandError(EXIT_NOINPUT, f"attachment not found or unreadable: {path}")
    if not args.attach:
        return _single(headers, first)
    return {"headers": headers, "body": {"parts": [first, *(attachment(p) for p in args.attach)]}}


def _single(headers: dict, part: dict) -> dict:
    """The message is that one part: its Content-* headers join the top level."""
    merged = dict(headers)
    merged.update(part.get("headers") or {})
    return {"headers": merged, "body": part["body"]}


def _server(value: str) -> tuple[str, int | None]:
    host, sep, port = value.rpartition(":")
    if not sep or "]" in port:
        return value, None
    if not port.isdigit():
        raise CommandError(EXIT_USAGE, f"bad --server {value!r}: the port must be a number")
    return host.strip("[]"), int(port)


def _progress(chunks: Iterator[bytes], total: int, out: TextIO) -> Iterator[bytes]:
    start = time.monotonic()
    sent = 0
    last = 0.0
    for chunk in chunks:
        yield chunk
        sent += len(chunk)
        now = time.monotonic()
        if now - last >= 0.2 or sent >= total:
            last = now
            rate = sent / max(now - start, 1e-6)
            left = (total - sent) / rate if rate else 0
            filled = int(30 * sent / total) if total else 30
            out.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {sent / 1e6:8.1f}/{total / 1e6:.1f} MB "
                      f"{rate / 1e6:6.1f} MB/s {left:5.1f} s left")
            out.flush()
    out.write("\n")


def run_send(args: argparse.Namespace) -> int:
    from . import ltn12
    from .message import message
    from .smtp import send

    table = build_table(args)
    source = message(table)
    if args.dry_run:
        if args.output:
            with open(args.output, "wb") as handle:
                ltn12.pump.all(source, ltn12.sink.file(handle))
        else:
            out = sys.stdout.buffer
            for chunk in source:
                out.write(chunk)
            out.flush()
        return EXIT_OK
    fields: dict[str, Any] = {"from": source.sender, "rcpt": source.recipients, **connection_fields(args)}
    size = source.size
    body: Any = source
    if not args.quiet and sys.stderr.isatty() and (size is None or size >= PROGRESS_MIN):
        body = _progress(iter(source), size or 0, sys.stderr)
        fields["size"] = size
    fields["source"] = body
    result = send(**fields)
    if result.refused:
        for rcpt, reply in result.refused.items():
            print(f"smtpstream: {rcpt} refused: {reply}", file=sys.stderr)
        return EXIT_PARTIAL
    return EXIT_OK


def _password(args: Any) -> str:
    if getattr(args, "password_stdin", False):
        line = sys.stdin.readline()
        if not line:
            raise CommandError(EXIT_USAGE, "--password-stdin: standard input is empty")
        return line.rstrip("\r\n")
    var = args.password_env
    if not var or var not in os.environ:
        raise CommandError(EXIT_USAGE, "--user needs --password-env naming a set environment variable,"
                                       " or --password-stdin")
    return os.environ[var]


def _log_dialogue(stream: TextIO) -> None:
    """The ``smtpstream.smtp`` logger's C:/S: lines to ``stream``."""
    import logging

    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("smtpstream: %(message)s"))
    logger = logging.getLogger("smtpstream.smtp")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)


def error_code(exc: BaseException) -> int:
    """The exit code for an exception from building or sending."""
    from .message import HeaderError, MessageError
    from .smtp import (
        LocalProtocolError,
        SMTPError,
        SMTPServerDisconnected,
        SMTPTimeoutError,
        SMTPTLSError,
    )

    if isinstance(exc, CommandError):
        return exc.code
    if isinstance(exc, (HeaderError, MessageError, LocalProtocolError)):
        return EXIT_USAGE
    if isinstance(exc, SMTPTLSError):
        return EXIT_CONFIG
    if isinstance(exc, SMTPError):
        if getattr(exc, "phase", None) == "connect" and not isinstance(exc, SMTPTimeoutError):
            if getattr(exc, "code", None) is None:
                return EXIT_UNAVAILABLE
        if getattr(exc, "temporary", False) or isinstance(exc, (SMTPTimeoutError, SMTPServerDisconnected)):
            return EXIT_TEMPFAIL
        return EXIT_PERMFAIL
    if isinstance(exc, FileNotFoundError):
        return EXIT_NOINPUT
    if isinstance(exc, ConnectionError):
        return EXIT_UNAVAILABLE
    raise exc


def run_demo(args: argparse.Namespace) -> int:
    """Start the dev server, send a real multipart message through it, read it back."""
    import email
    import email.policy
    import hashlib
    import mailbox
    import tempfile

    from .devserver import DevServer
    from .message import attachment, message, text
    from .smtp import send

    with tempfile.TemporaryDirectory(prefix="smtpstream-demo-") as work:
        payload = os.path.join(work, "attachment.bin")
        digest = hashlib.sha256()
        with open(payload, "wb") as handle:
            for _ in range(args.size):
                block = os.urandom(1 << 20)
                digest.update(block)
                handle.write(block)
        maildir = os.path.join(work, "Maildir")
        with DevServer(maildir, "127.0.0.1", 0) as server:
            print(f"dev server on 127.0.0.1:{server.port}")
            source = message({
                "headers": {"from": "Demo Sender <sender@example.com>", "to": "Ana <ana@example.com>",
                            "bcc": "hidden@example.com", "subject": "smtpstream demo \u2709"},
                "body": {"parts": [text("Hello from smtpstream.\nThe attachment is random bytes.\n"),
                                   attachment(payload)]},
            })
            started = time.monotonic()
            result = send(source=source, server="127.0.0.1", port=server.port, starttls="off",
                          **{"from": "sender@example.com"})
            elapsed = time.monotonic() - started
            print(f"sent {result.size} bytes to {', '.join(result.accepted)} in {elapsed:.2f} s: "
                  f"{result.reply.code} {result.reply.text}")
        stored = [bytes(m) for m in mailbox.Maildir(maildir, create=False)]
        if len(stored) != 1:
            print(f"demo FAILED: expected 1 stored message, found {len(stored)}", file=sys.stderr)
            return EXIT_PERMFAIL
        msg = email.message_from_bytes(stored[0], policy=email.policy.default)
        got = [p for p in msg.iter_attachments()][0].get_content()
        ok = hashlib.sha256(got).hexdigest() == digest.hexdigest()
        print(f"read back from the Maildir: subject {str(msg['Subject'])!r}, "
              f"attachment {len(got)} bytes, sha256 {'matches' if ok else 'DIFFERS'}; "
              f"Bcc header present: {'yes' if msg['Bcc'] else 'no'}")
        if not ok or msg["Bcc"]:
            return EXIT_PERMFAIL
    print("demo OK")
    return EXIT_OK


def main_guard(run, args: argparse.Namespace) -> int:
    """Run a command, turning errors into one line on stderr and an exit code."""
    try:
        return run(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # one clear line, never a traceback, for the errors we know
        code = error_code(exc)
        print(f"smtpstream: {exc}", file=sys.stderr)
        return code
