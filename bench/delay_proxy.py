"""A TCP proxy on 127.0.0.1 that adds a fixed round-trip delay, not a bandwidth limit.

usage: python bench/delay_proxy.py --upstream 127.0.0.1:PORT [--listen-port 0] [--rtt-ms 20]

Every chunk read from one side is written to the other ``rtt/2`` seconds
after it was read, in the order it was read; an end of stream (half-close)
and a close travel the same way, behind the data. So a request/response
exchange costs one RTT more than without the proxy, while a bulk transfer
keeps its full rate (up to ``MAX_BUFFERED`` bytes in flight per direction,
far more than a bandwidth-delay product on loopback needs).

With ``--listen-port 0`` the kernel picks the port; stdout line 1 is the
listening port either way. Serves until SIGTERM or SIGINT.

From Python, :func:`delay_proxy` runs it as a subprocess::

    with delay_proxy(upstream_port, rtt_ms=20) as port:
        ...  # connect to 127.0.0.1:port
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import signal
import subprocess
import sys
from typing import Iterator

READ_PAUSE = "buffered"   # reading paused: too many bytes waiting for their time
WRITE_PAUSE = "peer"      # reading paused: the peer's socket buffer is full
MAX_BUFFERED = 64 << 20   # bytes waiting in one direction before reading pauses
_EOF = object()
_CLOSE = object()


class _Side(asyncio.Protocol):
    """One socket of a proxied connection (the client's or the upstream's)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.outbound: _Pipe | None = None  # what this side reads goes here
        self.inbound: _Pipe | None = None   # what this side writes comes from here
        self.read_done = False
        self.write_done = False
        self.pauses: set[str] = set()
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.outbound.push(data)

    def eof_received(self) -> bool:
        self.read_done = True
        self.outbound.push(_EOF)
        self._close_when_done()
        return True  # keep the write half open until the other side's EOF arrives

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.outbound is not None:
            self.outbound.push(_CLOSE)

    def pause_writing(self) -> None:
        if self.inbound is not None:
            self.inbound.src.pause(WRITE_PAUSE)

    def resume_writing(self) -> None:
        if self.inbound is not None:
            self.inbound.src.resume(WRITE_PAUSE)

    def pause(self, why: str) -> None:
        if not self.pauses and self.transport is not None and not self.lost:
            self.transport.pause_reading()
        self.pauses.add(why)

    def resume(self, why: str) -> None:
        if why in self.pauses:
            self.pauses.discard(why)
            if not self.pauses and self.transport is not None and not self.lost:
                self.transport.resume_reading()

    def _close_when_done(self) -> None:
        if self.read_done and self.write_done and self.transport is not None:
            self.transport.close()


class _Pipe:
    """One direction: chunks from ``src`` reach ``dst`` ``delay`` seconds after they were read."""

    def __init__(self, loop: asyncio.AbstractEventLoop, src: _Side, dst: _Side, delay: float) -> None:
        self.loop = loop
        self.src = src
        self.dst = dst
        self.delay = delay
        self.items: collections.deque = collections.deque()
        self.buffered = 0
        self.timer: asyncio.TimerHandle | None = None
        self.closed = False
        src.outbound = self
        dst.inbound = self

    def push(self, item) -> None:
        if self.closed:
            return
        self.items.append((self.loop.time() + self.delay, item))
        if isinstance(item, bytes):
            self.buffered += len(item)
            if self.buffered > MAX_BUFFERED:
                self.src.pause(READ_PAUSE)
        if self.timer is None:
            self._schedule()

    def _schedule(self) -> None:
        self.timer = self.loop.call_at(self.items[0][0], self._flush) if self.items else None

    def _flush(self) -> None:
        self.timer = None
        now = self.loop.time()
        dst = self.dst.transport
        while self.items and self.items[0][0] <= now:
            _, item = self.items.popleft()
            if item is _CLOSE:
                self.closed = True
                self.items.clear()
                if not dst.is_closing():
                    dst.close()  # after what is already in its buffer
                return
            if item is _EOF:
                if not dst.is_closing() and dst.can_write_eof():
                    try:
                        dst.write_eof()
                    except OSError:  # the peer is gone already (reset): nothing left to deliver
                        dst.abort()
                self.dst.write_done = True
                self.dst._close_when_done()
                continue
            self.buffered -= len(item)
            if not dst.is_closing():
                dst.write(item)
        if self.buffered <= MAX_BUFFERED // 2:
            self.src.resume(READ_PAUSE)
        self._schedule()


class _Client(_Side):
    """The accepted connection: opens the upstream one, reading paused until it is up."""

    def __init__(self, upstream: tuple[str, int], delay: float) -> None:
        super().__init__()
        self.upstream = upstream
        self.delay = delay

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.pause("connecting")
        asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, up = await loop.create_connection(_Side, *self.upstream)
        except OSError:
            self.transport.close()
            return
        _Pipe(loop, self, up, self.delay)
        _Pipe(loop, up, self, self.delay)
        if self.lost:  # the client left while we were connecting
            up.transport.close()
            return
        self.resume("connecting")


async def serve(listen_port: int, upstream: tuple[str, int], rtt_ms: float,
                listen_host: str = "127.0.0.1") -> None:
    loop = asyncio.get_running_loop()
    delay = rtt_ms / 2000.0
    server = await loop.create_server(lambda: _Client(upstream, delay), listen_host, listen_port)
    print(server.sockets[0].getsockname()[1], flush=True)
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    async with server:
        await stop


def parse_hostport(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


@contextlib.contextmanager
def delay_proxy(upstream_port: int, rtt_ms: float = 20, upstream_host: str = "127.0.0.1") -> Iterator[int]:
    """Run the proxy as a subprocess in front of ``upstream_host:upstream_port``; yields its port."""
    proc = subprocess.Popen(
        [sys.executable, __file__, "--listen-port", "0", "--upstream", f"{upstream_host}:{upstream_port}",
         "--rtt-ms", str(rtt_ms)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline()
        if not line.strip():
            raise RuntimeError(f"delay_proxy did not start (exit status {proc.poll()})")
        yield int(line)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen-port", type=int, default=0)
    parser.add_argument("--listen-host", default="127.0.0.1")
    parser.add_argument("--upstream", required=True, type=parse_hostport, help="HOST:PORT")
    parser.add_argument("--rtt-ms", type=float, default=20.0)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.listen_port, args.upstream, args.rtt_ms, args.listen_host))


if __name__ == "__main__":
    main()
