"""Constant memory: a 1 GiB attachment costs no more RSS than a 1 MiB one."""
from __future__ import annotations

import subprocess
import sys
import textwrap

DRAIN = textwrap.dedent(
    """
    import sys
    from smtpstream import ltn12
    from smtpstream.message import attachment, message, text
    path = sys.argv[1]
    source = message({"headers": {"subject": "big"}, "body": {1: text("see attached"), 2: attachment(path)}})
    expected = source.size
    total = 0
    for chunk in source:
        total += len(chunk)
    assert total == expected, (total, expected)
    # VmHWM is this process image's peak; ru_maxrss would carry over the
    # forked parent's (pytest's) peak across exec and hide ours.
    print([l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM:")][0])
    """
)


def peak_rss_kib(path) -> int:
    done = subprocess.run([sys.executable, "-c", DRAIN, str(path)], capture_output=True, text=True, check=True)
    return int(done.stdout.strip())


def test_peak_rss_does_not_grow_with_the_attachment(tmp_path):
    small = tmp_path / "small.bin"
    small.write_bytes(b"\x5a" * (1 << 20))
    big = tmp_path / "big.bin"
    with open(big, "wb") as handle:  # sparse: 1 GiB of zeros without using the disk
        handle.truncate(1 << 30)
    small_rss = peak_rss_kib(small)
    big_rss = peak_rss_kib(big)
    assert big_rss - small_rss < 16 * 1024, (small_rss, big_rss)
