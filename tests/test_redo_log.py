"""The SQLite journal's redo log (issue 13's speed, its guarantee unchanged).

During a run each mark and outcome is appended to ``<journal>-redo`` and
applied to the database in batches. What these tests break:

* ``kill -9`` of a process in the middle of its records (a fixed seed): the
  journal reopened holds every record the process had reported written, and
  at most the one it was writing besides;
* a log applied, then found again (the process died between the database's
  commit and the log's truncation): each record counts once;
* a log whose tail is torn or damaged: the whole records before it count;
* a second run on a journal a live run holds: refused, nothing written;
* a batch applied at once equals its records applied one by one, and equals
  the journal written without a log (hypothesis);
* another process reading a live run's journal sees what its log holds.
"""
from __future__ import annotations

import json
import marshal
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from smtpstream.campaign import Journal, JournalError
from smtpstream.campaign.journal import Entry, entry_row
from smtpstream.campaign.redo import read_records

MESSAGES = 40
CAMPAIGN = ("c0ffee", {"subject": "redo"})
OUTCOMES = ("sent", "refused", "deferred", "failed")

# A process that writes random marks and outcomes to a journal, reporting each
# one on stdout before ("doing") and after ("done") it is written, forever or
# until it has written ``count`` (fewer than a batch: all in the log, none
# applied); then it sleeps holding the journal.
WRITER = textwrap.dedent("""
    import json, random, sys, time
    from smtpstream.campaign import journal as module
    from smtpstream.campaign.journal import Journal, Entry
    path, seed, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    if count >= 0:  # the log applied only when it is full: the test knows what it holds
        module._REDO_INTERVAL = 3600
    journal = Journal(path)
    journal.claim(*json.loads(sys.argv[4]))
    if not journal.lookup("k0"):
        with journal.transaction():
            journal.add(1, [(f"k{i}", "d", None, f"<m{i}@x>", [f"a{i}@x", f"b{i}@x"]) for i in range(%d)])
    rng = random.Random(seed)
    done = 0
    while count < 0 or done < count:
        seq = rng.randrange(1, %d + 1)
        if rng.random() < 0.5:
            op = ["m", seq]
        else:
            state = rng.choice(%r)
            op = ["o", seq, state, [f"a{seq - 1}@x", f"b{seq - 1}@x"][:rng.randint(1, 2)]]
        print(json.dumps(["doing", op]), flush=True)
        if op[0] == "m":
            journal.sending(seq)
        else:
            nxt = time.time() + 600 if op[2] == "deferred" else None
            journal.record(seq, op[2], [Entry(a, op[2], 250, None, "ok", None, True, nxt, nxt) for a in op[3]])
        print(json.dumps(["done", op]), flush=True)
        done += 1
    print(json.dumps(["holding"]), flush=True)
    time.sleep(3600)
""" % (MESSAGES, MESSAGES, OUTCOMES))


def start_writer(db: Path, seed: int, count: int = -1) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WRITER, str(db), str(seed), str(count), json.dumps(CAMPAIGN)],
                            stdout=subprocess.PIPE, text=True)


def until_holding(child: subprocess.Popen) -> list:
    """The events of a writer given a count, up to its ``holding`` line (it holds the journal then)."""
    events = []
    for line in iter(child.stdout.readline, ""):
        if line.startswith('["holding"'):
            return events
        events.append(json.loads(line))
    raise AssertionError("the writer ended before it held the journal")


def apply(model: dict, op: list) -> None:
    """One record applied to the expected state: {seq: [state, attempts, {address: state}]}."""
    entry = model[op[1]]
    if op[0] == "m":
        entry[0] = "sending"
        entry[1] += 1
    else:
        entry[0] = op[2]
        for address in op[3]:
            entry[2][address] = op[2]


def fresh_model() -> dict:
    return {seq: ["pending", 0, {f"a{seq - 1}@x": "pending", f"b{seq - 1}@x": "pending"}]
            for seq in range(1, MESSAGES + 1)}


def journal_model(db: Path) -> dict:
    """What the journal at ``db`` holds, as :func:`fresh_model` shapes it (read by a Journal:
    a dead run's log is applied first)."""
    journal = Journal(str(db))
    try:
        out = {}
        for seq in range(1, MESSAGES + 1):
            entry = journal.entry(f"k{seq - 1}")
            out[seq] = [entry["state"], entry["attempts"], {r["address"]: r["state"] for r in entry["recipients"]}]
        return out
    finally:
        journal.close()


