"""smtpstream.django.EmailBackend with Django's settings, against real servers on 127.0.0.1."""
from __future__ import annotations

import email
import email.policy
import os
import smtplib
import subprocess
import sys
import textwrap

import pytest

django = pytest.importorskip("django")

from django.conf import settings  # noqa: E402

if not settings.configured:
    settings.configure(EMAIL_BACKEND="smtpstream.django.EmailBackend", EMAIL_HOST="127.0.0.1", EMAIL_PORT=25,
                       DEFAULT_FROM_EMAIL="App <app@example.com>", EMAIL_TIMEOUT=20)
    django.setup()

from django.core import mail  # noqa: E402
from django.test.utils import override_settings  # noqa: E402

from smtpstream.django import EmailBackend, EmailMultiAlternatives  # noqa: E402

from smtp_servers import HOST, AuthHandler, ScriptedServer, aiosmtpd_running, free_port  # noqa: E402


@pytest.fixture
def box():
    handler = AuthHandler()
    with aiosmtpd_running(handler) as port:
        with override_settings(EMAIL_PORT=port):
            yield handler


@pytest.fixture
def scripted():
    with ScriptedServer() as server:
        with override_settings(EMAIL_PORT=server.port):
            yield server


def parsed(envelope):
    return email.message_from_bytes(envelope.content if isinstance(envelope.content, bytes)
                                    else envelope.original_content, policy=email.policy.default)


def test_the_backend_is_the_configured_one():
    assert isinstance(mail.get_connection(), EmailBackend)


def test_send_mail(box):
    assert mail.send_mail("Grüße", "Hello\nthere\n", None, ["Bee <b@example.org>"]) == 1
    (got,) = box.box
    assert (got.mail_from, got.rcpt_tos) == ("app@example.com", ["b@example.org"])
    msg = parsed(got)
    assert msg["Subject"] == "Grüße" and msg["From"] == "App <app@example.com>" and msg["To"] == "Bee <b@example.org>"
    assert msg.get_content().replace("\r\n", "\n") == "Hello\nthere\n"


def test_send_mass_mail_is_one_pipelined_connection(scripted):
    datatuple = [(f"subject {i}", f"body {i}\n", "a@example.com", [f"r{i}@example.org"]) for i in range(4)]
    assert mail.send_mass_mail(datatuple) == 4
    assert scripted.connections == 1
    assert [m.rcpt_tos for m in scripted.messages] == [[f"r{i}@example.org"] for i in range(4)]
    assert [parsed(m)["Subject"] for m in scripted.messages] == [f"subject {i}" for i in range(4)]


def test_alternatives_attachments_cc_and_bcc(box, tmp_path):
    report = tmp_path / "report.pdf"
    report.write_bytes(os.urandom(200_000))
    for cls in (EmailMultiAlternatives, mail.EmailMultiAlternatives):  # ours streams attach_file; Django's too
        m = cls("Report", "plain text\n", "Sender <s@example.com>", ["to@example.org"], cc=["cc@example.org"],
                bcc=["hidden@example.org"], headers={"X-Campaign": "7"})
        m.attach_alternative("<p>rich</p>", "text/html")
        m.attach("data.bin", b"\x00\x01" * 5000, "application/octet-stream")
        m.attach("notes.txt", "résumé\n", "text/plain")
        m.attach_file(report)
        assert m.send() == 1
    for got in box.box:
        assert got.mail_from == "s@example.com"
        assert sorted(got.rcpt_tos) == ["cc@example.org", "hidden@example.org", "to@example.org"]
        msg = parsed(got)
        assert msg["Bcc"] is None and b"hidden@example.org" not in got.content
        assert msg["Cc"] == "cc@example.org" and msg["X-Campaign"] == "7"
        assert msg.get_body(("html",)).get_content().strip() == "<p>rich</p>"
        assert msg.get_body(("plain",)).get_content().strip() == "plain text"
        files = {p.get_filename(): p.get_content() for p in msg.iter_attachments()}
        assert files["data.bin"] == b"\x00\x01" * 5000
        assert files["notes.txt"].replace("\r\n", "\n") == "résumé\n"
        assert files["report.pdf"] == report.read_bytes()
    assert len(box.box) == 2


