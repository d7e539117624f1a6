"""Baseline bulk sender: the standard library, N threads each holding one smtplib.SMTP.

usage: python bulk_smtplib.py HOST PORT KIND COUNT CONNECTIONS [ATTACHMENT]   (see bulk_common)
"""
import itertools
import smtplib
import threading
from email.message import EmailMessage

from bulk_common import FROM, SMALL_BODY, check, parse, subject
from smtplib_send import build as build_attach


def build(job, i):
    if job.kind == "attach100k":
        return build_attach(job.attachment, i)
    msg = EmailMessage()
    msg["From"] = FROM
    msg["To"] = f"user{i}@example.com"
    msg["Subject"] = subject(job.kind, i)
    msg.set_content(SMALL_BODY)
    return msg


def main():
    job = parse()
    indices = iter(range(job.count))
    lock = threading.Lock()
    delivered = itertools.count()
    errors = []

    def worker():
        try:
            with smtplib.SMTP(job.host, job.port, local_hostname="client.example.com") as client:
                while True:
                    with lock:
                        i = next(indices, None)
                    if i is None:
                        return
                    if not client.send_message(build(job, i)):  # {} when every recipient took it
                        next(delivered)
        except Exception as exc:  # reported by the count below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(job.connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for exc in errors:
        print(repr(exc))
    check(next(delivered), job)


if __name__ == "__main__":
    main()
