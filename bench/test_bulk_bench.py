"""Bulk sending on loopback against postfix's smtp-sink: many messages over 1 or 4 connections.

Each sender is a whole process under ``/usr/bin/time -v`` (``timed_run`` of
test_sender_bench): wall time, CPU seconds (user + sys), peak RSS; one round.
Senders (bench/senders/bulk_*; arguments HOST PORT KIND COUNT CONNECTIONS):
smtpstream's ``pool.Pool.send_many`` (threads), the same with the messages made from
one ``message.template`` (``smtpstream-template``: layout and body built once, To and
Subject per message) and ``pool.AsyncPool.send_many``
(``smtpstream-async``: one thread), the standard library (N threads, one
smtplib.SMTP each), aiosmtplib (N tasks, one connection each) and nodemailer
(``pool: true, maxConnections: N``, every sendMail at once).

Groups:

* ``bulk/1000x100KiB/{1,4}conn``: a short text and a 100 KiB attachment;
* ``bulk/10000x2KiB/{1,4}conn``: one text/plain part of about 2 KiB;
* ``bulk/delay20ms/200x100KiB/{1,4}conn``: through bench/delay_proxy.py, which
  adds 20 ms to every round trip: here the number of round trips per message
  (pipelining, concurrency) decides, not CPU.

``SMTPSTREAM_BENCH_BULK_SCALE`` (default 1) multiplies the message counts
(0.1 for a quick run); ``SMTPSTREAM_BENCH_RTT_MS`` (default 20) sets the delay.
extra_info: wall_s, cpu_s, maxrss_mib, messages, msgs_per_s, cpu_ms_per_msg.

``test_delay_proxy_*`` check the proxy itself (added RTT per NOOP exchange;
100 MB echoed through it, byte for byte) and record what they measured.
"""
from __future__ import annotations

import hashlib
import os
import random
import smtplib
import socket
import sys
import threading
import time

import pytest

from delay_proxy import delay_proxy
from test_message_bench import attachment_file
from test_sender_bench import HERE, available, sink_port, timed_run  # noqa: F401,F811  (sink_port: a fixture)

SCALE = float(os.environ.get("SMTPSTREAM_BENCH_BULK_SCALE", "1"))
RTT_MS = float(os.environ.get("SMTPSTREAM_BENCH_RTT_MS", "20"))
CONNECTIONS = [1, 4]

BULK_SENDERS = {
    "smtpstream": [sys.executable, str(HERE / "bulk_smtpstream.py")],
    "smtpstream-async": [sys.executable, str(HERE / "bulk_smtpstream.py"), "--async"],
    "smtpstream-template": [sys.executable, str(HERE / "bulk_smtpstream.py"), "--template"],
    "smtplib": [sys.executable, str(HERE / "bulk_smtplib.py")],
    "aiosmtplib": [sys.executable, str(HERE / "bulk_aiosmtplib.py")],
    "nodemailer": ["node", str(HERE / "bulk_nodemailer.js")],
}


def scaled(count: int) -> int:
    return max(1, round(count * SCALE))


@pytest.fixture(scope="module")
def delayed_port(sink_port):
    """The delay proxy in front of smtp-sink: every round trip costs RTT_MS more."""
    with delay_proxy(sink_port, RTT_MS) as port:
        yield port


def run_bulk(benchmark, group: str, name: str, port: int, kind: str, count: int, connections: int) -> None:
    why = available(name)
    if why:
        pytest.skip(f"{name} not available: {why}")
    attach = attachment_file("attach-100k.bin", 100 << 10)
    cmd = BULK_SENDERS[name][:2] + ["127.0.0.1", str(port), kind, str(count), str(connections), str(attach)]
    cmd += BULK_SENDERS[name][2:]
    benchmark.group = group
    benchmark.name = name
    benchmark.extra_info["impl"] = name
    results = []

    def once():
        results.append(timed_run(cmd))

    benchmark.pedantic(once, rounds=1, iterations=1)
    best = results[0]
    benchmark.extra_info.update(best)
    benchmark.extra_info.update(
        kind=kind,
        connections=connections,
        messages=count,
        msgs_per_s=count / max(best["wall_s"], 0.01),  # /usr/bin/time counts in hundredths
        cpu_ms_per_msg=1000 * best["cpu_s"] / count,
    )


@pytest.mark.parametrize("connections", CONNECTIONS)
@pytest.mark.parametrize("name", list(BULK_SENDERS))
def test_bulk_attach100k(benchmark, sink_port, name, connections):
    count = scaled(1000)
    run_bulk(benchmark, f"bulk/{count}x100KiB/{connections}conn", name, sink_port, "attach100k", count, connections)


@pytest.mark.parametrize("connections", CONNECTIONS)
@pytest.mark.parametrize("name", list(BULK_SENDERS))
def test_bulk_small2k(benchmark, sink_port, name, connections):
    count = scaled(10000)
    run_bulk(benchmark, f"bulk/{count}x2KiB/{connections}conn", name, sink_port, "small2k", count, connections)


@pytest.mark.parametrize("connections", CONNECTIONS)
@pytest.mark.parametrize("name", list(BULK_SENDERS))
def test_bulk_delayed(benchmark, delayed_port, name, connections):
    count = scaled(200)
    group = f"bulk/delay{RTT_MS:g}ms/{count}x100KiB/{connections}conn"
    run_bulk(benchmark, group, name, delayed_port, "attach100k", count, connections)


# ------------------------------------------------------------------ the proxy itself

