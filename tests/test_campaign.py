"""Campaigns (issue 13): rows in, one message per row out, every outcome journaled.

Against aiosmtpd on 127.0.0.1: what the server stored is compared with what
the journal says. Crash safety (kill -9, SIGINT, SIGTERM) is in
test_campaign_crash.py.
"""
from __future__ import annotations

import csv
import email
import email.policy
import hashlib
import json
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from smtpstream.campaign import (
    Campaign,
    CampaignError,
    Journal,
    ManifestError,
    RetrySchedule,
    Template,
    message_id_for,
    read_manifest,
)
from smtpstream.pool import AsyncPool, Pool

from smtp_servers import HOST, AuthHandler, aiosmtpd_running

TIMEOUT = 20


class Relay(AuthHandler):
    """Greylists chosen recipients a number of times each (451 4.7.1), refuses those
    whose address contains 'refuse' (550 5.1.1), drops the connection after the end
    of data of chosen subjects once each; notes when each RCPT came."""

    def __init__(self, greylist=None, drop_after_data=(), journal=None) -> None:
        super().__init__()
        self.greylist = dict(greylist or {})
        self.drop = set(drop_after_data)
        self.rcpt_times: dict[str, list[float]] = defaultdict(list)
        self.journal = journal
        self.states_at_end: list[tuple[str, str]] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        self.rcpt_times[address].append(time.monotonic())
        if self.greylist.get(address, 0) > 0:
            self.greylist[address] -= 1
            return "451 4.7.1 Greylisted, try again later"
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)

    async def handle_DATA(self, server, session, envelope):
        parsed = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        if self.journal is not None:  # what the journal said when the end of data arrived
            reader = Journal(str(self.journal))  # the database and the run's redo log
            try:
                state = reader.states().get(parsed["message-id"])
            finally:
                reader.close()
            self.states_at_end.append((parsed["message-id"], state))
        reply = await super().handle_DATA(server, session, envelope)
        if str(parsed["subject"]) in self.drop:
            self.drop.discard(str(parsed["subject"]))
            server.transport.close()  # the message is stored; its reply is lost
        return reply

    def stored(self):
        return [email.message_from_bytes(e.original_content, policy=email.policy.default) for e in self.box]


def write_csv(path: Path, rows: list[dict], columns: list[str] | None = None) -> Path:
    columns = columns or list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def template(**kw) -> Template:
    kw.setdefault("subject", "Invoice {id}")
    kw.setdefault("text", "Dear {name},\nyou owe {amount}.\n")
    return Template(kw.pop("from_", "Billing <billing@example.com>"), kw.pop("subject"), kw.pop("text"), **kw)


def campaign(tmp_path, port, **kw) -> Campaign:
    kw.setdefault("connections", 2)
    return Campaign(str(tmp_path / "run.db"), server=HOST, port=port, starttls="off", timeout=TIMEOUT, **kw)


def rows(n, **extra):
    return [{"id": f"INV-{i}", "email": f"r{i}@example.com", "name": f"Customer {i}", "amount": f"{i}.00", **extra}
            for i in range(n)]


# ------------------------------------------------------------------ what is sent


