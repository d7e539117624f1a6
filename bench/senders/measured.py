"""Run one sender's ``main`` and print what it cost after its imports, as JSON on stdout.

usage: python measured.py SENDER_MODULE ARGS...

The sender module is imported first (smtpstream or smtplib and all they pull
in), then ``main(*ARGS)`` runs between two ``os.times()``: ``cpu_s`` is user +
system CPU of the send alone, ``wall_s`` its wall time, ``vmhwm_mib`` the
process's peak resident set (``VmHWM``, this process only: ``ru_maxrss`` would
carry a forked parent's peak across exec).
"""
import importlib
import json
import os
import sys
import time


def vmhwm_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def run(module_name: str, args: list[str]) -> dict:
    module = importlib.import_module(module_name)
    before, wall = os.times(), time.perf_counter()
    module.main(*args)
    after, wall = os.times(), time.perf_counter() - wall
    return {
        "cpu_s": (after.user - before.user) + (after.system - before.system),
        "user_s": after.user - before.user,
        "sys_s": after.system - before.system,
        "wall_s": wall,
        "vmhwm_mib": vmhwm_mib(),
    }


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1], sys.argv[2:])))