def test_delay_proxy_rtt(benchmark, sink_port):
    """50 NOOPs straight to smtp-sink, then through a 20 ms proxy: ~20 ms more each."""
    exchanges = 50

    def per_noop_ms(port: int) -> float:
        with smtplib.SMTP("127.0.0.1", port, local_hostname="client.example.com") as client:
            client.ehlo()
            start = time.perf_counter()
            for _ in range(exchanges):
                assert client.noop()[0] == 250
            return 1000 * (time.perf_counter() - start) / exchanges

    measured = {}

    def once():
        measured["direct_ms"] = per_noop_ms(sink_port)
        with delay_proxy(sink_port, 20) as port:
            measured["proxied_ms"] = per_noop_ms(port)

    benchmark.group = "proxy/rtt"
    benchmark.name = "delay_proxy-20ms"
    benchmark.pedantic(once, rounds=1, iterations=1)
    benchmark.extra_info.update(proxy=True, rtt_ms_set=20, exchanges=exchanges, **measured)
    print(f"\nper NOOP: direct {measured['direct_ms']:.2f} ms, through the 20 ms proxy {measured['proxied_ms']:.2f} ms")
    assert 15 < measured["proxied_ms"] < 60


def _echo_server() -> tuple[socket.socket, threading.Thread]:
    """One connection: send back everything, then half-close after the client's EOF."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve():
        conn, _ = listener.accept()
        with conn:
            while data := conn.recv(1 << 18):
                conn.sendall(data)
            conn.shutdown(socket.SHUT_WR)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener, thread


def test_delay_proxy_throughput(benchmark):
    """100 MB of random bytes echoed through a 20 ms proxy: same bytes back, EOF both ways."""
    size = 100 * 1000 * 1000
    payload = random.Random(7).randbytes(size)
    want = hashlib.sha256(payload).hexdigest()
    measured = {}

    def once():
        listener, server = _echo_server()
        with listener, delay_proxy(listener.getsockname()[1], 20) as port:
            with socket.create_connection(("127.0.0.1", port)) as sock:
                def send():
                    view = memoryview(payload)
                    for at in range(0, size, 1 << 20):
                        sock.sendall(view[at : at + (1 << 20)])
                    sock.shutdown(socket.SHUT_WR)  # the proxy must carry the half-close

                start = time.perf_counter()
                sender = threading.Thread(target=send)
                sender.start()
                digest, got = hashlib.sha256(), 0
                while data := sock.recv(1 << 20):  # ends only when the echo's EOF comes back
                    digest.update(data)
                    got += len(data)
                seconds = time.perf_counter() - start
                sender.join()
            server.join(timeout=10)
        measured.update(bytes=got, seconds=seconds, same_bytes=digest.hexdigest() == want,
                        mb_per_s=size / seconds / 1e6)

    benchmark.group = "proxy/echo-100MB"
    benchmark.name = "delay_proxy-20ms"
    benchmark.pedantic(once, rounds=1, iterations=1)
    benchmark.extra_info.update(proxy=True, rtt_ms_set=20, **measured)
    print(f"\n100 MB echoed through the 20 ms proxy in {measured['seconds']:.2f} s: "
          f"{measured['mb_per_s']:.0f} MB/s each way, same bytes: {measured['same_bytes']}")
    assert measured["bytes"] == size and measured["same_bytes"]
    assert measured["mb_per_s"] > 20  # the delayed benchmarks move ~30 MB in several seconds


# ------------------------------------------------------------------ round trips per message

def test_delayed_round_trips_per_message(benchmark, sink_port):
    """smtpstream in-process through the 20 ms proxy: the steady-state cost of a message in round trips.

    The whole-process figures above include the interpreter's start and the
    session's opening (about 0.25 s: a tenth of a 200-message run). Here the
    slope between 50 and 150 messages on one session, divided by the RTT of a
    NOOP through the same proxy, gives round trips per message.
    """
    from smtpstream.message import attachment, message, text
    from smtpstream.smtp import Session

    attach = attachment_file("attach-100k.bin", 100 << 10)

    def messages(n):
        for i in range(n):
            yield {"source": message({
                "headers": {"from": "Sender <sender@example.com>", "to": f"user{i}@example.com",
                            "subject": f"Report {i}"},
                "body": {1: text("Please find the report attached.\n"), 2: attachment(str(attach))},
            })}

    measured = {}

    def once():
        with delay_proxy(sink_port, RTT_MS) as port:
            with smtplib.SMTP("127.0.0.1", port, local_hostname="client.example.com") as probe:
                probe.ehlo()
                start = time.perf_counter()
                for _ in range(20):
                    probe.noop()
                rtt = (time.perf_counter() - start) / 20
            seconds = {}
            for n in (50, 150):
                with Session(server="127.0.0.1", port=port, domain="client.example.com") as session:
                    start = time.perf_counter()
                    results = session.send_many(messages(n))
                    seconds[n] = time.perf_counter() - start
                assert all(r.ok for r in results)
        per_msg = (seconds[150] - seconds[50]) / 100
        measured.update(rtt_ms=1000 * rtt, ms_per_msg=1000 * per_msg, steady_msgs_per_s=1 / per_msg,
                        round_trips_per_msg=per_msg / rtt)

    benchmark.group = f"bulk/delay{RTT_MS:g}ms/steady-state"
    benchmark.name = "smtpstream"
    benchmark.pedantic(once, rounds=1, iterations=1)
    benchmark.extra_info.update(steady=True, rtt_ms_set=RTT_MS, **measured)
    print(f"\n{measured['ms_per_msg']:.2f} ms per message = {measured['round_trips_per_msg']:.2f} round trips "
          f"of {measured['rtt_ms']:.2f} ms: {measured['steady_msgs_per_s']:.1f} msgs/s per connection")