def test_each_row_becomes_one_message_from_the_template(tmp_path):
    (tmp_path / "inv0.pdf").write_bytes(b"%PDF-0" + bytes(range(256)) * 40)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "inv1.pdf").write_bytes(b"%PDF-1 second")
    terms = tmp_path / "terms.txt"
    terms.write_bytes(b"the terms, for everyone\n")
    manifest = write_csv(tmp_path / "rows.csv", [
        {"id": "A", "email": "ana@example.com", "name": "Doe, Ana", "amount": "<b>12</b> & co", "cc": "",
         "reply_to": "", "attach": "inv0.pdf", "header:X-Invoice": "A-1"},
        {"id": "B", "email": "bob@example.com", "name": "Bob", "amount": "7", "cc": "boss@example.com; acct@example.com",
         "reply_to": "help@example.com", "attach": "sub/inv1.pdf;inv0.pdf", "header:X-Invoice": ""},
    ])
    t = template(html="<p>Dear {name}, you owe {amount}</p>", attach_all=[str(terms)], headers={"X-Campaign": "dec"})
    relay = Relay()
    with aiosmtpd_running(relay) as port:
        with campaign(tmp_path, port) as c:
            counts = c.run(read_manifest(str(manifest)), t)
            cid = c.journal.get("campaign")
    assert counts["sent"] == 2 and counts["total"] == 2 and counts["recipients"]["sent"] == 4
    by_to = {str(m["to"]): (m, e) for m, e in zip(relay.stored(), relay.box)}
    ana, ana_env = by_to['"Doe, Ana" <ana@example.com>']
    bob, bob_env = by_to["Bob <bob@example.com>"]
    assert ana_env.rcpt_tos == ["ana@example.com"]
    assert sorted(bob_env.rcpt_tos) == ["acct@example.com", "bob@example.com", "boss@example.com"]
    assert str(bob["cc"]) == "boss@example.com, acct@example.com" and str(bob["reply-to"]) == "help@example.com"
    assert ana["reply-to"] is None and ana["cc"] is None
    assert str(ana["x-invoice"]) == "A-1" and bob["x-invoice"] is None and str(ana["x-campaign"]) == "dec"
    assert str(ana["subject"]) == "Invoice A"
    assert ana["message-id"] == message_id_for(cid, "A", "example.com")
    plain = ana.get_body(("plain",)).get_content().replace("\r\n", "\n")
    rich = ana.get_body(("html",)).get_content()
    assert plain == "Dear Doe, Ana,\nyou owe <b>12</b> & co.\n"  # text: as given
    assert "you owe &lt;b&gt;12&lt;/b&gt; &amp; co</p>" in rich  # HTML: escaped
    assert [(a.get_filename(), a.get_payload(decode=True)) for a in ana.iter_attachments()] == [
        ("inv0.pdf", (tmp_path / "inv0.pdf").read_bytes()), ("terms.txt", terms.read_bytes())]
    assert [a.get_filename() for a in bob.iter_attachments()] == ["inv1.pdf", "inv0.pdf", "terms.txt"]


def test_rerunning_resumes_and_message_ids_are_stable(tmp_path):
    manifest = write_csv(tmp_path / "rows.csv", rows(5))
    relay = Relay()
    with aiosmtpd_running(relay) as port:
        with campaign(tmp_path, port) as c:
            c.run(read_manifest(str(manifest)), template())
            first = {k: c.result(k)["message_id"] for k in (f"INV-{i}" for i in range(5))}
        with campaign(tmp_path, port) as c:  # the same command again: nothing to do
            assert c.run(read_manifest(str(manifest)), template())["sent"] == 5
        write_csv(manifest, rows(7))  # two rows added at the end
        with campaign(tmp_path, port) as c:
            counts = c.run(read_manifest(str(manifest)), template())
            assert {k: c.result(k)["message_id"] for k in first} == first
    ids = [str(m["message-id"]) for m in relay.stored()]
    assert len(ids) == 7 == len(set(ids)) and counts["sent"] == 7
    assert set(first.values()) <= set(ids)


def test_a_journal_written_before_rows_were_marshalled_resumes_and_refuses_a_changed_row(tmp_path):
    """Journals written before held each row as JSON text with the digest of its content
    (sha256 of the JSON of [values, number]): a rerun reads them, sends the same
    messages, and still refuses a row that changed, whichever way it was journaled."""
    manifest = write_csv(tmp_path / "rows.csv", rows(4))
    with campaign(tmp_path, 9) as c:  # journaled, nothing sent: no server needed
        c.prepare(read_manifest(str(manifest)), template())
    db = sqlite3.connect(tmp_path / "run.db")
    stored = db.execute("SELECT key, row, digest FROM messages ORDER BY seq").fetchall()
    assert all(isinstance(row, bytes) and digest == "" for _, row, digest in stored)
    old = []
    for key, row, _ in stored[::2]:  # two of the four as an older journal holds them
        fields = Journal.decode_row(row)
        digest = hashlib.sha256(json.dumps([fields["values"], fields["number"]], sort_keys=True).encode()).hexdigest()
        old.append((json.dumps(fields), digest, key))
    with db:
        db.executemany("UPDATE messages SET row = ?, digest = ? WHERE key = ?", old)
    assert [type(r) for (r,) in db.execute("SELECT row FROM messages ORDER BY seq")] == [str, bytes, str, bytes]
    db.close()
    relay = Relay()
    with aiosmtpd_running(relay) as port:
        with campaign(tmp_path, port) as c:
            counts = c.run(read_manifest(str(manifest)), template())
    assert counts["sent"] == 4
    got = {str(m["subject"]): m.get_body(("plain",)).get_content().replace("\r\n", "\n") for m in relay.stored()}
    assert got == {f"Invoice INV-{i}": f"Dear Customer {i},\nyou owe {i}.00.\n" for i in range(4)}
    for changed in (0, 1):  # INV-0 journaled the old way, INV-1 the new
        edited = rows(4)
        edited[changed]["amount"] = "99.00"
        write_csv(manifest, edited)
        with campaign(tmp_path, 9) as c, pytest.raises(CampaignError, match=f"row 'INV-{changed}' differs"):
            c.run(read_manifest(str(manifest)), template())


