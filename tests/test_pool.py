"""The pool and the bulk API, on both transports: one scenario mixin, two subclasses.

Against aiosmtpd on 127.0.0.1. The rate test counts messages over a window
measured with a monotonic clock and allows 50%..200% of the rate.
"""
from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
from aiosmtpd.controller import Controller

from smtpstream.message import attachment, message
from smtpstream.pool import AsyncPool, Pool

from smtp_servers import HOST, AuthHandler, free_port

SAFETY_TIMEOUT = 20


class FlakyHandler(AuthHandler):
    """Says 421 to the end of data after ``every`` messages on a connection (without keeping it);
    answers 451 to recipients containing "later"."""

    def __init__(self, every: int | None = None, drop: bool = False) -> None:
        super().__init__()
        self.every = every
        self.drop = drop  # hang up instead of saying 421
        self.times: list[float] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if "later" in address:
            return f"451 4.3.0 <{address}>: try again later"
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)

    async def handle_DATA(self, server, session, envelope):
        count = getattr(session, "count", 0)
        if self.every is not None and count >= self.every:
            if self.drop:
                server.transport.close()
                return "451 4.3.0 (never seen: the connection is gone)"
            return "421 4.3.2 too many messages, closing"
        session.count = count + 1
        self.times.append(time.monotonic())
        return await super().handle_DATA(server, session, envelope)


@contextlib.contextmanager
def running(handler):
    port = free_port()
    controller = Controller(handler, hostname=HOST, port=port, enable_SMTPUTF8=False)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


def messages(n, rcpt=lambda i: f"r{i}@example.com"):
    return [{"from": "a@example.com", "rcpt": rcpt(i), "source": [b"Subject: %d\r\n\r\nbody %d\r\n" % (i, i)]}
            for i in range(n)]


