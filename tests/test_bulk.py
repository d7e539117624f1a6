"""Many messages over one connection: pipelining across messages, counted in round trips.

``ScriptedServer.turns`` counts how often the server, having answered
everything it had read, had to wait for the client: the round trips. With
PIPELINING a message costs one (its end of data travels with the next
message's envelope), without it four (MAIL, RCPT, DATA, end of data).
Every scenario runs on the blocking ``Session.send_many`` and on the asyncio
one, and checks what the server stored, message by message.
"""
from __future__ import annotations

import asyncio

import pytest

from smtpstream import aio
from smtpstream.pool import AsyncPool, Pool
from smtpstream.smtp import Session

from smtp_servers import HOST, ScriptedServer

K = 40


def fields(i: int, rcpt: str | None = None) -> dict:
    body = b"Subject: message %d\r\n\r\n" % i + b"line %d of the body\r\n" % i * (1 + i % 7)
    if i % 5 == 0:
        body += b".a line starting with a dot\r\n"
    return {"from": f"sender{i}@example.com", "rcpt": rcpt or f"rcpt{i}@example.com", "source": [body]}


def expected(i: int) -> bytes:
    return b"".join(fields(i)["source"])


def send_blocking(port, messages, **kw):
    with Session(server=HOST, port=port, domain="client.example", **kw) as session:
        return session.send_many(messages)


def send_async(port, messages, **kw):
    async def main():
        async with aio.Session(server=HOST, port=port, domain="client.example", **kw) as session:
            return await session.send_many(messages)
    return asyncio.run(main())


def send_pool(port, messages, **kw):
    return Pool(server=HOST, port=port, domain="client.example", connections=1, max_messages=10_000,
                **kw).send_many(messages)


def send_async_pool(port, messages, **kw):
    pool = AsyncPool(server=HOST, port=port, domain="client.example", connections=1, max_messages=10_000, **kw)
    return asyncio.run(pool.send_many(messages))


SENDERS = {"blocking": send_blocking, "asyncio": send_async, "pool": send_pool, "async-pool": send_async_pool}


@pytest.fixture(params=list(SENDERS))
def send(request):
    return SENDERS[request.param]


def check_stored(server: ScriptedServer, indexes) -> None:
    got = [(m.mail_from, m.rcpt_tos, m.content) for m in server.messages]
    assert got == [(f"sender{i}@example.com", [f"rcpt{i}@example.com"], expected(i)) for i in indexes]


def test_pipelined_messages_cost_one_round_trip_each(send):
    with ScriptedServer() as server:
        results = send(server.port, [fields(i) for i in range(K)])
    assert [r.index for r in results] == list(range(K)) and all(r.ok for r in results)
    assert all(r.result.pipelining and not r.result.chunking for r in results)
    check_stored(server, range(K))
    # greeting, EHLO, the first envelope, then one per message (the last one's is QUIT's)
    assert K <= server.turns <= K + 3, server.turns


def test_without_pipelining_each_message_costs_four_round_trips(send):
    with ScriptedServer(extensions=("8BITMIME",)) as server:
        results = send(server.port, [fields(i) for i in range(K)])
    assert all(r.ok and not r.result.pipelining for r in results)
    check_stored(server, range(K))
    assert 4 * K <= server.turns <= 4 * K + 3, server.turns


def test_with_chunking_and_a_window_of_one_one_round_trip_per_message_and_no_354(send):
    # (a larger window: tests/test_window.py)
    with ScriptedServer(extensions=("PIPELINING", "CHUNKING", "8BITMIME")) as server:
        results = send(server.port, [fields(i) for i in range(K)], window=1)
    assert all(r.ok and r.result.chunking for r in results)
    assert [m.mode for m in server.messages] == ["BDAT"] * K
    check_stored(server, range(K))
    assert K <= server.turns <= K + 3, server.turns
    assert not any(line.startswith(b"DATA") for line in server.lines)


def test_a_refused_message_keeps_its_own_result_and_the_rest_go_through(send):
    messages = [fields(i) for i in range(10)]
    messages[3] = fields(3, rcpt="nobody@example.com")
    with ScriptedServer(refuse={"nobody@example.com"}) as server:
        results = send(server.port, messages)
    assert [r.ok for r in results] == [i != 3 for i in range(10)]
    assert list(results[3].refused) == ["nobody@example.com"] and results[3].refused["nobody@example.com"].code == 550
    check_stored(server, [i for i in range(10) if i != 3])


def test_a_refused_end_of_data_is_that_message_s_result_only(send):
    with ScriptedServer(final_reply="554 5.7.1 rejected as spam") as server:
        results = send(server.port, [fields(i) for i in range(5)])
    assert [(r.ok, r.error.code, r.error.phase) for r in results] == [(False, 554, "end")] * 5
    # each refusal ended its own transaction: every message was still offered
    assert [m.mail_from for m in server.messages] == [f"sender{i}@example.com" for i in range(5)]