def test_ready_messages_with_keys(tmp_path):
    from smtpstream.message import message, text

    def messages():
        for i in range(4):
            part = text(f"body {i}")
            yield {"key": f"k{i}", "source": message({"headers": {
                "from": "a@example.com", "to": f"r{i}@example.com", "subject": f"m{i}", **part["headers"]},
                "body": part["body"]})}

    relay = Relay()
    with aiosmtpd_running(relay) as port:
        with campaign(tmp_path, port) as c:
            import asyncio

            assert asyncio.run(c.run_messages(messages()))["sent"] == 4
            assert asyncio.run(c.run_messages(messages()))["sent"] == 4  # nothing resent
            assert c.result("k2")["recipients"][0]["queue_id"] == c.result("k2")["recipients"][0]["text"][-5:]
    assert len(relay.box) == 4


# ------------------------------------------------------------------ the commit rule


def test_each_message_is_journaled_sending_before_its_end_of_data(tmp_path):
    manifest = write_csv(tmp_path / "rows.csv", rows(30))
    relay = Relay(journal=tmp_path / "run.db")
    with aiosmtpd_running(relay) as port:
        with campaign(tmp_path, port) as c:
            c.run(read_manifest(str(manifest)), template())
    assert len(relay.states_at_end) == 30
    assert {state for _, state in relay.states_at_end} == {"sending"}


def test_a_failing_journal_write_stops_before_the_end_of_data(tmp_path):
    """before_end raising: that message's end of data is never written, the pool stops."""
    relay = Relay()
    seen = []

    def before_end(key):
        if key == 3:
            raise OSError("disk full")
        seen.append(key)

    fields = [{"key": i, "from": "a@example.com", "rcpt": f"r{i}@example.com",
               "source": [b"Subject: %d\r\n\r\nbody\r\n" % i]} for i in range(8)]
    import asyncio

    with aiosmtpd_running(relay) as port:
        pool = AsyncPool(server=HOST, port=port, connections=1, starttls="off", timeout=TIMEOUT)
        with pytest.raises(OSError, match="disk full") as info:
            asyncio.run(pool.send_many(fields, before_end=before_end))
    stored = [int(str(m["subject"])) for m in relay.stored()]
    assert stored == [0, 1, 2] and seen == [0, 1, 2]
    results = info.value.results
    assert [r.ok for r in results[:3]] == [True] * 3 and not results[3].ok and not results[3].unknown



