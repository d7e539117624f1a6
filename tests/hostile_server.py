"""Hostile SMTP servers, each run in a process of its own (``python hostile_server.py MODE ...``).

Where timing matters a server must not share the client's interpreter: a
thread's busy-wait holds the GIL, so the client cannot run inside the window
the server opens, and the bug hides. The process prints its port on stdout,
serves connections one after another and is ended by the test (by its pid).

Modes:

* ``starttls-inject CERT KEY GAP_US``: answers STARTTLS with 220, waits
  ``GAP_US`` microseconds (busy), then sends forged plaintext replies for a
  whole transaction (ending ``250 ... queued as FORGED``) in a separate
  segment before doing the TLS handshake. Over TLS it refuses every recipient.
* ``flood MIB``: after DATA's 354 it stops reading and sends MIB MiB with
  no line end, then waits for the client to give up.
* ``drip DELAY``: answers MAIL one byte every DELAY seconds.
* ``replies MAIL RCPT FINAL``: answers MAIL, RCPT and the end of data with
  these reply lines.
"""
from __future__ import annotations

import socket
import ssl
import sys
import time

FORGED = (b"250 forged.example\r\n250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go ahead\r\n"
          b"250 2.0.0 Ok: queued as FORGED\r\n")


class _Peer:
    def __init__(self, sock) -> None:
        self.sock = sock
        self.buf = b""

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("client gone")
            self.buf += data
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def say(self, data: bytes) -> None:
        self.sock.sendall(data)


def _dialogue(peer: _Peer, handlers: dict) -> None:
    """Answer commands until QUIT; ``handlers`` maps a verb to a reply or a callable."""
    while True:
        verb = peer.line().split(b" ", 1)[0].upper()
        answer = handlers.get(verb, b"502 5.5.2 not here\r\n")
        if callable(answer):
            answer(peer)
        else:
            peer.say(answer)
        if verb == b"QUIT":
            return


def starttls_inject(conn, cert: str, key: str, gap_us: str) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    gap = int(gap_us) / 1e6
    peer = _Peer(conn)
    peer.say(b"220 hostile.example ESMTP\r\n")
    peer.line()  # EHLO
    peer.say(b"250-hostile.example\r\n250 STARTTLS\r\n")
    peer.line()  # STARTTLS
    peer.say(b"220 2.0.0 go ahead\r\n")
    deadline = time.perf_counter() + gap
    while time.perf_counter() < deadline:
        pass
    peer.say(FORGED)
    peer = _Peer(context.wrap_socket(conn, server_side=True))
    _dialogue(peer, {
        b"EHLO": b"250 hostile.example\r\n",
        b"MAIL": b"250 2.1.0 ok\r\n",
        b"RCPT": b"550 5.1.1 no such user\r\n",
        b"DATA": b"503 5.5.1 no valid recipients\r\n",
        b"RSET": b"250 2.0.0 ok\r\n",
        b"QUIT": b"221 2.0.0 bye\r\n",
    })


def flood(conn, mib: str) -> None:
    def data(peer: _Peer) -> None:
        peer.say(b"354 go ahead\r\n")
        block = b"x" * (1 << 20)
        for _ in range(int(mib)):  # never reads again: the client's writes stall, ours go on
            peer.say(block)
        peer.sock.recv(1)  # hold the connection until the client gives up

    peer = _Peer(conn)
    peer.say(b"220 hostile.example ESMTP\r\n")
    _dialogue(peer, {
        b"EHLO": b"250 hostile.example\r\n",
        b"MAIL": b"250 2.1.0 ok\r\n",
        b"RCPT": b"250 2.1.5 ok\r\n",
        b"DATA": data,
        b"QUIT": b"221 2.0.0 bye\r\n",
    })


def drip(conn, delay: str) -> None:
    def mail(peer: _Peer) -> None:
        for byte in b"250 2.1.0 ok\r\n":
            time.sleep(float(delay))
            peer.say(bytes([byte]))

    peer = _Peer(conn)
    peer.say(b"220 hostile.example ESMTP\r\n")
    _dialogue(peer, {
        b"EHLO": b"250 hostile.example\r\n",
        b"MAIL": mail,
        b"RCPT": b"250 2.1.5 ok\r\n",
        b"DATA": b"354 go ahead\r\n",
        b"QUIT": b"221 2.0.0 bye\r\n",
    })


def replies(conn, mail: str, rcpt: str, final: str) -> None:
    def body(peer: _Peer) -> None:
        peer.say(b"354 go ahead\r\n")
        while peer.line() != b".":
            pass
        peer.say(final.encode() + b"\r\n")

    peer = _Peer(conn)
    peer.say(b"220 hostile.example ESMTP\r\n")
    _dialogue(peer, {
        b"EHLO": b"250 hostile.example\r\n",
        b"MAIL": mail.encode() + b"\r\n",
        b"RCPT": rcpt.encode() + b"\r\n",
        b"DATA": body,
        b"RSET": b"250 2.0.0 ok\r\n",
        b"QUIT": b"221 2.0.0 bye\r\n",
    })


MODES = {"starttls-inject": starttls_inject, "flood": flood, "drip": drip, "replies": replies}


def main(argv: list[str]) -> None:
    serve = MODES[argv[0]]
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    print(listener.getsockname()[1], flush=True)
    while True:
        conn, _ = listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            serve(conn, *argv[1:])
        except (OSError, ssl.SSLError, ConnectionError):
            pass  # the client saw through it, or went away
        finally:
            conn.close()


if __name__ == "__main__":
    main(sys.argv[1:])