def test_bad_fields_fail_that_message_before_anything_is_sent(send):
    messages = [fields(0), {"from": "a@example.com", "rcpt": "x\r\nRCPT TO:<evil@example.com>", "source": [b"x"]},
                fields(2), {"from": "a@example.com", "rcpt": "b@example.com", "colour": "blue"}, fields(4)]
    with ScriptedServer() as server:
        results = send(server.port, messages)
    assert [r.ok for r in results] == [True, False, True, False, True]
    assert "control character" in str(results[1].error) and "colour" in str(results[3].error)
    check_stored(server, [0, 2, 4])
    assert not any(b"evil" in line for line in server.lines)


def test_a_session_that_is_closed_mid_stream_fails_only_what_was_not_delivered(send):
    with ScriptedServer(close_421_after=6) as server:
        results = send(server.port, [fields(i) for i in range(20)])
    if send in (send_pool, send_async_pool):  # reconnects: everything delivered, exactly once
        assert all(r.ok for r in results) and server.connections == 4
        check_stored(server, range(20))
    else:  # one session: the 421 is the result of every message it did not deliver
        assert [r.ok for r in results] == [True] * 6 + [False] * 14
        assert all(type(r.error).__name__ == "SMTPServerDisconnected" for r in results[6:])
        assert results[6].error.code == 421
        check_stored(server, range(6))


@pytest.mark.parametrize("send", [send_pool, send_async_pool], ids=["pool", "async-pool"])
def test_a_pool_loses_nothing_when_the_server_hangs_up_mid_stream(send):
    # The server closes without a word at the 5th MAIL of each connection:
    # the message whose envelope went unanswered is sent again on a new one.
    with ScriptedServer(hang_up_after=4) as server:
        results = send(server.port, [fields(i) for i in range(18)])
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    check_stored(server, range(18))  # each once, in order, nothing truncated
    assert server.connections == 5


def test_async_iterable_of_messages_on_an_async_session():
    async def produce():
        for i in range(6):
            await asyncio.sleep(0.005 if i % 2 else 0)  # not always ready at once: the held message is finished
            yield fields(i)

    with ScriptedServer() as server:
        results = send_async(server.port, produce())
    assert all(r.ok for r in results)
    check_stored(server, range(6))


@pytest.mark.parametrize("send", [send_pool, send_async_pool], ids=["pool", "async-pool"])
def test_a_rate_limit_never_holds_a_message_back_while_it_waits(send):
    # At 20 msgs/s the pool waits 50 ms before each message: the message before
    # it is finished first (its end of data is not kept for the next write), so
    # the server stores it well before the next MAIL arrives.
    rate, n = 20.0, 12
    with ScriptedServer() as server:
        results = send(server.port, [fields(i) for i in range(n)], rate=rate)
    assert all(r.ok for r in results)
    check_stored(server, range(n))
    span = server.stored_at[-1] - server.stored_at[0]
    assert 0.5 * rate <= (n - 1) / span <= 2.0 * rate
    gaps = [server.mail_at[k + 1] - server.stored_at[k] for k in range(n - 1)]
    assert min(gaps) > 0.25 / rate, gaps


def test_on_result_gets_each_result_once_and_nothing_is_kept():
    import gc
    import weakref

    def run(kind, port, messages, on_result):
        if kind == "blocking":
            with Session(server=HOST, port=port, domain="client.example") as session:
                return session.send_many(messages, on_result=on_result)
        if kind == "pool":
            return Pool(server=HOST, port=port, domain="client.example", connections=2).send_many(
                messages, on_result=on_result)

        async def main():
            if kind == "asyncio":
                async with aio.Session(server=HOST, port=port, domain="client.example") as session:
                    return await session.send_many(messages, on_result=on_result)
            pool = AsyncPool(server=HOST, port=port, domain="client.example", connections=2)
            return await pool.send_many(messages, on_result=on_result)
        return asyncio.run(main())

    for kind in ("blocking", "pool", "asyncio", "async-pool"):
        seen, refs, alive = [], [], []

        def on_result(r):
            seen.append((r.index, r.ok))
            refs.append(weakref.ref(r))
            if len(refs) == 12:  # the last one: are the earlier results still held somewhere?
                gc.collect()
                alive.append(sum(ref() is not None for ref in refs[:-1]))

        messages = [fields(i) for i in range(12)]
        messages[5] = fields(5, rcpt="nobody@example.com")
        with ScriptedServer(refuse={"nobody@example.com"}) as server:
            returned = run(kind, server.port, messages, on_result)
        gc.collect()
        assert returned is None, kind
        assert sorted(seen) == [(i, i != 5) for i in range(12)], kind
        assert alive == [0], f"{kind}: {alive} earlier results still held during the run"