@pytest.mark.filterwarnings("ignore:coroutine .* was never awaited")  # the Pool's refusal, on purpose
def test_an_awaitable_before_end_holds_the_end_of_data_until_it_is_done(tmp_path):
    """AsyncPool: the end of data waits for what before_end returns (a commit on a thread);
    one that fails stops the pool with that message not sent. The threaded Pool, which
    could not wait for it, refuses it rather than write the end of data unrecorded."""
    import asyncio

    relay = Relay()
    fields = [{"key": i, "from": "a@example.com", "rcpt": f"r{i}@example.com",
               "source": [b"Subject: %d\r\n\r\nbody\r\n" % i]} for i in range(6)]
    stored_when_released = []

    def before_end(key):
        async def released():
            await asyncio.sleep(0.05)  # the server holds nothing of this message's end yet
            stored_when_released.append((key, len(relay.stored())))
            if key == 4:
                raise OSError("the journal is gone")
        return released()

    with aiosmtpd_running(relay) as port:
        pool = AsyncPool(server=HOST, port=port, connections=1, starttls="off", timeout=TIMEOUT)
        with pytest.raises(OSError, match="journal is gone") as info:
            asyncio.run(pool.send_many([dict(f) for f in fields], before_end=before_end))
        assert stored_when_released == [(k, k) for k in range(5)]
        assert [int(str(m["subject"])) for m in relay.stored()] == [0, 1, 2, 3]
        assert [r.ok for r in info.value.results[:5]] == [True] * 4 + [False]
        with pytest.raises(TypeError, match="needs asyncio"):
            Pool(server=HOST, port=port, connections=1, starttls="off", timeout=TIMEOUT).send_many(
                [dict(fields[5])], before_end=before_end)
    assert [int(str(m["subject"])) for m in relay.stored()] == [0, 1, 2, 3]  # 5 was never ended


# ------------------------------------------------------------------ retries


def test_deferred_recipients_are_retried_on_schedule_and_refusals_recorded(tmp_path):
    data = rows(6)
    data[1]["email"] = "grey2@example.com"
    data[2]["email"] = "grey1@example.com"
    data[3]["email"] = "refuse@example.com"
    manifest = write_csv(tmp_path / "rows.csv", data)
    relay = Relay(greylist={"grey2@example.com": 2, "grey1@example.com": 1})
    delays = (0.4, 0.8)
    with aiosmtpd_running(relay) as port:
        with campaign(tmp_path, port, retry=RetrySchedule(delays, 60), linger=10) as c:
            counts = c.run(read_manifest(str(manifest)), template())
            grey2, grey1, refused = c.result("INV-1"), c.result("INV-2"), c.result("INV-3")
    assert counts["sent"] == 5 and counts["refused"] == 1 and counts["deferred"] == 0
    assert grey2["state"] == grey1["state"] == "sent"
    assert grey2["recipients"][0]["attempts"] == 3 and grey1["recipients"][0]["attempts"] == 2
    assert refused["state"] == "refused"
    r = refused["recipients"][0]
    assert (r["code"], r["enhanced"], r["attempts"]) == (550, "5.1.1", 1) and "recipient unknown" in r["text"]
    times = relay.rcpt_times["grey2@example.com"]
    assert len(times) == 3 and times[1] - times[0] >= delays[0] and times[2] - times[1] >= delays[1]
    assert len(relay.rcpt_times["grey1@example.com"]) == 2
    assert relay.rcpt_times["grey1@example.com"][1] - relay.rcpt_times["grey1@example.com"][0] >= delays[0]
    subjects = sorted(str(m["subject"]) for m in relay.stored())
    assert subjects == sorted(f"Invoice INV-{i}" for i in (0, 1, 2, 4, 5))  # each once


def test_a_recipient_deferred_too_long_is_given_up_with_its_last_reply(tmp_path):
    manifest = write_csv(tmp_path / "rows.csv", rows(2))
    relay = Relay(greylist={"r1@example.com": 10**6})
    with aiosmtpd_running(relay) as port:
        with campaign(tmp_path, port, retry=RetrySchedule((0.2,), give_up_after=0.5), linger=10) as c:
            counts = c.run(read_manifest(str(manifest)), template())
            entry = c.result("INV-1")
    assert counts["sent"] == 1 and counts["failed"] == 1
    r = entry["recipients"][0]
    assert r["state"] == "failed" and r["code"] == 451 and r["enhanced"] == "4.7.1"
    assert r["attempts"] == len(relay.rcpt_times["r1@example.com"]) >= 3


def test_retry_sends_only_what_is_due(tmp_path):
    manifest = write_csv(tmp_path / "rows.csv", rows(3))
    relay = Relay(greylist={"r0@example.com": 1})
    with aiosmtpd_running(relay) as port:
        with campaign(tmp_path, port, retry=RetrySchedule((3.0,), 60)) as c:  # long enough for a slow machine
            counts = c.run(read_manifest(str(manifest)), template())
            assert (counts["sent"], counts["deferred"]) == (2, 1)
            assert c.retry()["deferred"] == 1  # not due yet: nothing sent
            assert len(relay.rcpt_times["r0@example.com"]) == 1 and len(relay.box) == 2
            time.sleep(3.05)
            assert c.retry()["sent"] == 3
    assert len(relay.box) == 3


