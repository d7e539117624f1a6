"""Baseline sender: the standard library (EmailMessage + smtplib.send_message).

usage: python smtplib_send.py HOST PORT ATTACHMENT COUNT
"""
import os
import smtplib
import sys
from email.message import EmailMessage


def build(path, i):
    msg = EmailMessage()
    msg["From"] = "Sender <sender@example.com>"
    msg["To"] = f"user{i}@example.com"
    msg["Subject"] = f"Report {i}"
    msg.set_content("Please find the report attached.\n")
    with open(path, "rb") as handle:
        msg.add_attachment(handle.read(), maintype="application", subtype="octet-stream",
                           filename=os.path.basename(path))
    return msg


def main(host, port, path, count):
    with smtplib.SMTP(host, int(port)) as client:
        for i in range(int(count)):
            client.send_message(build(path, i))


if __name__ == "__main__":
    main(*sys.argv[1:5])
