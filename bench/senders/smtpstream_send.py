"""smtpstream's sender: message() + a Session, one connection.

usage: python smtpstream_send.py HOST PORT ATTACHMENT COUNT [--cached|--shared] [--dkim=KEY.pem]
                                 [--algorithm=ed25519-sha256] [--key-only] [--loop-cpu]
With --cached the attachment is encoded once and replayed (bulk sends);
with --shared the whole body (text and attachment) is built once, shared();
with --dkim every message is signed (rsa-sha256 unless --algorithm says
otherwise, relaxed/relaxed); --key-only makes the signer (cryptography
imported, key loaded) but sends unsigned: the fixed cost of signing alone.
With --loop-cpu it prints ``{"loop_cpu_s": ...}``: the CPU (time.process_time)
of the sending loop alone, after the imports, the signer and the connection
(what each message costs, without what the process pays once).
"""
import json
import sys
import time

from smtpstream.message import attachment, cached, message, shared, text
from smtpstream.smtp import Session


def main(host, port, path, count, *flags):
    once = cached(attachment(path)) if "--cached" in flags or "--shared" in flags else None
    body = shared({1: text("Please find the report attached.\n"), 2: once}) if "--shared" in flags else None
    options = dict(flag[2:].split("=", 1) for flag in flags if "=" in flag)
    signer = None
    if "dkim" in options:
        from smtpstream.dkim import Signer

        signer = Signer("example.com", "bench", options["dkim"], algorithm=options.get("algorithm", "rsa-sha256"))
        if "--key-only" in flags:
            signer = None
    with Session(server=host, port=int(port), domain="client.example.com") as session:
        started = time.process_time()
        for i in range(int(count)):
            source = message({
                "headers": {"from": "Sender <sender@example.com>", "to": f"user{i}@example.com",
                            "subject": f"Report {i}"},
                "body": body or {1: text("Please find the report attached.\n"), 2: once or attachment(path)},
            }, dkim=signer)
            session.send(from_="sender@example.com", rcpt=source.recipients, source=source)
        loop_cpu = time.process_time() - started
    if "--loop-cpu" in flags:
        print(json.dumps({"loop_cpu_s": loop_cpu}))


if __name__ == "__main__":
    main(*sys.argv[1:])