# ------------------------------------------------------------------ unknown outcomes


def test_a_lost_reply_is_unknown_and_resent_only_when_asked(tmp_path):
    manifest = write_csv(tmp_path / "rows.csv", rows(4))
    relay = Relay(drop_after_data={"Invoice INV-2"})
    with aiosmtpd_running(relay) as port:
        with campaign(tmp_path, port, connections=1) as c:
            counts = c.run(read_manifest(str(manifest)), template())
            assert counts["unknown"] == 1 and counts["sent"] == 3
            assert c.result("INV-2")["state"] == "unknown"
            assert c.run(read_manifest(str(manifest)), template())["unknown"] == 1  # not resent
            assert len(relay.box) == 4
        with campaign(tmp_path, port, connections=1, resend_unknown=True) as c:
            counts = c.run(read_manifest(str(manifest)), template())
            assert counts["sent"] == 4 and counts["unknown"] == 0
            assert c.result("INV-2")["attempts"] == 2
    ids = [str(m["message-id"]) for m in relay.stored()]
    assert len(ids) == 5 and len(set(ids)) == 4  # the same Message-ID twice: a receiver can tell


# ------------------------------------------------------------------ bad input, before anything is sent


def _bad_cases(tmp_path):
    good = rows(3)
    yield "no email column", write_csv(tmp_path / "a.csv", [{"id": "1", "mail": "x@example.com", "name": "n",
                                                             "amount": "1"}]), template(), "no 'email' column"
    bad = [dict(r) for r in good]
    bad[2]["email"] = "not an address"
    yield "bad address", write_csv(tmp_path / "b.csv", bad), template(), "not an address"
    bad = [dict(r, attach="") for r in good]
    bad[1]["attach"] = "missing.pdf"
    yield "missing attachment", write_csv(tmp_path / "c.csv", bad), template(), "missing.pdf: no such file"
    yield ("unknown column", write_csv(tmp_path / "d.csv", good), template(text="Hi {first_name}"),
           "{first_name}")
    bad = [dict(r) for r in good]
    bad[2]["id"] = bad[0]["id"]
    yield "duplicate key", write_csv(tmp_path / "e.csv", bad), template(), "appears twice"
    bad = [dict(r) for r in good]
    bad[1]["cc"] = "ok@example.com, <evil@example.com>\r\nBcc: x@example.com"
    yield "header injection", write_csv(tmp_path / "f.csv", bad), template(), "header injection"


@pytest.mark.parametrize("case", range(6))
def test_bad_input_is_refused_before_anything_is_sent(tmp_path, case):
    name, manifest, t, words = list(_bad_cases(tmp_path))[case]
    relay = Relay()
    with aiosmtpd_running(relay) as port:
        with campaign(tmp_path, port) as c:
            with pytest.raises((CampaignError, ManifestError)) as info:
                c.check(read_manifest(str(manifest)), t)
            assert words in str(info.value), (name, str(info.value))
            with pytest.raises((CampaignError, ManifestError), match=".") as again:
                c.run(read_manifest(str(manifest)), t)
            assert str(again.value) == str(info.value)
            assert c.status()["total"] == 0  # nothing journaled
    assert relay.box == [] and relay.rcpt_times == {}  # nothing sent


@pytest.mark.parametrize("placeholder", ["{name.upper}", "{name[0]}", "{name!r}", "{amount:>10}", "{}", "{name"])
def test_placeholders_are_plain_column_names(placeholder):
    from smtpstream.campaign import TemplateError

    with pytest.raises(TemplateError):
        template(text=f"Hello {placeholder}")


def test_a_changed_row_or_another_campaign_is_refused(tmp_path):
    manifest = write_csv(tmp_path / "rows.csv", rows(3))
    relay = Relay()
    with aiosmtpd_running(relay) as port:
        with campaign(tmp_path, port) as c:
            c.run(read_manifest(str(manifest)), template())
        changed = rows(3)
        changed[1]["amount"] = "999.00"
        write_csv(manifest, changed)
        with campaign(tmp_path, port) as c:
            with pytest.raises(CampaignError, match="INV-1.*differs"):
                c.run(read_manifest(str(manifest)), template())
            with pytest.raises(CampaignError, match="another campaign"):
                c.run(read_manifest(str(manifest)), template(subject="Your statement"))
            assert c.status()["sent"] == 3
    assert len(relay.box) == 3


