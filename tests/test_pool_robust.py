"""Bulk sending against relays that misbehave, and callers that make mistakes (issue 10).

Every scenario runs on both pools and, where it applies, both sessions,
against aiosmtpd on 127.0.0.1. Nothing here asserts a time: where speed is
the point (greylisting), the test checks the mechanism that made it slow
(a pool-wide back-off) and prints the ratio of the two runs.
"""
from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
from aiosmtpd.controller import Controller

from smtpstream import aio, smtp
from smtpstream.pool import AsyncPool, CircuitBreaker, Pool, RateLimit
from smtpstream.smtp.bulk import backs_off
from smtpstream.smtp.errors import (
    SMTPAuthenticationError,
    SMTPDataError,
    SMTPRecipientsRefused,
    SMTPSenderRefused,
    SMTPServerDisconnected,
    SMTPTLSError,
)
from smtpstream.smtp.reply import Reply

from smtp_servers import HOST, PASSWORD, USER, AuthHandler, authenticator, free_port, make_certificate, tls_contexts

SAFETY_TIMEOUT = 20


class RelayHandler(AuthHandler):
    """Greylists chosen recipients once each; says a 4.7.0 rate limit to MAIL for chosen
    senders; counts connections (one EHLO each)."""

    def __init__(self, greylist=(), rate_limited_senders=()) -> None:
        super().__init__()
        self.greylist = set(greylist)
        self.rate_limited = set(rate_limited_senders)
        self.connections = 0
        self.rcpt_replies: list[tuple[str, int]] = []

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if address in self.rate_limited:
            return "451 4.7.0 too many messages from you, slow down"
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.greylist:
            self.greylist.discard(address)
            self.rcpt_replies.append((address, 451))
            return "451 4.7.1 Greylisted, try again later"
        self.rcpt_replies.append((address, 250))
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)


@contextlib.contextmanager
def running(handler, **kwargs):
    port = free_port()
    kwargs.setdefault("enable_SMTPUTF8", False)
    controller = Controller(handler, hostname=HOST, port=port, **kwargs)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


def messages(n, key=False):
    out = []
    for i in range(n):
        fields = {"from": "a@example.com", "rcpt": f"r{i}@example.com",
                  "source": [b"Subject: %d\r\nMessage-ID: <m%d@test>\r\n\r\nbody %d\r\n" % (i, i, i)]}
        if key:
            fields["key"] = ("invoice", i)
        out.append(fields)
    return out


