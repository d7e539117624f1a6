"""The PostgreSQL journal (issue 17): the SQLite journal's behaviour, plus claims.

Against a PostgreSQL cluster started here (tests/services.py) and aiosmtpd.
What two workers can and cannot do to the same rows is checked with two
PgJournal objects (two worker ids) on one database, as two machines would be.
"""
from __future__ import annotations

import csv
import email
import itertools
import threading
import time

import pytest

from smtpstream.campaign import Campaign, JournalError, Template, open_journal, read_manifest
from smtpstream.campaign.journal import Entry

from services import fresh_database, postgres_server
from smtp_servers import HOST, AuthHandler, aiosmtpd_running

_names = itertools.count()


@pytest.fixture(scope="module")
def pg_server():
    with postgres_server() as url:
        yield url


@pytest.fixture
def pg(pg_server):
    return fresh_database(pg_server, f"journal_{next(_names)}")


def rows(n, directory):
    path = directory / f"rows-{n}.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "email", "name"])
        writer.writerows([f"k{i}", f"r{i}@example.com", f"Name {i}"] for i in range(n))
    return read_manifest(str(path))


TEMPLATE = Template("billing@example.com", "Invoice {id}", "Dear {name},\nyour invoice.\n")


def test_a_campaign_runs_on_the_postgresql_journal_as_on_sqlite(pg, tmp_path):
    handler = AuthHandler()
    with aiosmtpd_running(handler) as port:
        with Campaign(pg, server=HOST, port=port, connections=2) as campaign:
            counts = campaign.run(rows(40, tmp_path), TEMPLATE)
            assert counts["sent"] == 40 and counts["pending"] == 0 and counts["total"] == 40
            entry = campaign.result("k7")
        with Campaign(pg, server=HOST, port=port) as again:  # a rerun sends nothing
            assert again.run(rows(40, tmp_path), TEMPLATE)["sent"] == 40
    subjects = sorted(email.message_from_bytes(e.original_content)["subject"] for e in handler.box)
    assert subjects == sorted(f"Invoice k{i}" for i in range(40))  # each once
    assert entry["state"] == "sent" and entry["recipients"][0]["address"] == "r7@example.com"
    assert entry["recipients"][0]["code"] == 250


def test_a_changed_row_and_another_campaign_are_refused(pg, tmp_path):
    with Campaign(pg, server=HOST, port=1) as campaign:
        campaign.check(rows(3, tmp_path), TEMPLATE)
        journal = campaign.journal
        run = journal.claim(TEMPLATE.campaign_id(), TEMPLATE.definition())
        with journal.transaction():
            journal.add(run, [("k0", "digest-a", None, "<a@x>", ["a@example.com"])])
        with pytest.raises(JournalError, match="differs"), journal.transaction():
            journal.add(run + 1, [("k0", "digest-b", None, "<a@x>", ["a@example.com"])])
        with pytest.raises(JournalError, match="another campaign"):
            journal.claim("0" * 16, {"subject": "other"})


def journaled(url, n):
    journal = open_journal(url)
    run = journal.claim("c" * 16, {"subject": "s"})
    with journal.transaction():
        journal.add(run, [(f"k{i}", "d", {"n": i}, f"<m{i}@x>", [f"r{i}@example.com"]) for i in range(n)])
    return journal