class PoolScenarios:
    """Every scenario; subclasses say how to make a pool and run its calls."""

    def pool(self, port, **kw):
        raise NotImplementedError

    def run(self, call):
        raise NotImplementedError

    def test_every_message_delivered_exactly_once(self):
        handler = FlakyHandler()
        with running(handler) as port:
            pool = self.pool(port, connections=3, max_messages=4)
            results = self.run(pool.send_many(messages(20)))
        assert [r.index for r in results] == list(range(20)) and all(r.ok for r in results)
        bodies = sorted(e.original_content for e in handler.box)
        assert bodies == sorted(b"Subject: %d\r\n\r\nbody %d\r\n" % (i, i) for i in range(20))
        assert pool.connects >= 5  # max_messages=4: reconnects

    def test_421_after_n_messages_reconnects_and_loses_nothing(self):
        handler = FlakyHandler(every=3)
        with running(handler) as port:
            pool = self.pool(port, connections=2, max_messages=100)
            results = self.run(pool.send_many(messages(12)))
        assert all(r.ok for r in results), [r.error for r in results if not r.ok]
        assert sorted(e.rcpt_tos[0] for e in handler.box) == sorted(f"r{i}@example.com" for i in range(12))
        assert pool.connects >= 4

    def test_dropped_connections_reconnect_and_lose_nothing(self):
        handler = FlakyHandler(every=2, drop=True)
        with running(handler) as port:
            pool = self.pool(port, connections=2)
            results = self.run(pool.send_many(messages(9)))
        assert all(r.ok for r in results), [r.error for r in results if not r.ok]
        assert sorted(e.rcpt_tos[0] for e in handler.box) == sorted(f"r{i}@example.com" for i in range(9))

    @pytest.mark.parametrize("drop", [False, True], ids=["421", "hang-up"])
    def test_a_consumed_one_shot_source_is_never_resent_truncated(self, drop):
        handler = FlakyHandler(every=0, drop=drop)  # 421, or hangs up, at every end of data
        with running(handler) as port:
            pool = self.pool(port, connections=1)
            lines = (b"line %d\n" % i for i in range(20_000))  # a one-shot source: not replayable
            fields = {"from": "a@example.com", "rcpt": "r@example.com",
                      "source": message({"headers": {"subject": "once"}, "body": lines})}
            assert not fields["source"].replayable
            [result] = self.run(pool.send_many([fields]))
            assert not result.ok and result.error is not None
            again = self.run(pool.retry([result]))
        if drop:  # no reply to the end of data: unknown, and never resent by retry()
            assert result.unknown and not result.deferred and again == []
        else:
            [again] = again
            assert not again.ok and "already read" in str(again.error)
        assert handler.box == []  # nothing delivered, and nothing truncated

    def test_a_replayable_message_is_resent_whole_after_a_lost_connection(self):
        class DropOnce(FlakyHandler):
            async def handle_DATA(self, server, session, envelope):
                self.attempts.append(envelope.original_content)
                if len(self.attempts) == 1:
                    server.transport.close()  # the first end of data is never answered
                    return "451 4.3.0 (never seen)"
                return await super().handle_DATA(server, session, envelope)

        handler = DropOnce()
        handler.attempts = []
        with running(handler) as port:
            pool = self.pool(port, connections=1)
            source = message({"headers": {"from": "a@example.com", "to": "r@example.com", "subject": "again"},
                              "body": {1: {"body": "x" * 100_000}, 2: attachment(b"\x00\x01" * 50_000, "b.bin")}})
            assert source.replayable
            [result] = self.run(pool.send_many([{"source": source}]))
        assert result.ok, result.error
        first, second = handler.attempts
        assert first == second and len(first) > 200_000  # the same bytes, Message-ID included
        assert [e.original_content for e in handler.box] == [first]

    def test_partial_refusals_per_message_and_retry_of_deferred_only(self):
        def rcpt(i):
            return [f"ok{i}@example.com", f"refuse{i}@example.com", f"later{i}@example.com"] if i % 2 else \
                [f"refuse{i}@example.com"]

        handler = FlakyHandler()
        with running(handler) as port:
            pool = self.pool(port, connections=2)
            results = self.run(pool.send_many(messages(4, rcpt)))
            assert [r.ok for r in results] == [False, True, False, True]
            assert results[1].accepted == ("ok1@example.com",)
            assert {k: v.code for k, v in results[1].refused.items()} == {
                "refuse1@example.com": 550, "later1@example.com": 451}
            assert results[0].refused["refuse0@example.com"].code == 550 and results[0].deferred == ()
            assert results[3].deferred == ("later3@example.com",)
            handler.every = None
            again = self.run(pool.retry(results))
        assert [r.index for r in again] == [1, 3]
        assert all(not r.ok and r.deferred for r in again)  # still "later": refused again, 451
        assert len(handler.box) == 2

    def test_rate_limit_is_honoured(self):
        rate = 20.0
        handler = FlakyHandler()
        with running(handler) as port:
            pool = self.pool(port, connections=3, rate=rate)
            results = self.run(pool.send_many(messages(21)))
        assert all(r.ok for r in results)
        span = handler.times[-1] - handler.times[0]
        measured = (len(handler.times) - 1) / span
        assert 0.5 * rate <= measured <= 2.0 * rate


class TestBlockingPool(PoolScenarios):
    def pool(self, port, **kw):
        return Pool(server=HOST, port=port, timeout=SAFETY_TIMEOUT, **kw)

    def run(self, call):
        return call


class TestAsyncPool(PoolScenarios):
    def pool(self, port, **kw):
        return AsyncPool(server=HOST, port=port, timeout=SAFETY_TIMEOUT, **kw)

    def run(self, call):
        return asyncio.run(call)

    def test_async_iterable_of_messages(self):
        async def gen():
            for m in messages(5):
                yield m

        handler = FlakyHandler()
        with running(handler) as port:
            results = asyncio.run(self.pool(port, connections=2).send_many(gen()))
        assert all(r.ok for r in results) and len(handler.box) == 5
