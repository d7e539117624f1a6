"""Run by test_interrupt.py: a pool sending many messages until it gets SIGINT.

argv: kind ("blocking" | "async"), port, number of messages, run tag. Prints
"ready", then one JSON line per result (from on_result), then "interrupted"
(exit 130) or "finished".
"""
import asyncio
import json
import sys

from smtpstream.pool import AsyncPool, Pool

kind, port, count, tag = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]


def messages():
    for i in range(count):
        lines = 1 + (i % 7) * 400  # 80 bytes to 220 KB: some uploads take a while
        head = b"Subject: %d\r\nMessage-ID: <m%d.%s@interrupt.test>\r\n\r\n" % (i, i, tag.encode())
        yield {"key": i, "from": "a@example.com", "rcpt": f"r{i}@example.com",
               "source": [head, b"x" * 76 + b"\r\n" * 1, (b"y" * 76 + b"\r\n") * lines]}


def report(result):
    print(json.dumps({"key": result.key, "ok": result.ok, "unknown": result.unknown,
                      "attempted": result.attempted, "error": repr(result.error)}), flush=True)


print("ready", flush=True)
try:
    settings = dict(server="127.0.0.1", port=port, connections=3, timeout=30, domain="client.example")
    if kind == "blocking":
        Pool(**settings).send_many(messages(), on_result=report)
    else:
        asyncio.run(AsyncPool(**settings).send_many(messages(), on_result=report))
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(130)
print("finished", flush=True)
