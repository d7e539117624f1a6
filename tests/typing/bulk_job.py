"""A bulk job: send_many returns a list without on_result, None with it."""
from __future__ import annotations

import asyncio

from smtpstream import aio, smtp
from smtpstream.message import message
from smtpstream.smtp.bulk import BulkResult
from smtpstream.smtp.fieldtypes import BulkFields


def jobs(n: int) -> list[BulkFields]:
    return [{"key": i, "from": "news@example.com", "rcpt": f"r{i}@example.org",
             "source": message({"headers": {"subject": f"#{i}"}, "body": "hi"})} for i in range(n)]


def blocking() -> list[int]:
    failed: list[int] = []
    with smtp.Session(server="localhost") as session:
        results = session.send_many(jobs(10))
        failed.extend(r.index for r in results if not r.ok)

        def seen(result: BulkResult) -> None:
            failed.append(result.index)

        nothing = session.send_many(jobs(10), on_result=seen)
        assert nothing is None
    return failed


async def concurrent() -> int:
    async with aio.Session(server="localhost") as session:
        results = await session.send_many(jobs(5))
        return sum(r.ok for r in results)


if __name__ == "__main__":
    print(blocking(), asyncio.run(concurrent()))