class BothPools:
    """Subclasses say how to build a pool and run its coroutine (or plain call)."""

    kind = ""

    def pool(self, port, **kw):
        cls = Pool if self.kind == "blocking" else AsyncPool
        kw.setdefault("timeout", SAFETY_TIMEOUT)
        return cls(server=HOST, port=port, **kw)

    def run(self, call):
        return asyncio.run(call) if self.kind == "async" else call

    def test_an_on_result_that_raises_stops_the_batch_and_is_raised_at_the_end(self):
        handler, seen = RelayHandler(), []

        def on_result(result):
            seen.append(result)
            if len(seen) == 3:
                raise LookupError("the caller's own bug")

        with running(handler) as port:
            with pytest.raises(LookupError, match="caller's own bug"):
                self.run(self.pool(port, connections=2).send_many(messages(200), on_result=on_result))
        stored = sorted(int(m.split(b"Subject: ")[1].split(b"\r\n")[0]) for m in (e.content for e in handler.box))
        assert 3 <= len(stored) < 200  # stopped early...
        # ...and every message the server holds was reported as sent, once
        assert sorted(r.index for r in seen if r.ok) == stored and len({r.index for r in seen}) == len(seen)

    # ---- deferrals stay where they belong

    def test_a_greylisted_recipient_defers_only_itself(self):
        clean, grey = RelayHandler(), RelayHandler(greylist={"r0@example.com"})
        timings = []
        for handler in (clean, grey):
            with running(handler) as port:
                pool = self.pool(port, connections=2)
                start = time.perf_counter()
                results = self.run(pool.send_many(messages(100)))
                timings.append(time.perf_counter() - start)
            assert pool.limit.backoffs == 0  # the mechanism that made the run 70x slower
        assert [r.ok for r in results] == [False] + [True] * 99
        assert results[0].deferred == ("r0@example.com",) and results[0].refused["r0@example.com"].code == 451
        assert len(grey.box) == 99 and len(clean.box) == 100
        print(f"\n{self.kind}: 100 messages, one greylisted: {timings[1] / timings[0]:.2f}x the clean run")

    def test_a_rate_limit_at_mail_slows_the_pool_down(self):
        handler = RelayHandler(rate_limited_senders={"slow@example.com"})
        fields = messages(6)
        fields[2]["from"] = "slow@example.com"
        with running(handler) as port:
            pool = self.pool(port, connections=1)
            results = self.run(pool.send_many(fields))
        assert [r.ok for r in results] == [True, True, False, True, True, True]
        assert isinstance(results[2].error, SMTPSenderRefused) and results[2].deferred == ("r2@example.com",)
        assert pool.limit.backoffs == 1

    # ---- settings and messages checked

    @pytest.mark.parametrize("settings, error", [
        ({"pasword": "x"}, TypeError),
        ({"sever": "mx.example.com"}, TypeError),
        ({"source": [b"x"]}, TypeError),
        ({"port": "25"}, ValueError),
        ({"timeout": -1}, ValueError),
        ({"connections": 0}, ValueError),
        ({"connections": 2.5}, TypeError),
        ({"rate": float("nan")}, ValueError),
        ({"backoff_factor": 2}, ValueError),
        ({"circuit_breaker": 0}, ValueError),
        ({"user": 5}, TypeError),
    ])
    def test_settings_are_checked_when_the_pool_is_built(self, settings, error):
        cls = Pool if self.kind == "blocking" else AsyncPool
        with pytest.raises(error):
            cls(**{"server": HOST, "port": free_port(), **settings})

    def test_one_result_per_message_whatever_the_items(self):
        handler = RelayHandler()
        good = messages(4)
        items = [good[0], None, good[1], 5, {"form": "typo@example.com", **good[2]}, good[3]]
        with running(handler) as port:
            results = self.run(self.pool(port, connections=2).send_many(items))
        assert [r.index for r in results] == list(range(6))
        assert [r.ok for r in results] == [True, False, True, False, False, True]
        assert "mapping" in str(results[1].error) and "form" in str(results[4].error)
        assert sorted(e.rcpt_tos[0] for e in handler.box) == ["r0@example.com", "r1@example.com", "r3@example.com"]

    def test_the_caller_s_iterator_failing_is_raised_after_the_rest_is_reported(self):
        def items():
            yield from messages(3)
            raise LookupError("the database went away")

        handler = RelayHandler()
        seen = []
        with running(handler) as port:
            with pytest.raises(LookupError) as info:
                self.run(self.pool(port, connections=2).send_many(items(), on_result=seen.append))
        assert sorted(r.index for r in seen) == [0, 1, 2] and all(r.ok for r in seen)
        assert len(handler.box) == 3 and info.value.results is None  # they went to on_result
        with running(handler) as port:
            with pytest.raises(LookupError) as info:
                self.run(self.pool(port, connections=2).send_many(items()))
        assert [r.ok for r in info.value.results] == [True, True, True]

    def test_keys_come_back_on_the_results_and_are_never_sent(self):
        handler = RelayHandler()
        with running(handler) as port:
            results = self.run(self.pool(port, connections=2).send_many(messages(5, key=True)))
        assert [r.key for r in results] == [("invoice", i) for i in range(5)]
        assert all(b"invoice" not in e.original_content for e in handler.box) and len(handler.box) == 5

    # ---- a broken setup is not hammered

    def test_an_untrusted_certificate_trips_the_breaker(self, tmp_path):
        server_ctx, _ = tls_contexts(*make_certificate(str(tmp_path)))
        handler = RelayHandler()
        with running(handler, tls_context=server_ctx, require_starttls=True) as port:
            pool = self.pool(port, connections=4)
            results = self.run(pool.send_many(messages(200)))
        assert len(results) == 200 and not any(r.ok for r in results)
        assert all(isinstance(r.error, SMTPTLSError) for r in results)
        assert 1 <= handler.connections <= 5, handler.connections
        assert sum(not r.attempted for r in results) >= 195
        print(f"\n{self.kind}: 200 messages, untrusted certificate: {handler.connections} handshakes")

    def test_a_refused_port_trips_the_breaker(self):
        made = []

        def create():
            import socket

            sock = socket.socket()
            made.append(sock)
            return sock

        pool = self.pool(free_port(), connections=4, create=create)  # nothing listens there
        results = self.run(pool.send_many(messages(200)))
        assert len(results) == 200 and not any(r.ok for r in results)
        assert all(isinstance(r.error, SMTPServerDisconnected) for r in results)
        assert 1 <= len(made) <= 5 and sum(not r.attempted for r in results) >= 195

    def test_refused_credentials_trip_the_breaker(self):
        handler = RelayHandler()
        with running(handler, authenticator=authenticator, auth_required=True, auth_require_tls=False) as port:
            pool = self.pool(port, connections=3, user=USER, password="wrong", starttls="off")
            results = self.run(pool.send_many(messages(100)))
        assert all(isinstance(r.error, SMTPAuthenticationError) and r.error.code == 535 for r in results)
        assert 1 <= handler.connections <= 5 and sum(not r.attempted for r in results) >= 95
        with running(handler, authenticator=authenticator, auth_required=True, auth_require_tls=False) as port:
            pool = self.pool(port, connections=3, user=USER, password=PASSWORD, starttls="off")
            assert all(r.ok for r in self.run(pool.send_many(messages(10))))  # the breaker is per pool run

    def test_the_breaker_can_be_turned_off(self):
        made = []

        def create():
            import socket

            made.append(socket.socket())
            return made[-1]

        pool = self.pool(free_port(), connections=2, create=create, circuit_breaker=None)
        results = self.run(pool.send_many(messages(5)))
        assert all(r.attempted and not r.ok for r in results) and len(made) == 10  # each tried twice


