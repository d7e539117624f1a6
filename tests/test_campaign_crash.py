"""Crash safety of campaigns (issue 13): kill the sender at random moments, rerun, compare.

A 3,000-row campaign runs as ``smtpstream campaign send`` in a subprocess
against postfix's smtp-sink ``-d`` (a PIPELINING server that keeps every
message as a file). It is stopped at random moments (a fixed seed) and run
again until it finishes. Then what the server stored, counted by
Message-ID, is compared with what the journal recorded:

* ``kill -9`` (at least 30 kills): every row delivered exactly once, except
  the rows the journal calls *unknown* (at most once each, never resent
  without --resend-unknown), and at most ``connections`` x 2 of those per kill;
* SIGINT and SIGTERM: a graceful stop, so after every stop the server holds
  exactly the rows the journal calls sent, and nothing is ever unknown.
"""
from __future__ import annotations

import collections
import csv
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from smtpstream.campaign import Journal
from smtp_servers import HOST
from test_postfix_sink import sink  # noqa: F401  (a fixture: smtp-sink -d on 127.0.0.1)

ROWS = 3000
CONNECTIONS = 2
MESSAGE_ID = re.compile(rb"^Message-ID: (<[^>]+>)", re.M | re.I)


def prepare(tmp_path: Path) -> list[str]:
    manifest = tmp_path / "rows.csv"
    with open(manifest, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "email", "name"])
        for i in range(ROWS):
            writer.writerow([f"row-{i}", f"r{i}@example.com", f"Customer {i}"])
    body = tmp_path / "body.txt"
    body.write_text("Dear {name},\n\nyour statement is ready.\n" + "A line of the statement.\n" * 20)
    return [str(manifest), "--journal", str(tmp_path / "run.db"), "--from", "statements@example.com",
            "--subject", "Statement {id}", "--text-file", str(body), "--connections", str(CONNECTIONS),
            "--quiet"]


def start(args: list[str], port: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "smtpstream", "campaign", "send", *args,
                             "--server", f"{HOST}:{port}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def journal_states(db: Path) -> dict[str, set[str]]:
    """Message-IDs per state, as the journal holds them (its redo log included)."""
    out: dict[str, set[str]] = collections.defaultdict(set)
    if not db.exists():
        return out
    journal = Journal(str(db))
    try:
        for message_id, state in journal.states().items():
            out[state].add(message_id)
    finally:
        journal.close()
    return out


def stored(dump: Path, settle: float = 10.0) -> collections.Counter:
    """Message-IDs of what smtp-sink wrote, once its file count stops changing."""
    deadline = time.monotonic() + settle
    count = -1
    while time.monotonic() < deadline:
        now = len(list(dump.iterdir()))
        if now == count:
            break
        count = now
        time.sleep(0.15)
    found: collections.Counter = collections.Counter()
    for path in dump.iterdir():
        data = path.read_bytes()
        if not data:  # smtp-sink opens the file at DATA: a client that hung up there sent nothing
            continue
        match = MESSAGE_ID.search(data)
        assert match, f"no Message-ID in {path}"
        found[match[1].decode()] += 1
    return found


def run_until_done(args, port, rng, stop, db, after_stop, max_runs=400, max_stops=None):
    """Start the campaign, stop it with ``stop`` after a random delay, again and again
    (at most ``max_stops`` times), until one run finishes by itself.
    Returns (stops, the last run's exit code, its output)."""
    stops = 0
    for _ in range(max_runs):
        child = start(args, port)
        try:
            child.wait(timeout=None if stops == max_stops else rng.uniform(0.05, 0.9))
        except subprocess.TimeoutExpired:
            os.kill(child.pid, stop)
            code = child.wait(timeout=60)
            stops += 1
            after_stop(code)
            continue
        out, err = child.communicate()
        return stops, child.returncode, out.decode() + err.decode()
    raise AssertionError("the campaign never finished")


def test_kill_9_loses_nothing_and_duplicates_nothing(sink, tmp_path):  # noqa: F811
    port, dump = sink
    args = prepare(tmp_path)
    db = tmp_path / "run.db"
    rng = random.Random(13)
    unknown_per_kill = []

    def after_kill(code):
        assert code in (-signal.SIGKILL, 0, 1)  # 0, 1: it finished just before the kill
        # the rows whose fate this kill left unknown: marked sending, never answered
        unknown_per_kill.append(len(journal_states(db)["sending"]))

    total_kills = 0
    rounds = 0
    while total_kills < 30:
        rounds += 1
        if db.exists():
            for p in tmp_path.glob("run.db*"):
                p.unlink()
            for p in dump.iterdir():
                p.unlink()
        kills, code, output = run_until_done(args, port, rng, signal.SIGKILL, db, after_kill)
        total_kills += kills
        states = journal_states(db)
        assert code in (0, 1), output
        assert not states["pending"] and not states["sending"] and not states["deferred"] and not states["failed"]
        assert len(states["sent"]) + len(states["unknown"]) == ROWS
        server = stored(dump)
        assert {m for m, n in server.items() if n > 1} == set(), "a message was stored twice"
        assert states["sent"] <= set(server), "a row journaled sent is not on the server"
        assert set(server) <= states["sent"] | states["unknown"], "the server has a row the journal does not know"
        print(f"\nround {rounds}: {kills} kills, {len(states['unknown'])} unknown, "
              f"{len(states['unknown'] & set(server))} of them delivered")
    assert all(n <= 2 * CONNECTIONS for n in unknown_per_kill), unknown_per_kill
    assert total_kills >= 30


@pytest.mark.parametrize("stop, exit_code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_sigint_and_sigterm_stop_gracefully(sink, tmp_path, stop, exit_code):  # noqa: F811
    port, dump = sink
    # At most 300 messages a second: a run outlasts the random stop delays however fast
    # the sender gets, so the stops land mid-run (no journal ever takes them for granted).
    args = prepare(tmp_path) + ["--rate", "300"]
    db = tmp_path / "run.db"
    rng = random.Random(int(stop))
    codes = []

    def after_stop(code):
        codes.append(code)
        states = journal_states(db)
        assert not states["sending"] and not states["unknown"], "a graceful stop left an outcome unknown"
        server = stored(dump, settle=2.0)
        assert max(server.values(), default=1) == 1
        assert set(server) == states["sent"], "the server and the journal disagree after a graceful stop"

    stops, code, output = run_until_done(args, port, rng, stop, db, after_stop, max_stops=15)
    print(f"\n{signal.Signals(stop).name}: {stops} graceful stops, exit codes {collections.Counter(codes)}")
    assert code == 0, output
    assert stops >= 5, "too few stops to say anything"
    # a stop during interpreter start-up ends it before the handler exists: -signal, or 1 for SIGINT
    assert exit_code in codes, codes
    states = journal_states(db)
    assert len(states["sent"]) == ROWS and not states["unknown"]
    server = stored(dump)
    assert set(server) == states["sent"] and set(server.values()) == {1}