def test_kill_9_keeps_every_reported_record(tmp_path):
    db = tmp_path / "run.db"
    rng = random.Random(1313)
    model = fresh_model()
    for round_ in range(12):
        child = start_writer(db, seed=round_)
        lines = [child.stdout.readline()]  # its first record: it has started
        deadline = time.monotonic() + rng.uniform(0.0, 0.5)
        while time.monotonic() < deadline:  # reads as the child writes; then the kill, mid-record
            lines.append(child.stdout.readline())
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        lines += child.stdout.read().splitlines()
        child.stdout.close()
        events = [json.loads(line) for line in lines if line.strip()]
        done = [e[1] for e in events if e[0] == "done"]
        for op in done:
            apply(model, op)
        assert len(done) > 0, "the child wrote nothing before it was killed: the test proves nothing"
        found = journal_model(db)
        if found != model:  # only the record the child was writing may be there besides
            doing = [e[1] for e in events if e[0] == "doing"]
            assert len(doing) == len(done) + 1, "a record reported written is missing"
            apply(model, doing[-1])
        assert found == model
        assert not Path(str(db) + "-redo").exists(), "the dead run's log was applied and removed"


def test_a_log_applied_twice_counts_once(tmp_path):
    db = tmp_path / "run.db"
    child = start_writer(db, seed=7, count=300)
    events = until_holding(child)
    # 300 records: under the batch size, so the log holds them all, unapplied
    assert len([e for e in events if e[0] == "done"]) == 300
    saved = tmp_path / "saved-redo"
    shutil.copy(str(db) + "-redo", saved)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    child.stdout.close()
    assert len(read_records(os.open(saved, os.O_RDONLY))) == 300
    once = journal_model(db)  # applies the log, removes it
    model = fresh_model()
    for event in events:
        if event[0] == "done":
            apply(model, event[1])
    assert once == model
    shutil.copy(saved, str(db) + "-redo")  # as if the process had died before removing it
    assert journal_model(db) == once  # no mark counted twice (attempts), no state undone


def test_a_torn_or_damaged_tail_ends_the_log(tmp_path):
    db = tmp_path / "run.db"
    child = start_writer(db, seed=8, count=100)
    events = until_holding(child)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    child.stdout.close()
    log = Path(str(db) + "-redo")
    whole = log.read_bytes()
    ops = [e[1] for e in events if e[0] == "done"]

    def expected(n: int) -> dict:
        model = fresh_model()
        for op in ops[:n]:
            apply(model, op)
        return model

    base = tmp_path / "base.db"
    for name in ("", "-wal", "-shm"):  # the journal before the log: applied afresh each time
        if Path(str(db) + name).exists():
            shutil.copy(str(db) + name, str(base) + name)

    def reopen_with(log_bytes: bytes) -> dict:
        for name in ("", "-wal", "-shm"):
            if Path(str(base) + name).exists():
                shutil.copy(str(base) + name, str(db) + name)
        log.write_bytes(log_bytes)
        return journal_model(db)

    records = read_records(os.open(log, os.O_RDONLY))
    assert len(records) == 100
    # frame boundaries, from the frames' lengths
    bounds, at = [0], 0
    while at < len(whole):
        at += 8 + int.from_bytes(whole[at:at + 4], "little")
        bounds.append(at)
    assert bounds[-1] == len(whole) and len(bounds) == 101
    assert reopen_with(whole + bounds[1] * b"\0" + b"garbage") == expected(100)
    assert reopen_with(whole[:bounds[60] + 5]) == expected(60)  # cut in a frame's header
    assert reopen_with(whole[:bounds[61] - 1]) == expected(60)  # cut in its record
    damaged = bytearray(whole)
    damaged[bounds[30] + 10] ^= 0xFF  # flipped bits in record 31: it and all after it are dropped
    assert reopen_with(bytes(damaged)) == expected(30)
    # a record that still parses, of another message: only its CRC tells
    k = next(k for k in range(40, 100) if records[k][1] == "m")
    lsn, _, seq, when = records[k]
    forged = marshal.dumps((lsn, "m", seq % MESSAGES + 1, when), 4)
    assert len(forged) == bounds[k + 1] - bounds[k] - 8
    assert reopen_with(whole[:bounds[k] + 8] + forged + whole[bounds[k + 1]:]) == expected(k)