def test_our_message_still_works_with_other_backends(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("attached\n")
    m = EmailMultiAlternatives("s", "b", "a@example.com", ["b@example.org"])
    m.attach_file(path)
    with override_settings(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend"):
        mail.outbox = []
        assert m.send() == 1
        assert b"attached" in mail.outbox[0].message().as_bytes()


def test_get_connection_reuse(scripted):
    with mail.get_connection() as connection:
        mail.send_mail("one", "1\n", "a@example.com", ["x@example.org"], connection=connection)
        mail.EmailMessage("two", "2\n", "a@example.com", ["y@example.org"], connection=connection).send()
        connection.send_messages([mail.EmailMessage("three", "3\n", "a@example.com", ["z@example.org"])])
    assert scripted.connections == 1 and len(scripted.messages) == 3


def test_reconnects_when_the_server_dropped_the_connection():
    with ScriptedServer(close_421_after=1) as server, override_settings(EMAIL_PORT=server.port):
        connection = mail.get_connection()
        connection.open()
        sent = connection.send_messages([mail.EmailMessage(f"m{i}", "x\n", "a@example.com", ["b@example.org"])
                                         for i in range(3)])
        connection.close()
    assert sent == 3
    assert [parsed(m)["Subject"] for m in server.messages] == ["m0", "m1", "m2"]
    assert server.connections == 3


def test_errors_and_fail_silently(box):
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        mail.send_mail("s", "b", "a@example.com", ["refuse@example.org"])
    assert mail.send_mail("s", "b", "a@example.com", ["refuse@example.org"], fail_silently=True) == 0
    with override_settings(EMAIL_PORT=free_port()):  # nobody listens
        with pytest.raises(smtplib.SMTPConnectError):
            mail.send_mail("s", "b", "a@example.com", ["b@example.org"])
        assert mail.send_mail("s", "b", "a@example.com", ["b@example.org"], fail_silently=True) == 0


CHILD = textwrap.dedent("""
    import os, sys
    import django
    from django.conf import settings
    backend, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    settings.configure(EMAIL_BACKEND=backend, EMAIL_HOST="127.0.0.1", EMAIL_PORT=port, EMAIL_TIMEOUT=60)
    django.setup()
    from django.core import mail
    import smtpstream.django
    cls = smtpstream.django.EmailMessage if backend.startswith("smtpstream") else mail.EmailMessage
    def status(key):
        for line in open("/proc/self/status"):
            if line.startswith(key):
                return int(line.split()[1])
    before = status("VmHWM:")
    m = cls("big", "see attached\\n", "a@example.com", ["b@example.org"])
    m.attach_file(path)
    assert m.send() == 1
    print(before, status("VmHWM:"))
""")


class Discard:
    async def handle_DATA(self, server, session, envelope):
        return "250 OK"


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads VmHWM from /proc")
def test_attach_file_of_32_mib_streams(tmp_path):
    path = tmp_path / "big.bin"
    with open(path, "wb") as handle:
        for _ in range(32):
            handle.write(os.urandom(1 << 20))
    growth, peaks = {}, {}
    with aiosmtpd_running(Discard(), data_size_limit=None) as port:
        for backend in ("smtpstream.django.EmailBackend", "django.core.mail.backends.smtp.EmailBackend"):
            done = subprocess.run([sys.executable, "-c", CHILD, backend, str(port), str(path)], capture_output=True,
                                  text=True, timeout=300)
            assert done.returncode == 0, done.stderr
            before, after = map(int, done.stdout.split())
            growth[backend] = (after - before) / 1024  # MiB over the interpreter + Django baseline
            peaks[backend] = after // 1024
    ours, theirs = growth["smtpstream.django.EmailBackend"], growth["django.core.mail.backends.smtp.EmailBackend"]
    print(f"peak RSS growth: smtpstream {ours:.1f} MiB, Django's SMTP backend {theirs:.1f} MiB; absolute peaks {peaks}")
    assert ours < 12
    assert theirs > 5 * 32  # the same file, as Django's backend holds it (several copies)
