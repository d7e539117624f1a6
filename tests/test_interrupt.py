"""Ctrl-C in the middle of a bulk send: what the server stored is what was reported.

A subprocess runs ``Pool.send_many`` / ``AsyncPool.send_many`` against aiosmtpd
on 127.0.0.1 and gets SIGINT at a random moment (fixed seed), 20 times per
pool. Then every message reported accepted is on the server, and every
message on the server was reported accepted or unknown; no message is
reported twice, none stored twice.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import time

import pytest
from aiosmtpd.controller import Controller

from smtp_servers import HOST, AuthHandler, free_port

CHILD = os.path.join(os.path.dirname(__file__), "interrupt_child.py")
RUNS = 20
MESSAGES = 3000


class SlowHandler(AuthHandler):
    """Takes a few milliseconds per message, so that replies are often outstanding."""

    async def handle_DATA(self, server, session, envelope):
        await asyncio.sleep(0.003)
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


def stored_keys(handler, tag):
    keys = []
    for envelope in handler.box:
        match = re.search(rb"Message-ID: <m(\d+)\.([\w-]+)@interrupt\.test>", envelope.original_content)
        if match and match.group(2).decode() == tag:
            keys.append(int(match.group(1)))
    return keys


@pytest.mark.parametrize("kind", ["blocking", "async"])
def test_sigint_at_random_moments_reports_exactly_what_the_server_stored(kind):
    rng = random.Random(f"interrupt-{kind}")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [
        os.path.join(os.path.dirname(os.path.dirname(__file__)), "src"), os.environ.get("PYTHONPATH")])))
    handler = SlowHandler()
    cut_mid_stream = 0
    with running(handler) as port:
        for run in range(RUNS):
            tag = f"{kind}-{run}"
            child = subprocess.Popen([sys.executable, CHILD, kind, str(port), str(MESSAGES), tag],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
            assert child.stdout.readline().strip() == "ready"
            time.sleep(rng.uniform(0.0, 1.2))
            child.send_signal(signal.SIGINT)
            out, err = child.communicate(timeout=60)
            lines = out.splitlines()
            assert child.returncode == 130 and lines[-1] == "interrupted", (child.returncode, err[-2000:])
            reports = [json.loads(line) for line in lines[:-1]]
            keys = [r["key"] for r in reports]
            assert len(keys) == len(set(keys)), "a message was reported twice"
            time.sleep(0.05)  # the server's last DATA handlers
            stored = stored_keys(handler, tag)
            assert len(stored) == len(set(stored)), "a message was stored twice"
            accepted = {r["key"] for r in reports if r["ok"]}
            unknown = {r["key"] for r in reports if r["unknown"]}
            assert accepted <= set(stored) <= accepted | unknown, (
                [r for r in reports if r["key"] in set(stored) - accepted - unknown], sorted(accepted - set(stored)))
            cut_mid_stream += 0 < len(accepted) < MESSAGES
            print(f"{tag}: {len(accepted)} accepted, {len(unknown)} unknown, "
                  f"{sum(not r['ok'] and not r['unknown'] for r in reports)} not delivered, {len(stored)} stored")
    assert cut_mid_stream >= RUNS // 2  # the interrupts did land in the middle of sending