class TestBlockingPool(BothPools):
    kind = "blocking"

    def test_a_coroutine_function_on_result_is_refused_before_sending(self):
        async def on_result(result):  # pragma: no cover - never called
            pass

        handler = RelayHandler()
        with running(handler) as port:
            with pytest.raises(TypeError, match="coroutine"):
                self.pool(port).send_many(messages(3), on_result=on_result)
            with smtp.Session(server=HOST, port=port) as session, pytest.raises(TypeError, match="coroutine"):
                session.send_many(messages(3), on_result=on_result)
        assert handler.box == []


class TestAsyncPool(BothPools):
    kind = "async"

    def test_a_coroutine_on_result_is_awaited_in_order(self):
        handler = RelayHandler()
        seen, active = [], []

        async def on_result(result):
            assert not active  # one at a time
            active.append(1)
            await asyncio.sleep(0.001)
            seen.append(result.index)
            active.pop()

        with running(handler) as port:
            assert asyncio.run(self.pool(port, connections=2).send_many(messages(30), on_result=on_result)) is None

            async def on_session():
                async with aio.Session(server=HOST, port=port) as session:
                    return await session.send_many(messages(10), on_result=on_result)

            before = len(seen)
            assert asyncio.run(on_session()) is None
        assert sorted(seen[:before]) == list(range(30)) and seen[before:] == list(range(10))
        assert len(handler.box) == 40

    def test_cancelled_send_reports_every_outcome(self):
        class Slow(RelayHandler):
            async def handle_DATA(self, server, session, envelope):
                await asyncio.sleep(0.02)
                return await super().handle_DATA(server, session, envelope)

        handler = Slow()
        seen = []

        async def main(port):
            task = asyncio.ensure_future(self.pool(port, connections=2).send_many(messages(200), on_result=seen.append))
            while len(seen) < 10:
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        with running(handler) as port:
            asyncio.run(main(port))
        stored = {e.rcpt_tos[0] for e in handler.box}
        accepted = {f"r{r.index}@example.com" for r in seen if r.ok}
        unknown = {f"r{r.index}@example.com" for r in seen if r.unknown}
        assert accepted <= stored <= accepted | unknown
        assert len(seen) == len({r.index for r in seen}) < 200


# ------------------------------------------------------------------ the rules, without a server


def _error(cls, code, enhanced, phase, **kw):
    reply = Reply(code, (f"{enhanced} text",))
    if cls is SMTPRecipientsRefused:
        return cls("refused", {"x@example.com": reply})
    return cls("failed", phase=phase, reply=reply)


@pytest.mark.parametrize("cls, code, enhanced, phase, slows", [
    (SMTPRecipientsRefused, 451, "4.7.1", "rcpt", False),   # greylisting
    (SMTPRecipientsRefused, 452, "4.2.2", "rcpt", False),   # a full mailbox
    (SMTPRecipientsRefused, 421, "4.3.2", "rcpt", True),
    (SMTPSenderRefused, 451, "4.7.0", "mail", True),
    (SMTPSenderRefused, 550, "5.7.1", "mail", False),
    (SMTPDataError, 451, "4.7.28", "end", True),
    (SMTPDataError, 451, "4.3.2", "end", True),
    (SMTPDataError, 452, "4.4.5", "end", True),
    (SMTPDataError, 451, "4.3.0", "end", False),             # one message's trouble
    (SMTPServerDisconnected, 421, "4.4.2", "greeting", True),
])
def test_which_failures_back_off(cls, code, enhanced, phase, slows):
    assert backs_off(_error(cls, code, enhanced, phase)) is slows


