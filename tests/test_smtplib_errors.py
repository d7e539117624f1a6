"""smtpstream's errors are smtplib's too: handlers written for smtplib catch them.

smtplib itself, against the same servers, is the oracle for the attributes
(smtp_code, smtp_error, sender, recipients).
"""
from __future__ import annotations

import smtplib
import subprocess
import sys

import pytest

from smtpstream import smtp
from smtpstream.smtp import errors

from smtp_servers import HOST, PASSWORD, USER, AuthHandler, ScriptedServer, aiosmtpd_running, authenticator, free_port

T = 20


class Refusing(AuthHandler):
    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if address.startswith("bad"):
            return "553 5.7.1 <%s>: sender rejected" % address
        envelope.mail_from = address
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if b"reject me" in envelope.content:
            return "554 5.6.0 content rejected"
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture(scope="module")
def server():
    with aiosmtpd_running(Refusing(), authenticator=authenticator, auth_require_tls=False) as port:
        yield port


def oracle(port, sender, rcpt, body=b"Subject: x\r\n\r\nhi\r\n", login=None):
    with smtplib.SMTP(HOST, port, timeout=T) as client:
        if login:
            client.login(*login)
        client.sendmail(sender, rcpt, body)


def ours(port, sender, rcpt, body=b"Subject: x\r\n\r\nhi\r\n", **kw):
    smtp.send(server=HOST, port=port, source=[body], from_=sender, rcpt=rcpt, timeout=T, starttls="off", **kw)


def test_import_does_not_load_smtplib_and_first_error_binds():
    code = ("import sys, smtpstream.smtp as s; assert 'smtplib' not in sys.modules, 'loaded';"
            "import smtplib; e = s.SMTPDataError('x');"
            "assert isinstance(e, smtplib.SMTPDataError) and isinstance(e, smtplib.SMTPException);"
            "assert issubclass(s.SMTPError, smtplib.SMTPException); print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "ok", out.stderr


def test_bound_when_smtplib_was_imported_first():
    code = ("import smtplib, smtpstream.smtp as s;"
            "assert issubclass(s.SMTPRecipientsRefused, smtplib.SMTPRecipientsRefused); print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "ok", out.stderr


def test_recipients_refused_as_smtplib_reports_it(server):
    with pytest.raises(smtplib.SMTPRecipientsRefused) as theirs:
        oracle(server, "a@example.com", ["refuse1@example.org", "refuse2@example.org"])
    with pytest.raises(smtplib.SMTPRecipientsRefused) as mine:
        ours(server, "a@example.com", ["refuse1@example.org", "refuse2@example.org"])
    assert isinstance(mine.value, smtp.SMTPRecipientsRefused)
    assert mine.value.recipients == theirs.value.recipients


def test_sender_refused_as_smtplib_reports_it(server):
    with pytest.raises(smtplib.SMTPSenderRefused) as theirs:
        oracle(server, "bad@example.com", ["b@example.org"])
    with pytest.raises(smtplib.SMTPSenderRefused) as mine:
        ours(server, "bad@example.com", ["b@example.org"])
    assert (mine.value.smtp_code, mine.value.smtp_error) == (theirs.value.smtp_code, theirs.value.smtp_error)
    assert mine.value.sender.strip("<>") == theirs.value.sender


def test_data_refused(server):
    body = b"Subject: x\r\n\r\nreject me\r\n"
    with pytest.raises(smtplib.SMTPDataError) as theirs:
        oracle(server, "a@example.com", ["b@example.org"], body)
    with pytest.raises(smtplib.SMTPDataError) as mine:
        ours(server, "a@example.com", ["b@example.org"], body)
    assert (mine.value.smtp_code, mine.value.smtp_error) == (theirs.value.smtp_code, theirs.value.smtp_error)


def test_authentication_refused(server):
    with pytest.raises(smtplib.SMTPAuthenticationError) as theirs:
        oracle(server, "a@example.com", ["b@example.org"], login=(USER, "wrong"))
    with pytest.raises(smtplib.SMTPAuthenticationError) as mine:
        ours(server, "a@example.com", ["b@example.org"], user=USER, password="wrong")
    assert mine.value.smtp_code == theirs.value.smtp_code == 535


def test_not_supported_and_disconnected():
    with ScriptedServer(extensions=("PIPELINING",)) as plain:
        with pytest.raises(smtplib.SMTPNotSupportedError):
            smtp.send(server=HOST, port=plain.port, source=[b"x\r\n"], from_="a@example.com",
                      rcpt="b@example.org", starttls="required", timeout=T)
    with ScriptedServer(drop_in_data=True) as dropping:
        with pytest.raises(smtplib.SMTPServerDisconnected) as lost:
            # 40 MB: more than loopback's socket buffers take, so the hang-up always comes
            # before the end of data is written (else the outcome would be unknown, not lost)
            smtp.send(server=HOST, port=dropping.port, source=(b"x" * 900 + b"\r\n" for _ in range(45_000)),
                      from_="a@example.com", rcpt="b@example.org", timeout=T)
    assert not isinstance(lost.value, smtp.SMTPConnectError)  # a connection was made, then lost


def test_a_connection_never_made_is_named_so():
    port = free_port()  # nothing listens there
    with pytest.raises(smtp.SMTPConnectError) as never:
        smtp.send(server=HOST, port=port, source=[b"x\r\n"], from_="a@example.com", rcpt="b@example.org",
                  timeout=T)
    assert isinstance(never.value, smtplib.SMTPConnectError)
    assert isinstance(never.value, smtp.SMTPServerDisconnected)  # older handlers still catch it
    assert never.value.phase == "connect" and never.value.temporary


def test_every_error_is_an_smtplib_exception():
    errors.bind_smtplib()
    for name in errors.__all__:
        obj = getattr(errors, name)
        if isinstance(obj, type):
            assert issubclass(obj, smtplib.SMTPException), name
    with pytest.raises(smtplib.SMTPException):
        smtp.send(server=HOST, port=25, source=[b"x\r\n"], from_="a@example.com", rcpt="b\r\n@example.org")