def test_a_second_run_is_refused_while_one_holds_the_journal(tmp_path):
    db = tmp_path / "run.db"
    child = start_writer(db, seed=9, count=5)
    events = until_holding(child)
    try:
        second = Journal(str(db))
        runs = second.get("runs")
        with pytest.raises(JournalError, match="another run is using this journal"):
            second.claim(*CAMPAIGN)
        assert second.get("runs") == runs == "1"  # the refused run wrote nothing
        # nor did it recover the live run's rows marked sending into unknown
        assert "unknown" not in second.states().values()
        second.close()
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        child.stdout.close()
    model = fresh_model()
    for event in events:
        if event[0] == "done":
            apply(model, event[1])
    third = Journal(str(db))  # the run died: the journal is free, its log applied
    assert third.claim(*CAMPAIGN) == 2
    third.close()
    assert journal_model(db) == model


def test_a_live_runs_log_is_read_by_other_processes(tmp_path):
    db = tmp_path / "run.db"
    child = start_writer(db, seed=10, count=6)
    events = until_holding(child)
    try:
        model = fresh_model()
        for event in events:
            if event[0] == "done":
                apply(model, event[1])
        in_log = read_records(os.open(str(db) + "-redo", os.O_RDONLY))
        assert len(in_log) == 6  # not applied yet: the test reads what only the log holds
        with sqlite3.connect(db) as raw:
            assert {s for (s,) in raw.execute("SELECT state FROM messages")} == {"pending"}
        reader = Journal(str(db))
        try:
            ids = {seq: f"<m{seq - 1}@x>" for seq in model}
            assert reader.states() == {ids[seq]: entry[0] for seq, entry in model.items()}
            counts = reader.counts()
            for state in ("pending", "sending", "sent", "refused", "deferred", "failed"):
                assert counts[state] == sum(1 for e in model.values() if e[0] == state), state
            assert counts["total"] == MESSAGES
            recipient_states = [s for e in model.values() for s in e[2].values()]
            for state in ("pending", "sent", "refused", "deferred", "failed"):
                assert counts["recipients"][state] == recipient_states.count(state), state
        finally:
            reader.close()
        assert Path(str(db) + "-redo").exists(), "a reader leaves a live run's log alone"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        child.stdout.close()


@pytest.mark.parametrize("apply_first", [True, False])
def test_a_reader_misses_nothing_when_the_run_applies_its_log_meanwhile(tmp_path, monkeypatch, apply_first):
    """The run applies and empties its log just before or just after a reader reads the
    log: the reader still sees every record, each once."""
    db = tmp_path / "run.db"
    run = Journal(str(db))
    try:
        run.claim(*CAMPAIGN)
        with run.transaction():
            run.add(1, [(f"k{i}", "d", None, f"<m{i}@x>", [f"a{i}@x"]) for i in range(3)])
        run.sending(1)
        run.sending(2)
        run.record(1, "sent", [Entry("a0@x", "sent", 250)])
        assert len(run._redo.records) == 3  # in the log only
        reader = Journal(str(db))
        read_log = reader._live_log

        def log_then_apply():
            if apply_first:
                run.sync()  # the run's batch lands in the database, its log emptied
            records = read_log()
            if not apply_first:
                run.sync()
            return records

        monkeypatch.setattr(reader, "_live_log", log_then_apply)
        assert reader.states() == {"<m0@x>": "sent", "<m1@x>": "sending", "<m2@x>": "pending"}
        run.record(2, "refused", [Entry("a1@x", "refused", 550)])
        counts = reader.counts()
        assert (counts["sent"], counts["refused"], counts["pending"], counts["total"]) == (1, 1, 1, 3)
        assert counts["recipients"]["sent"] == counts["recipients"]["refused"] == 1
        reader.close()
    finally:
        run.close()


