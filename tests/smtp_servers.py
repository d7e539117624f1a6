"""SMTP servers for the sender's tests, all on 127.0.0.1, all real sockets.

* :class:`ScriptedServer`: a small threaded server of our own for what
  aiosmtpd cannot do: CHUNKING/BDAT, PIPELINING (and proof that a group came
  in one read), DSN parameters, a 421 then close, a drop in the middle of
  DATA, slow replies. It records every line, every ``recv`` and every message.
* :class:`AuthHandler`: an aiosmtpd handler that keeps messages, refuses
  recipients containing "refuse", and adds CRAM-MD5 and XOAUTH2 to
  aiosmtpd's PLAIN and LOGIN.
* :func:`free_port`, :func:`make_certificate`, :func:`tls_contexts`,
  :func:`aiosmtpd_running` (an aiosmtpd controller on a free port).
"""
from __future__ import annotations

import base64
import contextlib
import datetime
import hashlib
import hmac
import ipaddress
import json
import os
import select
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field

from aiosmtpd.smtp import MISSING, AuthResult, LoginPassword

HOST = "127.0.0.1"
USER = "alice"
PASSWORD = "s3cr3t-pässword"
TOKEN = "ya29.test-token"
CRAM_CHALLENGE = b"<1896.697170952@test.example>"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (aiosmtpd's Controller cannot take port 0)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ TLS


def make_certificate(directory: str) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 / localhost: (cert path, key path)."""
    cert_path = os.path.join(directory, "cert.pem")
    key_path = os.path.join(directory, "key.pem")
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", key_path, "-out", cert_path, "-days", "2", "-subj", "/CN=127.0.0.1",
             "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
            check=True, capture_output=True,
        )
        return cert_path, key_path
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(HOST)), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return cert_path, key_path


@contextlib.contextmanager
def aiosmtpd_running(handler, **kwargs):
    """An aiosmtpd server for ``handler`` on 127.0.0.1; yields its port."""
    from aiosmtpd.controller import Controller

    port = free_port()
    kwargs.setdefault("enable_SMTPUTF8", False)
    controller = Controller(handler, hostname=HOST, port=port, server_hostname="aiosmtpd.test", **kwargs)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


def tls_contexts(cert_path: str, key_path: str):
    """(server context, client context trusting the certificate)."""
    import ssl

    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_path, key_path)
    client = ssl.create_default_context(cafile=cert_path)
    return server, client


# ------------------------------------------------------------------ aiosmtpd handler


class AuthHandler:
    """aiosmtpd handler: a box of envelopes, refusals, CRAM-MD5 and XOAUTH2."""

    def __init__(self) -> None:
        self.box: list = []
        self.logins: list[tuple[str, bytes]] = []
        self.hellos: list[str] = []
        self.tls: list[bool] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if "refuse" in address:
            return f"550 5.1.1 <{address}>: recipient unknown"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        self.box.append(envelope)
        self.hellos.append(session.host_name)
        self.tls.append(session.ssl is not None)
        return f"250 2.0.0 Ok: queued as Q{len(self.box):04d}"

    # aiosmtpd turns "auth_CRAM__MD5" into the mechanism name "CRAM-MD5".
    async def auth_CRAM__MD5(self, server, args):
        answer = await server.challenge_auth(CRAM_CHALLENGE)
        if answer is MISSING:
            return AuthResult(success=False, handled=True)
        user, _, digest = answer.partition(b" ")
        expected = hmac.new(PASSWORD.encode(), CRAM_CHALLENGE, hashlib.md5).hexdigest().encode()
        ok = user == USER.encode() and hmac.compare_digest(digest, expected)
        if ok:
            self.logins.append(("CRAM-MD5", user))
        return AuthResult(success=ok, handled=False)

    async def auth_XOAUTH2(self, server, args):
        if len(args) == 2:
            blob = base64.b64decode(args[1])
        else:
            blob = await server.challenge_auth("")
            if blob is MISSING:
                return AuthResult(success=False, handled=True)
        fields = dict(p.split(b"=", 1) for p in blob.split(b"\x01") if b"=" in p)
        if fields.get(b"user") == USER.encode() and fields.get(b"auth") == b"Bearer " + TOKEN.encode():
            self.logins.append(("XOAUTH2", fields[b"user"]))
            return AuthResult(success=True, handled=False)
        # Google's way: a 334 with a JSON error, the client's empty line, then 535.
        error = json.dumps({"status": "401", "schemes": "bearer"})
        await server.challenge_auth(error)
        return AuthResult(success=False, handled=False, message="535 5.7.8 Username and Password not accepted")


def authenticator(server, session, envelope, mechanism, auth_data):
    """aiosmtpd authenticator for PLAIN and LOGIN."""
    ok = isinstance(auth_data, LoginPassword) and auth_data == (USER.encode(), PASSWORD.encode())
    return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd sends the 535


# ------------------------------------------------------------------ our own server


@dataclass
class Received:
    mail_from: str
    mail_params: list[str]
    rcpt_tos: list[str]
    rcpt_params: list[list[str]]
    content: bytes
    mode: str  # "DATA" or "BDAT"
    bdat_sizes: list[int] = field(default_factory=list)


class ScriptedServer:
    """A threaded SMTP server with switchable faults (see the module doc).

    ``extensions``: EHLO keywords offered. ``refuse``: recipients answered 550.
    ``close_421_at``: a verb ("greeting", "MAIL", ...) answered with 421, then
    the connection is closed. ``drop_in_data``: close the connection after
    the first read of the body. ``delays``: verb (or "greeting", "END") ->
    seconds to wait before replying. ``no_ehlo``: answer EHLO with 502 (an
    old server). ``quit_reply``: the answer to QUIT. ``bare_lf_ends_lines``:
    read DATA lines up to a bare LF, as servers open to SMTP smuggling did.
    ``pause_after``: verb -> seconds to wait
    after replying to it before reading again (so that a pipelined group is
    all there at the next read, and a waiting client has sent only one line).

    ``close_421_after``: messages stored per connection before the next MAIL
    is answered 421 and the connection closed. ``hang_up_after``: the same
    without a word (the connection just closes).

    ``turns`` counts round trips: how often the server, having replied to
    everything it had read, had to wait for the client to send more.

    ``hold_replies``: seconds of silence from the client before the server
    writes its replies; until then they are held, so a client that keeps
    sending without waiting (a window of messages in flight) costs no turn,
    and ``turns`` counts only the client's waits (plus a stall of the client
    longer than that, rarely). ``replies``: ``(verb, n) -> reply`` for the
    n-th (from 1) command of that verb on a connection ("MAIL", "RCPT",
    "END" for an end of data or BDAT LAST), said instead of the usual one
    (and a refused MAIL is not a transaction). ``keep_failed_open``: a
    refused end of data leaves the transaction open, so that a MAIL before
    an RSET gets 503 (what RSET after BDAT LAST is for).
    """

    def __init__(
        self,
        *,
        extensions=("PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES"),
        refuse=(),
        close_421_at=None,
        drop_in_data=False,
        delays=None,
        pause_after=None,
        final_reply="250 2.0.0 Ok: queued as 4XyZ12",
        no_ehlo=False,
        quit_reply="221 2.0.0 Bye",
        bare_lf_ends_lines=False,
        close_421_after=None,
        hang_up_after=None,
        hold_replies=None,
        replies=None,
        keep_failed_open=False,
    ) -> None:
        self.extensions = list(extensions)
        self.refuse = set(refuse)
        self.close_421_at = close_421_at
        self.drop_in_data = drop_in_data
        self.delays = dict(delays or {})
        self.pause_after = dict(pause_after or {})
        self.final_reply = final_reply
        self.no_ehlo = no_ehlo
        self.quit_reply = quit_reply
        self.bare_lf_ends_lines = bare_lf_ends_lines
        self.close_421_after = close_421_after
        self.hang_up_after = hang_up_after
        self.hold_replies = hold_replies
        self.replies = dict(replies or {})
        self.keep_failed_open = keep_failed_open
        self.lines: list[bytes] = []
        self.reads: list[bytes] = []
        self.messages: list[Received] = []
        self.connections = 0
        self.turns = 0
        self.mail_at: list[float] = []  # monotonic time of each MAIL command
        self.stored_at: list[float] = []  # ... and of each message stored
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._listener = socket.socket()
        self._listener.bind((HOST, 0))
        self._listener.listen(8)
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)
        self._listener.close()

    # ---- plumbing

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.connections += 1
            try:
                with conn:
                    conn.settimeout(5)
                    # Each reply is its own send: without this, Nagle holds the second
                    # reply of a pipelined group until the client's delayed ACK (40 ms).
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    _Session(self, conn).run()
            except (OSError, _Closed):
                pass
            except BaseException as exc:  # pragma: no cover - shows up in the test's assertions
                self.errors.append(exc)

    def wait(self, seconds: float) -> None:
        self._stop.wait(seconds)


class _Closed(Exception):
    pass


class _Session:
    def __init__(self, server: ScriptedServer, conn: socket.socket) -> None:
        self.server = server
        self.conn = conn
        self.buf = bytearray()
        self.replied = False  # a reply went out since the last read
        self.held: list[bytes] = []  # replies not written yet (hold_replies)
        self.counts: dict[str, int] = {}  # commands of each verb on this connection
        self.failed_open = False  # keep_failed_open: a refused transaction still open
        self.stored = 0
        self.reset()

    def reset(self) -> None:
        self.mail_from = None
        self.mail_params: list[str] = []
        self.rcpts: list[str] = []
        self.rcpt_params: list[list[str]] = []
        self.chunks: list[bytes] = []
        self.bdat_sizes: list[int] = []

    def recv(self) -> bytes:
        if self.held:
            # Held replies go out once the client has gone quiet: it waits for them.
            readable, _, _ = select.select([self.conn], [], [], self.server.hold_replies)
            if not readable:
                self.conn.sendall(b"".join(self.held))
                self.held.clear()
                self.replied = True
        if self.replied:  # the client had our replies and we wait for it: one round trip
            self.server.turns += 1
            self.replied = False
        data = self.conn.recv(1 << 20)
        if not data:
            raise _Closed()
        self.server.reads.append(data)
        return data

    def line(self, bare_lf: bool = False) -> bytes:
        eol = b"\n" if bare_lf else b"\r\n"
        while (end := self.buf.find(eol)) < 0:
            self.buf += self.recv()
        line = bytes(self.buf[:end])
        del self.buf[: end + len(eol)]
        return line[:-1] if bare_lf and line.endswith(b"\r") else line

    def exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            self.buf += self.recv()
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def reply(self, text: str) -> None:
        if self.server.hold_replies is not None and not text.startswith(("221", "421")):
            self.held.append(text.encode() + b"\r\n")
            return
        self.conn.sendall(b"".join(self.held) + text.encode() + b"\r\n")
        self.held.clear()
        self.replied = True

    def scripted(self, verb: str) -> str | None:
        """The reply the test chose for this command (the n-th of its verb), if any."""
        n = self.counts[verb] = self.counts.get(verb, 0) + 1
        return self.server.replies.get((verb, n))

    def delay(self, key: str) -> None:
        if key in self.server.delays:
            self.server.wait(self.server.delays[key])

    def close_421(self, key: str) -> None:
        if self.server.close_421_at == key:
            self.reply("421 4.3.2 Service shutting down, closing channel")
            raise _Closed()

    def run(self) -> None:
        self.delay("greeting")
        self.close_421("greeting")
        self.reply("220 test.example ESMTP scripted")
        while True:
            line = self.line()
            self.server.lines.append(line)
            verb, _, arg = line.decode("utf-8").partition(" ")
            verb = verb.upper()
            self.close_421(verb)
            self.delay(verb)
            handler = getattr(self, "do_" + verb, None)
            if handler is None:
                self.reply("502 5.5.2 command not recognized")
            else:
                handler(arg)
            if verb in self.server.pause_after:
                self.server.wait(self.server.pause_after[verb])

    # ---- commands

    def do_EHLO(self, arg: str) -> None:
        if self.server.no_ehlo:
            self.reply("502 5.5.2 EHLO not implemented")
            return
        lines = ["test.example"] + self.server.extensions
        text = "\r\n".join(f"250{'-' if i < len(lines) - 1 else ' '}{x}" for i, x in enumerate(lines))
        self.reply(text)

    def do_HELO(self, arg: str) -> None:
        self.reply("250 test.example")

    def do_NOOP(self, arg: str) -> None:
        self.reply("250 2.0.0 OK")

    def do_RSET(self, arg: str) -> None:
        self.reset()
        self.failed_open = False
        self.reply("250 2.0.0 OK")

    def do_QUIT(self, arg: str) -> None:
        self.reply(self.server.quit_reply)
        raise _Closed()

    def do_MAIL(self, arg: str) -> None:
        if self.server.close_421_after is not None and self.stored >= self.server.close_421_after:
            self.reply("421 4.3.2 enough for this connection")
            raise _Closed()
        if self.server.hang_up_after is not None and self.stored >= self.server.hang_up_after:
            self.conn.sendall(b"".join(self.held))  # what was said before is heard:
            self.conn.shutdown(socket.SHUT_WR)  # a clean close, no reset dropping it
            while self.conn.recv(1 << 20):  # the client's pipelined rest, unread
                pass
            raise _Closed()
        self.server.mail_at.append(time.monotonic())
        chosen = self.scripted("MAIL")
        if self.failed_open:
            self.reply("503 5.5.1 Error: nested MAIL command")
            return
        if chosen is not None and not chosen.startswith("2"):
            self.reply(chosen)
            return
        path, *params = arg[5:].split(" ")
        self.reset()
        self.mail_from = path.strip("<>")
        self.mail_params = params
        self.reply(chosen or "250 2.1.0 OK")

    def do_RCPT(self, arg: str) -> None:
        path, *params = arg[3:].split(" ")
        address = path.strip("<>")
        if self.mail_from is None:
            self.reply("503 5.5.1 need MAIL first")
        elif address in self.server.refuse:
            self.reply(f"550 5.1.1 <{address}>: recipient unknown")
        else:
            self.rcpts.append(address)
            self.rcpt_params.append(params)
            self.reply("250 2.1.5 OK")

    def do_DATA(self, arg: str) -> None:
        if not self.rcpts:
            self.reply("554 5.5.1 no valid recipients")
            return
        self.reply("354 End data with <CR><LF>.<CR><LF>")
        if self.server.drop_in_data:
            self.recv()  # some of the body, then hang up mid-transfer
            raise _Closed()
        lines = []
        while True:
            line = self.line(self.server.bare_lf_ends_lines)
            if line == b".":
                break
            lines.append(line[1:] if line.startswith(b".") else line)
        self.delay("END")
        self.finish(b"".join(l + b"\r\n" for l in lines), "DATA")

    def do_BDAT(self, arg: str) -> None:
        size, *rest = arg.split()
        last = [r.upper() for r in rest] == ["LAST"]
        data = self.exactly(int(size))
        if not self.rcpts:
            self.reply("554 5.5.1 no valid recipients")
            return
        self.chunks.append(data)
        self.bdat_sizes.append(int(size))
        if not last:
            self.reply(f"250 2.0.0 {size} octets received")
            return
        self.delay("END")
        self.finish(b"".join(self.chunks), "BDAT")

    def finish(self, content: bytes, mode: str) -> None:
        """The end of data: store and say the final reply, or the reply the test chose."""
        chosen = self.scripted("END")
        if chosen is None:  # final_reply: stored whatever it says (every message was offered)
            self.store(content, mode)
            self.reply(self.server.final_reply)
            return
        if chosen.startswith("2"):
            self.store(content, mode)
        elif self.server.keep_failed_open:
            self.failed_open = True
        else:
            self.reset()
        self.reply(chosen)

    def store(self, content: bytes, mode: str) -> None:
        self.server.stored_at.append(time.monotonic())
        self.stored += 1
        self.server.messages.append(
            Received(self.mail_from, self.mail_params, self.rcpts, self.rcpt_params, content, mode,
                     list(self.bdat_sizes))
        )
        self.reset()
