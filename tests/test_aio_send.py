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
