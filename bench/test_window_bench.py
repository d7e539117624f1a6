"""Many messages per round trip: DATA mode and BDAT windows through a 20 ms round trip.

One ``Session`` (one connection) sends 2 KiB messages (``message()`` with
one text part, as ``bulk_common.small_body``) to a private Postfix with
CHUNKING (``private_postfix.py``: its own config and queue, delivery to
discard) through ``delay_proxy.py`` at ``SMTPSTREAM_BENCH_RTT_MS`` (default
20). Rows: DATA mode (``chunking=False``), then BDAT with ``window`` 1, 4,
16 and 64. ``msgs_per_s`` is messages over the wall time of ``send_many``;
each row then checks Postfix's log: every message received once, in order
(``ordered_once``), each delivered. ``ratio_vs_data`` is the row's msgs/s
over DATA mode's, same run. Issue 16's target: at least 300 msgs/s with a
large window. ``SMTPSTREAM_BENCH_BULK_SCALE`` scales the message counts.
Needs root and ``apt-get install postfix``.
"""
from __future__ import annotations

import itertools
import os
import time

import pytest

import delay_proxy
import private_postfix
from senders.bulk_common import SMALL_BODY

RTT_MS = float(os.environ.get("SMTPSTREAM_BENCH_RTT_MS", "20"))
SCALE = float(os.environ.get("SMTPSTREAM_BENCH_BULK_SCALE", "1"))
# (row, session fields, messages): enough for a few seconds each
ROWS = [
    ("data", {"chunking": False}, 150),
    ("bdat-w1", {"window": 1}, 150),
    ("bdat-w4", {"window": 4}, 400),
    ("bdat-w16", {"window": 16}, 1000),
    ("bdat-w64", {"window": 64}, 2000),
]
_runs = itertools.count()
FIGURES: dict[str, float] = {}


@pytest.fixture(scope="module")
def postfix():
    why = private_postfix.available()
    if why:
        pytest.skip(why)
    with private_postfix.private_postfix() as pf:
        with delay_proxy.delay_proxy(pf.port, rtt_ms=RTT_MS) as port:
            yield pf, port


def messages(run: int, count: int):
    from smtpstream.message import message, text

    for i in range(count):
        source = message({
            "headers": {"from": "Sender <sender@example.com>", "to": f"user{i}@example.com",
                        "subject": f"Digest {i}", "message-id": f"<r{run}.m{i}@bench.invalid>"},
            "body": {1: text(SMALL_BODY)},
        })
        yield {"from": "sender@example.com", "rcpt": source.recipients, "source": source}


@pytest.mark.parametrize("row,extra,count", ROWS, ids=[r[0] for r in ROWS])
def test_messages_per_second_through_the_delay(benchmark, postfix, row, extra, count):
    from smtpstream.smtp import Session

    pf, port = postfix
    count = max(20, int(count * SCALE))
    run = next(_runs)
    before = len(pf.message_ids())
    with Session(server="127.0.0.1", port=port, domain="client.example", **extra) as session:
        chunking = "CHUNKING" in session.extensions
        start = time.perf_counter()
        results = session.send_many(messages(run, count))
        wall = time.perf_counter() - start
        window = session.settings.window
    assert chunking, "the private Postfix should offer CHUNKING"
    assert all(r.ok for r in results), [r.error for r in results if not r.ok][:3]
    pf.wait_for(before + count)
    received = [m for m in pf.message_ids()[before:] if m.startswith(f"r{run}.")]
    ordered_once = received == [f"r{run}.m{i}@bench.invalid" for i in range(count)]
    FIGURES[row] = count / wall
    benchmark.group = f"window/delay{RTT_MS:g}ms/2KiB/1conn"
    benchmark.name = row
    benchmark.extra_info.update(
        impl=row, messages=count, wall_s=wall, msgs_per_s=count / wall, rtt_ms=RTT_MS,
        ordered_once=ordered_once, window_limit=window.limit, window_reason=window.reason,
        chunking=all(r.result.chunking for r in results),
    )
    if "data" in FIGURES:
        benchmark.extra_info["ratio_vs_data"] = FIGURES[row] / FIGURES["data"]
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)  # the figures are in extra_info
    assert ordered_once, "Postfix did not receive every message once, in order"
    assert window.limit == window.size, f"the window dropped: {window.reason}"
