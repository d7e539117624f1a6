"""Baseline bulk sender: aiosmtplib, N tasks each with its own connection.

usage: python bulk_aiosmtplib.py HOST PORT KIND COUNT CONNECTIONS [ATTACHMENT]   (see bulk_common)
"""
import asyncio

import aiosmtplib

from bulk_common import check, parse
from bulk_smtplib import build


async def main():
    job = parse()
    indices = iter(range(job.count))
    delivered = 0

    async def worker():
        nonlocal delivered
        client = aiosmtplib.SMTP(hostname=job.host, port=job.port, start_tls=False,
                                 local_hostname="client.example.com")
        await client.connect()
        for i in indices:  # shared: each task takes the next index
            refused, _ = await client.send_message(build(job, i))
            if not refused:
                delivered += 1
        await client.quit()

    await asyncio.gather(*(worker() for _ in range(job.connections)))
    check(delivered, job)


if __name__ == "__main__":
    asyncio.run(main())