def test_a_log_removed_by_another_opener_before_the_lock_is_not_written_to(tmp_path, monkeypatch):
    """Between a run's open of the log and its lock, another process may apply it and
    remove it: the run must then write to a new file at the path, not the removed one."""
    from smtpstream.campaign import redo

    db = tmp_path / "run.db"
    log = Path(str(db) + "-redo")
    real_flock = redo.fcntl.flock
    raced = []

    def flock(fd, how):  # the other opener wins the race once: it removes the file
        if not raced:
            raced.append(fd)
            os.unlink(log)
        return real_flock(fd, how)

    journal = Journal(str(db))
    try:
        monkeypatch.setattr(redo.fcntl, "flock", flock)
        journal.claim(*CAMPAIGN)  # creates the log, and loses it once before its lock
        monkeypatch.setattr(redo.fcntl, "flock", real_flock)
        with journal.transaction():
            journal.add(1, [("k0", "d", None, "<m0@x>", ["a0@x"])])
        journal.sending(1)
        assert raced and len(read_records(os.open(log, os.O_RDONLY))) == 1  # in the file others read
        assert journal_states_by_id(db) == {"<m0@x>": "sending"}
    finally:
        journal.close()


# ---- a batch equals its records one by one, and the journal written without a log

ADDRESSES = ("a@x", "b@x")
record_ops = st.lists(
    st.one_of(
        st.tuples(st.just("m"), st.integers(1, 4)),
        st.tuples(st.just("o"), st.integers(1, 4), st.sampled_from(OUTCOMES),
                  st.lists(st.sampled_from(ADDRESSES), min_size=1, max_size=2, unique=True),
                  st.integers(200, 599), st.floats(1e9, 2e9, allow_nan=False))),
    max_size=30)


def new_journal(where: str, name: str) -> Journal:
    journal = Journal(os.path.join(where, name))
    with journal.transaction():
        journal.add(1, [(f"k{i}", "d", None, f"<m{i}@x>", list(ADDRESSES)) for i in range(4)])
    return journal


def entries(op) -> list[Entry]:
    _, _, state, addresses, code, when = op
    later = when + 60 if state == "deferred" else None
    return [Entry(a, state, code, "5.0.0" if code >= 500 else None, f"reply {code}", "Q1", True, later, later)
            for a in addresses]


def table(journal: Journal, with_times: bool) -> tuple[list, list]:
    messages = journal.db.execute(
        f"SELECT seq, state, attempts, next_attempt{', updated' if with_times else ''} FROM messages ORDER BY seq")
    recipients = journal.db.execute(
        "SELECT seq, address, state, code, enhanced, text, queue_id, attempts, first_deferred, next_attempt"
        f"{', time' if with_times else ''} FROM recipients ORDER BY seq, address")
    return messages.fetchall(), recipients.fetchall()


@settings(max_examples=150, deadline=None)
@given(record_ops)
def test_a_batch_applies_as_its_records_one_by_one(ops):
    records = []
    for lsn, op in enumerate(ops, 1):
        when = 1.5e9 + lsn
        records.append((lsn, "m", op[1], when) if op[0] == "m" else
                       (lsn, "o", op[1], op[2], when, [entry_row(e) for e in entries(op)]))
    with tempfile.TemporaryDirectory() as where:
        batched, single, direct = (new_journal(where, n) for n in ("batched.db", "single.db", "direct.db"))
        try:
            batched._apply_redo(records)
            for record in records:
                single._apply_redo([record])
            for op in ops:  # no log: the journal's own writes, one commit each
                if op[0] == "m":
                    direct.sending(op[1])
                else:
                    direct.record(op[1], op[2], entries(op))
            assert table(batched, True) == table(single, True)
            assert table(batched, False) == table(direct, False)
            assert batched.get("redo_applied") == (str(len(records)) if records else None)
            batched._apply_redo(records)  # applied before: nothing changes
            assert table(batched, True) == table(single, True)
        finally:
            for journal in (batched, single, direct):
                journal.close()


# ---- a write to the log that fails (a full disk)

