"""Baseline sender: aiosmtplib (EmailMessage + SMTP.send_message), one connection.

usage: python aiosmtplib_send.py HOST PORT ATTACHMENT COUNT
"""
import asyncio
import sys

import aiosmtplib

from smtplib_send import build


async def main(host, port, path, count):
    client = aiosmtplib.SMTP(hostname=host, port=int(port), start_tls=False)
    await client.connect()
    for i in range(int(count)):
        await client.send_message(build(path, i))
    await client.quit()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