def test_settings_are_checked_when_the_campaign_is_built(tmp_path):
    with pytest.raises(TypeError):
        Campaign(str(tmp_path / "x.db"), server=HOST, pasword="x")
    with pytest.raises(ValueError):
        Campaign(str(tmp_path / "x.db"), server=HOST, connections=0)


# ------------------------------------------------------------------ the command


def cli(*args, env=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "smtpstream", "campaign", *args], capture_output=True, text=True,
                          timeout=120, env=env, cwd=cwd)


def test_the_command_sends_reports_and_exits_as_documented(tmp_path):
    data = rows(4)
    data[3]["email"] = "refuse@example.com"
    data[2]["email"] = "grey@example.com"
    manifest = write_csv(tmp_path / "rows.csv", data)
    body = tmp_path / "body.txt"
    body.write_text("Dear {name}, you owe {amount}.\n")
    db = str(tmp_path / "run.db")
    relay = Relay(greylist={"grey@example.com": 1})
    with aiosmtpd_running(relay) as port:
        common = ["--journal", db, "--from", "billing@example.com", "--subject", "Invoice {id}",
                  "--text-file", str(body), "--server", f"{HOST}:{port}", "--connections", "2",
                  "--retry-schedule", "0.3"]
        checked = cli("send", str(manifest), *common, "--check")
        assert checked.returncode == 0 and "4 rows checked" in checked.stdout and relay.box == []
        first = cli("send", str(manifest), *common)
        assert first.returncode == 3, first.stderr  # a deferred recipient still pending
        assert "2 sent, 1 refused, 1 deferred" in first.stdout
        status = json.loads(cli("status", "--journal", db, "--json").stdout)
        assert {k: status[k] for k in ("total", "pending", "sent", "refused", "deferred", "failed", "unknown")} == {
            "total": 4, "pending": 0, "sent": 2, "refused": 1, "deferred": 1, "failed": 0, "unknown": 0}
        time.sleep(0.35)
        retried = cli("retry", "--journal", db)
        assert retried.returncode == 1, retried.stderr  # finished, one refused
        assert len(relay.box) == 3
    out = tmp_path / "report.csv"
    assert cli("report", "--journal", db, "--csv", str(out)).returncode == 0
    with open(out, newline="") as handle:
        report = list(csv.DictReader(handle))
    assert [r["key"] for r in report] == [f"INV-{i}" for i in range(4)]
    assert [r["state"] for r in report] == ["sent", "sent", "sent", "refused"]
    assert report[2]["attempts"] == "2" and report[3]["code"] == "550" and report[3]["enhanced"] == "5.1.1"
    assert report[0]["address"] == "r0@example.com" and report[0]["text"].startswith("2.0.0 Ok: queued as")
    assert all(r["time"].endswith("Z") for r in report)


@pytest.mark.parametrize("problem, code", [("missing manifest", 66), ("missing attachment", 66),
                                           ("unknown column", 64), ("missing text file", 66)])
def test_the_command_refuses_bad_input_with_its_exit_code(tmp_path, problem, code):
    data = [dict(r, attach="") for r in rows(2)]
    if problem == "missing attachment":
        data[1]["attach"] = "gone.pdf"
    manifest = write_csv(tmp_path / "rows.csv", data)
    body = tmp_path / "body.txt"
    body.write_text("Hi {surname}" if problem == "unknown column" else "Hi {name}")
    args = ["send", str(tmp_path / "nope.csv") if problem == "missing manifest" else str(manifest),
            "--journal", str(tmp_path / "run.db"), "--from", "a@example.com", "--subject", "s",
            "--text-file", str(tmp_path / "nobody.txt") if problem == "missing text file" else str(body),
            "--server", f"{HOST}:9"]
    done = cli(*args)
    assert done.returncode == code, done.stderr
    assert done.stderr.startswith("smtpstream: ") and "Traceback" not in done.stderr