@pytest.mark.parametrize("failing", [11, 12])  # a mark's write and an outcome's flush: one of each
def test_a_failed_write_stops_the_run_before_that_end_of_data(tmp_path, monkeypatch, failing):
    from smtp_servers import aiosmtpd_running
    from test_campaign import Relay, campaign, rows, template, write_csv
    from smtpstream.campaign import read_manifest

    manifest = write_csv(tmp_path / "rows.csv", rows(30))
    real_write = os.write
    writes, kinds = [], []

    def write(fd, data):  # one write to the log goes out half, as on a disk that filled up
        if not os.readlink(f"/proc/self/fd/{fd}").endswith("-redo"):
            return real_write(fd, data)
        writes.append(len(data))
        if len(writes) == failing:
            kinds.append(last_kind(data))
            return real_write(fd, data[:len(data) // 2])
        return real_write(fd, data)

    relay = Relay()
    with aiosmtpd_running(relay) as port:
        monkeypatch.setattr(os, "write", write)
        with campaign(tmp_path, port, connections=1) as c:
            with pytest.raises(JournalError, match="redo log could not be written"):
                c.run(read_manifest(str(manifest)), template())
        monkeypatch.setattr(os, "write", real_write)
        stored = [str(m["message-id"]) for m in relay.stored()]
        states = journal_states_by_id(tmp_path / "run.db")
        assert 0 < len(stored) < 30
        assert {i for i, s in states.items() if s == "sent"} == set(stored)  # nothing stored unrecorded
        assert "sending" not in states.values() and "unknown" not in states.values()
        with campaign(tmp_path, port) as c:  # the disk has room again: the rest, once
            assert c.run(read_manifest(str(manifest)), template())["sent"] == 30
    ids = [str(m["message-id"]) for m in relay.stored()]
    assert len(ids) == 30 == len(set(ids))
    # both paths broken, not one twice: a mark's write (the outcomes held before it
    # ride along), then the flush of an outcome read after it
    assert kinds == [{11: "m", 12: "o"}[failing]]


def test_the_command_stops_with_exit_75_when_the_journal_cannot_be_written(tmp_path, monkeypatch, capsys):
    from smtp_servers import HOST, aiosmtpd_running
    from test_campaign import Relay, rows, write_csv
    from smtpstream import cli

    manifest = write_csv(tmp_path / "rows.csv", rows(30))
    body = tmp_path / "body.txt"
    body.write_text("Dear {name}, you owe {amount}.\n")
    real_write = os.write
    writes = []

    def write(fd, data):  # every write to the log from the 6th on fails: the disk stays full
        if os.readlink(f"/proc/self/fd/{fd}").endswith("-redo"):
            writes.append(last_kind(data))
            if len(writes) >= 6:
                raise OSError(28, "No space left on device")
        return real_write(fd, data)

    relay = Relay()
    with aiosmtpd_running(relay) as port:
        args = ["campaign", "send", str(manifest), "--journal", str(tmp_path / "run.db"), "--from",
                "billing@example.com", "--subject", "Invoice {id}", "--text-file", str(body), "--server",
                f"{HOST}:{port}", "--connections", "1", "--quiet"]
        monkeypatch.setattr(os, "write", write)
        code = cli.main(args)
        monkeypatch.setattr(os, "write", real_write)
        err = capsys.readouterr().err
        assert code == 75, err
        assert "the journal could not be written" in err and "No space left on device" in err
        stored = {str(m["message-id"]) for m in relay.stored()}
        assert 0 < len(stored) < 30
        # the outcomes read after the disk filled are lost with the process: those rows are unknown
        states = journal_states_by_id(tmp_path / "run.db")
        sent = {i for i, s in states.items() if s == "sent"}
        unknown = {i for i, s in states.items() if s in ("sending", "unknown")}
        assert sent <= stored <= sent | unknown
        assert writes[5] == "o" and len(unknown) == 1  # the 6th: an outcome, lost with the run
        again = cli.main(args)  # room again: the rest, once, the unknown ones listed and not resent
        assert again == (1 if unknown else 0), capsys.readouterr().err
    ids = [str(m["message-id"]) for m in relay.stored()]
    assert len(ids) == len(set(ids)) == 30 - len(unknown - stored)


def last_kind(frames: bytes) -> str:
    """The kind ("m" or "o") of the last record in one write to the log."""
    at = 0
    while True:
        size = int.from_bytes(frames[at:at + 4], "little")
        if at + 8 + size == len(frames):
            return marshal.loads(frames[at + 8:])[1]
        at += 8 + size


def journal_states_by_id(db: Path) -> dict[str, str]:
    journal = Journal(str(db))
    try:
        return journal.states()
    finally:
        journal.close()