def test_backoff_without_a_rate_halves_the_measured_rate(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr("smtpstream.pool.time.monotonic", lambda: clock[0])
    limit = RateLimit(None, backoff_seconds=5.0, factor=0.5, floor=1.0)
    for _ in range(200):  # 100 messages per second for two seconds
        assert limit.delay() == 0.0
        clock[0] += 0.01
    assert limit.measured() == pytest.approx(100, rel=0.05)
    limit.backoff()
    waits = [limit.delay() for _ in range(5)]  # no time passes: slots 1/50 s apart
    assert waits == pytest.approx([0.02 * (i + 1) for i in range(5)], rel=0.05)
    clock[0] += 5.5
    assert limit.delay() == 0.0  # the slow spell is over


def test_backoff_floor_and_factor_apply_to_a_set_rate(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr("smtpstream.pool.time.monotonic", lambda: clock[0])
    limit = RateLimit(4.0, backoff_seconds=10.0, factor=0.1, floor=1.0)
    limit.backoff()
    assert [limit.delay() for _ in range(3)] == pytest.approx([1.0, 2.0, 3.0])  # 0.4/s floored at 1/s


def test_the_breaker_admits_one_probe_until_a_connection_succeeds():
    breaker = CircuitBreaker(3)
    assert breaker.admit() == "go" and breaker.admit() == "wait"
    breaker.success()
    assert breaker.admit() == breaker.admit() == "go"  # proven: every slot may connect
    error = SMTPTLSError("certificate verify failed", phase="starttls")
    for _ in range(3):
        assert breaker.admit() == "go"
        breaker.failure(error)
    assert breaker.admit() is error


# ------------------------------------------------------------------ sessions


class CloseAfter(RelayHandler):
    """Says 421 to the command after each ``n``-th delivered message, closing the connection."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if getattr(session, "delivered", 0) >= self.n:
            return "421 4.4.2 closing: too many messages on this connection"
        return await super().handle_MAIL(server, session, envelope, address, mail_options)

    async def handle_DATA(self, server, session, envelope):
        session.delivered = getattr(session, "delivered", 0) + 1
        return await super().handle_DATA(server, session, envelope)


class BothSessions:
    kind = ""

    def session_run(self, port, body):
        """Run ``body(session)`` (a plain function or a coroutine function) on an open session."""
        if self.kind == "blocking":
            with smtp.Session(server=HOST, port=port, timeout=SAFETY_TIMEOUT) as session:
                return body(session)

        async def main():
            async with aio.Session(server=HOST, port=port, timeout=SAFETY_TIMEOUT) as session:
                return await body(session)
        return asyncio.run(main())

    def test_a_session_reopens_after_the_server_closed_it(self):
        handler = CloseAfter(1)
        m = messages(3)

        if self.kind == "blocking":
            def body(session):
                first = session.send(m[0])
                with pytest.raises(SMTPServerDisconnected):
                    session.send(m[1])  # the 421: this one is not sent
                assert session.closed
                second = session.send(m[1])  # a new connection
                [refused] = session.send_many([m[2]])  # its 421: that message's result
                return first, second, refused, session.send_many([m[2]])
        else:
            async def body(session):
                first = await session.send(m[0])
                with pytest.raises(SMTPServerDisconnected):
                    await session.send(m[1])
                assert session.closed
                second = await session.send(m[1])
                [refused] = await session.send_many([m[2]])
                return first, second, refused, await session.send_many([m[2]])

        with running(handler) as port:
            first, second, refused, [third] = self.session_run(port, body)
        assert first.code == second.code == 250 and third.ok
        assert not refused.ok and refused.error.code == 421 and refused.deferred == ("r2@example.com",)
        assert [e.rcpt_tos[0] for e in handler.box] == ["r0@example.com", "r1@example.com", "r2@example.com"]
        assert handler.connections == 3

    def test_a_closed_session_stays_closed_until_open(self):
        handler = RelayHandler()
        m = messages(2)
        with running(handler) as port:
            if self.kind == "blocking":
                session = smtp.Session(server=HOST, port=port)  # connects here
                assert handler.connections == 1
                session.close()
                with pytest.raises(SMTPServerDisconnected, match="closed"):
                    session.send(m[0])
                session.open().send(m[1])
                session.close()
            else:
                async def main():
                    session = aio.Session(server=HOST, port=port)
                    await session.open()
                    await session.close()
                    with pytest.raises(SMTPServerDisconnected, match="closed"):
                        await session.send(m[0])
                    await (await session.open()).send(m[1])
                    await session.close()
                asyncio.run(main())
        assert [e.rcpt_tos[0] for e in handler.box] == ["r1@example.com"] and handler.connections == 2

    def test_keys_and_bad_items_on_a_session(self):
        handler = RelayHandler()
        items = messages(3, key=True)
        items.insert(1, None)

        if self.kind == "blocking":
            def body(session):
                return session.send_many(items)
        else:
            async def body(session):
                return await session.send_many(items)

        with running(handler) as port:
            results = self.session_run(port, body)
        assert [r.key for r in results] == [("invoice", 0), None, ("invoice", 1), ("invoice", 2)]
        assert [r.ok for r in results] == [True, False, True, True] and len(handler.box) == 3


class TestBlockingSession(BothSessions):
    kind = "blocking"


class TestAsyncSession(BothSessions):
    kind = "async"
