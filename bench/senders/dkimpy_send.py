"""Baseline signed sender: the standard library builds the message, dkimpy signs it, smtplib sends it.

usage: python dkimpy_send.py HOST PORT ATTACHMENT COUNT KEY.pem
(rsa-sha256, relaxed/relaxed, the same headers as smtpstream's default list)
"""
import smtplib
import sys

import dkim

from smtplib_send import build

HEADERS = [b"from", b"to", b"subject", b"date", b"message-id", b"mime-version", b"content-type"]


def main(host, port, path, count, key_path):
    key = open(key_path, "rb").read()
    with smtplib.SMTP(host, int(port)) as client:
        for i in range(int(count)):
            msg = build(path, i)
            data = msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))
            signature = dkim.sign(data, b"bench", b"example.com", key, canonicalize=(b"relaxed", b"relaxed"),
                                  include_headers=HEADERS)
            client.sendmail("sender@example.com", [f"user{i}@example.com"], signature + data)


if __name__ == "__main__":
    main(*sys.argv[1:6])