def test_two_workers_never_claim_the_same_row(pg):
    journaled(pg, 400).close()
    workers = [open_journal(pg) for _ in range(2)]
    claimed: list[list[int]] = [[], []]

    def take(k):
        after = 0
        while True:
            page = workers[k].due(time.time(), after, False, limit=7)
            if not page:
                return
            claimed[k].extend(item.seq for item in page)
            after = page[-1].seq

    threads = [threading.Thread(target=take, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not set(claimed[0]) & set(claimed[1])
    assert sorted(claimed[0] + claimed[1]) == list(range(1, 401))
    for w in workers:
        w.close()


def test_an_expired_claim_returns_pending_rows_and_makes_sending_rows_unknown(pg):
    journaled(pg, 4).close()
    dead, alive = open_journal(pg), open_journal(pg)
    dead.lease = alive.lease = 0.3
    page = dead.due(time.time(), 0, False)
    assert [i.seq for i in page] == [1, 2, 3, 4]
    dead.sending(1)  # its end of data may be on the wire: then the worker dies
    assert alive.due(time.time(), 0, False) == []  # held by a live claim
    time.sleep(0.4)
    assert alive.recover() == 1
    assert [i.seq for i in alive.due(time.time(), 0, False)] == [2, 3, 4]
    with pytest.raises(JournalError, match="claim on it ran out"):
        dead.sending(2)  # the dead worker woke up: row 2 is not its own any more
    alive.sending(2)
    alive.record(2, "sent", [Entry("r1@example.com", "sent", 250, "2.0.0", "ok", "Q1")])
    counts = alive.counts()
    assert counts["unknown"] == 1 and counts["sent"] == 1 and counts["pending"] == 2
    assert alive.recover() == 0  # row 2 was sent, row 1 is unknown already
    dead.close()
    alive.close()


def test_the_campaign_rate_is_shared_by_every_worker(pg):
    journaled(pg, 1).close()
    a, b = open_journal(pg), open_journal(pg)
    slots = sorted(j.rate_slot(50.0) for j in (a, b, a, b, a, b))
    gaps = [round(y - x, 6) for x, y in zip(slots, slots[1:])]
    assert all(abs(g - 0.02) < 1e-6 for g in gaps)  # one slot every 1/50 s, whoever asks
    a.close()
    b.close()


def test_a_lost_journal_connection_stops_the_sending_and_loses_no_record(pg, tmp_path):
    """The writer thread's connection is killed mid-run (pg_terminate_backend): from then on
    no end of data is written, so every message the server got is one the journal knows
    as sent or unknown; the outcomes read after the loss are committed on the journal's
    other connection; a rerun sends the rest, each once."""
    import psycopg

    handler = AuthHandler()
    manifest = rows(300, tmp_path)
    killed = []

    def kill_the_writer():
        deadline = time.monotonic() + 30
        while len(handler.box) < 40 and time.monotonic() < deadline:
            time.sleep(0.005)
        with psycopg.connect(pg, autocommit=True) as admin:
            killed.extend(admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'smtpstream-journal-writer'").fetchall())

    with aiosmtpd_running(handler) as port:
        killer = threading.Thread(target=kill_the_writer)
        killer.start()
        with Campaign(pg, server=HOST, port=port, connections=2) as campaign:
            with pytest.raises(psycopg.OperationalError):
                campaign.run(manifest, TEMPLATE)
        killer.join()
        assert killed == [(True,)]
        delivered = [email.message_from_bytes(e.original_content)["subject"].split()[-1] for e in handler.box]
        with Campaign(pg, server=HOST, port=port, connections=2) as campaign:
            journal = campaign.journal
            campaign.prepare(None, TEMPLATE)  # what a rerun does first: sending rows become unknown
            sent, unknown = set(journal.keys_in("sent")), set(journal.keys_in("unknown"))
            assert len(delivered) == len(set(delivered)) and len(delivered) < 300
            assert sent <= set(delivered) <= sent | unknown  # nothing delivered unrecorded
            assert len(unknown) <= 2 * 2
            counts = campaign.run(manifest, TEMPLATE)
        assert counts["sent"] + counts["unknown"] == 300 and counts["unknown"] == len(unknown)
    final = [email.message_from_bytes(e.original_content)["subject"].split()[-1] for e in handler.box]
    assert len(final) == len(set(final))  # each at most once
    assert set(final) == {f"k{i}" for i in range(300)} - (unknown - set(delivered))


def test_postgresql_writes_what_sqlite_writes(pg, tmp_path):
    """The same marks and outcomes (sent, refused, deferred with retry times, a message with
    a recipient left deferred from before) give the same records in both journals: the
    pipelined PostgreSQL transaction and SQLite's are one rule."""
    def scripted(url):
        journal = open_journal(url)
        run = journal.claim("c" * 16, {"subject": "s"})
        with journal.transaction():
            journal.add(run, [(f"k{i}", "d", {"n": i}, f"<m{i}@x>", [f"a{i}@example.com", f"b{i}@example.com"])
                              for i in range(4)])
        items = journal.due(1000.0, 0, False)
        for item in items[:2]:
            journal.sending(item.seq)
        journal.record(1, "sent", [Entry("a0@example.com", "sent", 250, "2.0.0", "ok", "Q1"),
                                   Entry("b0@example.com", "sent", 250, "2.0.0", "ok", "Q1")], commit=False)
        journal.record(2, "deferred", [
            Entry("a1@example.com", "refused", 550, "5.1.1", "no such user"),
            Entry("b1@example.com", "deferred", 451, "4.7.1", "greylisted", first_deferred=1000.0,
                  next_attempt=1060.0)], commit=False)
        journal.sending(3)  # commits both outcomes with this mark
        journal.record(3, "deferred", [
            Entry("a2@example.com", "deferred", 421, None, "busy", first_deferred=1000.0, next_attempt=1300.0),
            Entry("b2@example.com", "deferred", 421, None, "busy", first_deferred=1000.0, next_attempt=1120.0)])
        journal.sending(4)
        journal.record(4, "unknown", [Entry("a3@example.com", "unknown", text="lost"),
                                      Entry("b3@example.com", "unknown", text="lost")])
        report = [row[:8] for row in journal.report()]  # not the write times
        messages = journal.db.execute("SELECT key, state, attempts, next_attempt FROM messages ORDER BY seq").fetchall()
        journal.close()
        return report, [tuple(m) for m in messages]

    sqlite = scripted(str(tmp_path / "run.db"))
    assert sqlite[1] == [("k0", "sent", 1, None), ("k1", "deferred", 1, 1060.0), ("k2", "deferred", 1, 1120.0),
                         ("k3", "unknown", 1, None)]
    assert scripted(pg) == sqlite
