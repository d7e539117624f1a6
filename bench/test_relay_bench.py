"""A pool against a relay that greylists: the run with one greylisted recipient
against the clean run, same benchmark group (issue 10: at most 1.5x).

``python -m pytest bench/test_relay_bench.py --benchmark-json=relay.json; python bench/report.py relay.json``
"""
from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from smtp_servers import HOST, AuthHandler, free_port  # noqa: E402

from smtpstream.pool import AsyncPool, Pool  # noqa: E402


class Greylisting(AuthHandler):
    """Says 451 4.7.1 once to each address in ``greylist`` (refilled before each round)."""

    def __init__(self) -> None:
        super().__init__()
        self.greylist: set[str] = set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.greylist:
            self.greylist.discard(address)
            return "451 4.7.1 Greylisted, try again later"
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)


@pytest.fixture(scope="module")
def relay():
    handler = Greylisting()
    port = free_port()
    controller = Controller(handler, hostname=HOST, port=port)
    controller.start()
    yield port, handler
    controller.stop()


def messages(n):
    return [{"from": "a@example.com", "rcpt": f"r{i}@example.com", "source": [b"Subject: x\r\n\r\nbody\r\n"]}
            for i in range(n)]


@pytest.mark.parametrize("greylisted", [0, 1], ids=["clean", "one-greylisted"])
@pytest.mark.parametrize("kind", ["Pool", "AsyncPool"])
def test_greylisting_does_not_slow_the_pool(benchmark, relay, kind, greylisted):
    port, handler = relay
    pool = (Pool if kind == "Pool" else AsyncPool)(server=HOST, port=port, connections=2)

    def round_():
        handler.greylist = {f"r{i}@example.com" for i in range(greylisted)}
        results = pool.send_many(messages(100))
        return asyncio.run(results) if kind == "AsyncPool" else results

    results = round_()
    assert sum(not r.ok for r in results) == greylisted
    benchmark.group = f"relay/100 messages/{kind}"
    benchmark.pedantic(round_, rounds=5, iterations=1)
