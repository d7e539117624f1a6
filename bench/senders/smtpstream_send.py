"""smtpstream's sender: message() + a Session, one connection.

usage: python smtpstream_send.py HOST PORT ATTACHMENT COUNT [--cached]
With --cached the attachment is encoded once and replayed (bulk sends).
"""
import sys

from smtpstream.message import attachment, cached, message, text
from smtpstream.smtp import Session


def main(host, port, path, count, *flags):
    shared = cached(attachment(path)) if "--cached" in flags else None
    with Session(server=host, port=int(port), domain="client.example.com") as session:
        for i in range(int(count)):
            source = message({
                "headers": {"from": "Sender <sender@example.com>", "to": f"user{i}@example.com",
                            "subject": f"Report {i}"},
                "body": {1: text("Please find the report attached.\n"), 2: shared or attachment(path)},
            })
            session.send(from_="sender@example.com", rcpt=source.recipients, source=source)


if __name__ == "__main__":
    main(*sys.argv[1:])
