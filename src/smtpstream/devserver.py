"""A local development SMTP server that stores what it receives in a Maildir.

Built on aiosmtpd (install ``smtpstream[server]``). It listens on loopback by
default, accepts every recipient, writes each message as one Maildir file and
prints a one-line summary per message. It is for trying senders out, not for
receiving real mail.
"""
from __future__ import annotations

import asyncio
import mailbox
import os
import sys
import threading
from typing import Callable, TextIO

__all__ = ["MaildirHandler", "DevServer"]


class MaildirHandler:
    """aiosmtpd handler: each message becomes a file in ``maildir``'s ``new/``."""

    def __init__(self, maildir: str, out: TextIO | None = None) -> None:
        self.maildir = mailbox.Maildir(maildir, create=True)
        self.out = out
        self.count = 0

    async def handle_DATA(self, server, session, envelope) -> str:
        # original_content is the data as the client sent it, un-stuffed:
        # exactly the message bytes.
        data = envelope.original_content or envelope.content
        key = self.maildir.add(mailbox.MaildirMessage(data))
        self.count += 1
        if self.out is not None:
            rcpts = ", ".join(envelope.rcpt_tos)
            print(
                f"received {key}: {len(data)} bytes from <{envelope.mail_from}> to {rcpts}",
                file=self.out,
                flush=True,
            )
        return f"250 2.0.0 Ok: queued as {key}"


class DevServer:
    """The server on its own thread, so a program (or a test) can start and stop it."""

    def __init__(self, maildir: str, host: str = "127.0.0.1", port: int = 8025,
                 out: TextIO | None = None) -> None:
        try:
            from aiosmtpd.smtp import SMTP
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise RuntimeError("the development server needs aiosmtpd: pip install 'smtpstream[server]'") from exc
        self._smtp_class: Callable = SMTP
        self.handler = MaildirHandler(maildir, out)
        self.host = host
        self.port = port
        self._loop = asyncio.new_event_loop()
        self._server = None
        self._thread: threading.Thread | None = None

    def _factory(self):
        # Up to 1 GiB per message: big attachments are what this project is for.
        return self._smtp_class(self.handler, hostname="smtpstream.localhost",
                                data_size_limit=1 << 30, enable_SMTPUTF8=True)

    def start(self) -> "DevServer":
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            try:
                self._server = self._loop.run_until_complete(
                    self._loop.create_server(self._factory, self.host, self.port)
                )
                self.port = self._server.sockets[0].getsockname()[1]
            except BaseException as exc:  # reported to start()'s caller
                failure.append(exc)
                ready.set()
                return
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="smtpstream-devserver", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._server is None:
            return

        async def close() -> None:
            self._server.close()
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._loop.close()
        self._server = None

    def __enter__(self) -> "DevServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def serve_forever(maildir: str, host: str, port: int) -> None:
    server = DevServer(maildir, host, port, out=sys.stdout).start()
    print(f"smtpstream dev server on {host}:{server.port}, storing into {os.path.abspath(maildir)}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
