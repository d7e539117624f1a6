"""smtpstream through the seed's LuaSocket idiom: the attachment as a chained source.

usage: python smtpstream_idiom_send.py HOST PORT ATTACHMENT COUNT

The body is ``ltn12.source.chain(ltn12.source.file(open(path, "rb")),
ltn12.filter.chain(mime.encode("base64"), mime.wrap()))``, as a LuaSocket
port writes it, in a hand-written part table.
"""
import os
import sys

from smtpstream import ltn12, mime
from smtpstream.message import message, text
from smtpstream.smtp import Session


def main(host, port, path, count):
    name = os.path.basename(path)
    with Session(server=host, port=int(port), domain="client.example.com") as session:
        for i in range(int(count)):
            source = message({
                "headers": {"from": "Sender <sender@example.com>", "to": f"user{i}@example.com",
                            "subject": f"Report {i}"},
                "body": {
                    1: text("Please find the report attached.\n"),
                    2: {
                        "headers": {
                            "content-type": f'application/octet-stream; name="{name}"',
                            "content-disposition": f'attachment; filename="{name}"',
                            "content-transfer-encoding": "BASE64",
                        },
                        "body": ltn12.source.chain(
                            ltn12.source.file(open(path, "rb")),
                            ltn12.filter.chain(mime.encode("base64"), mime.wrap()),
                        ),
                    },
                },
            })
            session.send(from_="sender@example.com", rcpt=source.recipients, source=source)


if __name__ == "__main__":
    main(*sys.argv[1:5])
