"""The asyncio transport passes the blocking transport's whole scenario suite.

Every test of ``test_smtp_send`` runs again here with ``send`` and ``Session``
backed by :mod:`smtpstream.aio` (each call driven on an event loop), against the
same real servers. The transports share the dialogue, so they must agree on
every byte and every error.
"""
from __future__ import annotations

import asyncio

import pytest

import test_smtp_send as scenarios
from smtpstream import aio
from test_smtp_send import *  # noqa: F401,F403  (collect the same scenarios here)


class _SyncSession:
    """aio.Session behind the blocking Session's interface, on its own loop."""

    def __init__(self, *args, **fields):
        self._loop = asyncio.new_event_loop()
        self._session = aio.Session(*args, **fields)
        try:
            self._loop.run_until_complete(self._session.connect())
        except BaseException:
            self._loop.close()
            raise

    def send(self, *args, **fields):
        return self._loop.run_until_complete(self._session.send(*args, **fields))

    def noop(self):
        return self._loop.run_until_complete(self._session.noop())

    def reset(self):
        return self._loop.run_until_complete(self._session.reset())

    @property
    def extensions(self):
        return self._session.extensions

    @property
    def closed(self):
        return self._session.closed

    def close(self):
        if not self._loop.is_closed():
            try:
                self._loop.run_until_complete(self._session.close())
            finally:
                self._loop.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _aio_send(*args, **fields):
    fields.setdefault("timeout", scenarios.SAFETY_TIMEOUT)
    return asyncio.run(aio.send(*args, **fields))


def _aio_session(*args, **fields):
    fields.setdefault("timeout", scenarios.SAFETY_TIMEOUT)
    return _SyncSession(*args, **fields)


@pytest.fixture(autouse=True)
def asyncio_transport(monkeypatch):
    monkeypatch.setattr(scenarios, "send", _aio_send)
    monkeypatch.setattr(scenarios, "Session", _aio_session)


def test_the_scenarios_really_use_asyncio(plain, monkeypatch):
    calls = []
    real = aio.Session._perform

    async def counting(self, action):
        calls.append(type(action).__name__)
        return await real(self, action)

    monkeypatch.setattr(aio.Session, "_perform", counting)
    scenarios.send(server=scenarios.HOST, port=plain[0], from_="a@example.com", rcpt="b@example.com",
                   source=[b"x\r\n"])
    assert "Write" in calls and "Read" in calls


# ------------------------------------------------------------------ asyncio-only API


def test_async_with_session_and_async_iterable_sources(plain):
    port, handler = plain

    async def chunks(n):
        yield b"Subject: async %d\r\n\r\n" % n
        await asyncio.sleep(0)
        yield b"streamed body\r\n"

    async def main():
        async with aio.Session(server=scenarios.HOST, port=port, timeout=scenarios.SAFETY_TIMEOUT) as session:
            results = [await session.send(from_="a@example.com", rcpt="b@example.com", source=chunks(n))
                       for n in range(3)]
            assert not session.closed
        assert session.closed
        return results

    results = asyncio.run(main())
    assert [r.queue_id for r in results] == ["Q0001", "Q0002", "Q0003"]
    assert [e.original_content for e in handler.box] == [
        b"Subject: async %d\r\n\r\nstreamed body\r\n" % n for n in range(3)]


def test_many_messages_share_one_cached_attachment_encoded_once(plain):
    # 1,000 messages with one 1 MiB cached part: the part is encoded once.
    # Every message is produced in full; a few of them really go over the wire.
    import os

    from smtpstream.message import attachment, cached, message

    port, handler = plain
    part = cached(attachment(os.urandom(1 << 20), "data.bin"))
    sources = [message({"headers": {"subject": f"m{i}"}, "body": {1: {"body": "hi"}, 2: part}})
               for i in range(1000)]

    async def main():
        async with aio.Session(server=scenarios.HOST, port=port, timeout=scenarios.SAFETY_TIMEOUT) as session:
            for src in sources[:3]:
                await session.send(from_="a@example.com", rcpt="b@example.com", source=src)

    asyncio.run(main())
    sizes = [sum(map(len, src)) for src in sources[3:]]
    assert min(sizes) > 1 << 20 and max(sizes) - min(sizes) <= 2  # only the subject differs
    assert part["body"].encode_count == 1 and len(handler.box) == 3


# ------------------------------------------------------------------ async sources are streamed


def _marked_chunks(server, mark: bytes, size: int):
    """An async source whose second chunk waits until the server has seen the first one.

    Gathering the source before sending would wait forever (the source fails
    after 5 s); streaming it sends the first chunk first, once it fills a
    write (64 KiB in DATA mode) or a BDAT command (1 MiB).
    """
    async def chunks():
        yield b"Subject: streamed\r\n\r\n" + (b"x" * 78 + b"\r\n") * (size // 80 + 1) + mark + b"\r\n"
        deadline = asyncio.get_running_loop().time() + 5
        while not any(mark in r for r in server.reads):
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError("the first chunk never reached the server: the source was gathered")
            await asyncio.sleep(0.005)
        yield b"second chunk, produced after the first was delivered\r\n"
    return chunks()


@pytest.mark.parametrize("extensions", [("PIPELINING",), ("PIPELINING", "CHUNKING"), ("CHUNKING",), ()])
def test_async_sources_are_streamed_not_gathered(extensions):
    from smtp_servers import ScriptedServer
    from smtpstream.smtp.client import BDAT_SIZE, WRITE_SIZE

    size = BDAT_SIZE if "CHUNKING" in extensions else WRITE_SIZE
    with ScriptedServer(extensions=extensions) as server:
        result = asyncio.run(aio.send(server=scenarios.HOST, port=server.port, from_="a@example.com",
                                      rcpt="b@example.com", source=_marked_chunks(server, b"MARK-1", size),
                                      timeout=scenarios.SAFETY_TIMEOUT))
    [received] = server.messages
    assert received.content.endswith(b"MARK-1\r\nsecond chunk, produced after the first was delivered\r\n")
    assert result.size == len(received.content) and result.chunking == ("CHUNKING" in extensions)


def test_an_async_source_that_fails_mid_body_is_not_delivered():
    from smtp_servers import ScriptedServer

    async def broken():
        yield b"Subject: half\r\n\r\n" + (b"y" * 126 + b"\r\n") * 1024
        raise OSError("the disk went away")

    with ScriptedServer() as server:
        with pytest.raises(scenarios.SMTPSourceError, match="disk went away") as info:
            asyncio.run(aio.send(server=scenarios.HOST, port=server.port, from_="a@example.com",
                                 rcpt="b@example.com", source=broken(), timeout=scenarios.SAFETY_TIMEOUT))
    assert info.value.phase == "body" and server.messages == []  # hung up mid-DATA: nothing stored


def test_the_blocking_transport_refuses_an_async_source_before_sending_it(plain):
    from smtpstream.smtp import Session as BlockingSession

    port, handler = plain

    async def chunks():
        yield b"Subject: x\r\n\r\nx\r\n"

    source = chunks()
    with BlockingSession(server=scenarios.HOST, port=port, timeout=scenarios.SAFETY_TIMEOUT) as session:
        with pytest.raises(scenarios.SMTPSourceError, match="asyncio transport"):
            session.send(from_="a@example.com", rcpt="b@example.com", source=source)
        ok = session.send(from_="a@example.com", rcpt="b@example.com", source=[b"Subject: y\r\n\r\ny\r\n"])
    asyncio.run(source.aclose())
    assert ok.queue_id == "Q0001" and len(handler.box) == 1
