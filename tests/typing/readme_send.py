"""The README's examples as a user writes them: checked by mypy --strict and pyright --strict."""
from __future__ import annotations

from email.message import EmailMessage

from smtpstream import smtp
from smtpstream.message import alternative, attachment, html, message, text
from smtpstream.smtp import SendResult, SMTPError


def report(path: str) -> SendResult:
    source = message({
        "headers": {"from": "App <app@example.com>", "to": "you@example.org", "subject": "Report"},
        "body": {"parts": [alternative(text("See the report."), html("<p>See the report.</p>")),
                           attachment(path)]},
    })
    return smtp.send(source=source, server="smtp.example.com", port=587, starttls="required",
                     user="app", password="secret", cafile="/etc/ssl/private-ca.pem")


def from_stdlib() -> tuple[str, ...]:
    msg = EmailMessage()
    msg["From"] = "App <app@example.com>"
    msg["To"] = "you@example.org"
    msg.set_content("hello")
    try:
        result = smtp.send(source=msg, server="localhost", verify=False)
    except SMTPError as exc:
        return (str(exc.code),) if exc.temporary else ()
    return result.accepted


def session_use() -> int:
    with smtp.Session(server="localhost", timeout=10) as session:
        reply = session.noop()
        session.send(from_="a@example.com", rcpt=["b@example.org"], source=[b"Subject: x\r\n\r\nhi\r\n"])
        return reply.code
