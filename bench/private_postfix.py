"""A private Postfix for benchmarks and tests: its own config and queue under a temp dir.

::

    with private_postfix() as pf:       # smtpd on a free 127.0.0.1 port
        send to ("127.0.0.1", pf.port)
        pf.wait_for(n)                  # until n messages were received and discarded
        pf.message_ids()                # Message-IDs in the order cleanup received them

Never the system's instance: ``main.cf`` and ``master.cf`` are written to a
fresh directory, the queue (made here with Postfix's owners and modes) and
data directories beside them, and ``master -c DIR -d`` runs in the
foreground as a child of ours, stopped by its PID. Every message is delivered to ``discard``;
``maillog_file`` (postlogd) is in the same directory, so what the server
received can be read back: one ``cleanup`` line with the Message-ID per
message stored, in order. smtpd offers PIPELINING and CHUNKING (Postfix 3.4+).
Needs root (Postfix's master) and the ``postfix`` package.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator

DAEMONS = "/usr/lib/postfix/sbin"

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {dir}/queue
data_directory = {dir}/data
command_directory = /usr/sbin
daemon_directory = {daemons}
meta_directory = {dir}/etc
mail_owner = postfix
setgid_group = postdrop
myhostname = bench.invalid
mydomain = invalid
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_recipient_restrictions =
smtpd_client_restrictions =
smtpd_helo_required = no
smtpd_peername_lookup = no
smtpd_client_connection_rate_limit = 0
smtpd_client_message_rate_limit = 0
smtpd_client_recipient_rate_limit = 0
smtpd_client_connection_count_limit = 0
smtpd_recipient_limit = 10000
default_transport = discard
relay_transport = discard
local_transport = discard
virtual_transport = discard
alias_maps =
alias_database =
local_recipient_maps =
biff = no
maillog_file = {dir}/maillog
maillog_file_prefixes = {dir}
message_size_limit = 0
smtputf8_enable = no
"""

MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
cleanup   unix n - n - 0 cleanup
qmgr      unix n - n 300 1 qmgr
rewrite   unix - - n - - trivial-rewrite
bounce    unix - - n - 0 bounce
defer     unix - - n - 0 bounce
trace     unix - - n - 0 bounce
verify    unix - - n - 1 verify
flush     unix n - n - 0 flush
proxymap  unix - - n - - proxymap
anvil     unix - - n - 1 anvil
scache    unix - - n - 1 scache
discard   unix - - n - - discard
error     unix - - n - - error
retry     unix - - n - - error
showq     unix n - n - - showq
postlog   unix-dgram n - n - 1 postlogd
"""


def available() -> str | None:
    """Why a private Postfix cannot run here, or None."""
    if not os.path.exists(f"{DAEMONS}/master"):
        return "apt-get install postfix"
    if os.geteuid() != 0:
        return "Postfix's master needs root"
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PrivatePostfix:
    def __init__(self, directory: Path, port: int, process: subprocess.Popen) -> None:
        self.directory = directory
        self.port = port
        self.process = process

    @property
    def maillog(self) -> str:
        try:
            return (self.directory / "maillog").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def message_ids(self) -> list[str]:
        """Message-IDs of the messages received, in the order cleanup took them."""
        return re.findall(r"cleanup\[\d+\]: \w+: message-id=<([^>]*)>", self.maillog)

    def discarded(self) -> int:
        """Messages delivered (to discard) so far."""
        return len(re.findall(r"discard\[\d+\]: .* status=sent", self.maillog))

    def wait_for(self, count: int, timeout: float = 120.0) -> None:
        """Until ``count`` messages were received and discarded (postlogd writes the log)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.message_ids()) >= count and self.discarded() >= count:
                return
            time.sleep(0.1)
        raise TimeoutError(f"private postfix: {len(self.message_ids())} of {count} messages after {timeout} s")


#: Queue subdirectories: (name, group "postdrop" or None, mode), owner postfix (pid: root).
QUEUE = [(name, None, 0o700) for name in (
    "active", "bounce", "corrupt", "defer", "deferred", "flush", "hold", "incoming", "private", "saved", "trace")]
QUEUE += [("maildrop", "postdrop", 0o730), ("public", "postdrop", 0o710)]


def _write_config(directory: Path, port: int) -> None:
    import grp

    (directory / "etc").mkdir()
    for name in ("dynamicmaps.cf",):
        source = Path("/etc/postfix") / name
        if source.exists():
            shutil.copy(source, directory / "etc" / name)
    (directory / "main.cf").write_text(MAIN_CF.format(dir=directory, daemons=DAEMONS))
    (directory / "master.cf").write_text(MASTER_CF.format(port=port))
    uid, gid = _postfix_ids()
    (directory / "data").mkdir(mode=0o700)
    os.chown(directory / "data", uid, gid)
    queue = directory / "queue"
    queue.mkdir(mode=0o755)
    (queue / "pid").mkdir(mode=0o755)
    for name, group, mode in QUEUE:
        path = queue / name
        path.mkdir()
        os.chmod(path, mode)
        os.chown(path, uid, grp.getgrnam(group).gr_gid if group else 0)


def _postfix_ids() -> tuple[int, int]:
    import pwd

    entry = pwd.getpwnam("postfix")
    return entry.pw_uid, entry.pw_gid


@contextlib.contextmanager
def private_postfix(port: int | None = None) -> Iterator[PrivatePostfix]:
    """Start a private Postfix (see the module doc); stop it and remove its files on exit."""
    why = available()
    if why:
        raise RuntimeError(f"private postfix not available: {why}")
    directory = Path(tempfile.mkdtemp(prefix="smtpstream-postfix-"))
    os.chmod(directory, 0o755)  # the postfix user reads the config and queue below it
    port = port or free_port()
    process = None
    try:
        _write_config(directory, port)
        env = dict(os.environ, MAIL_CONFIG=str(directory))
        process = subprocess.Popen([f"{DAEMONS}/master", "-c", str(directory), "-d"], env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=2) as probe:
                    if probe.recv(512).startswith(b"220"):
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                if process.poll() is None:
                    process.kill()
                err = process.stderr.read().decode(errors="replace") if process.stderr else ""
                log = directory / "maillog"
                log_text = log.read_text(errors="replace")[-2000:] if log.exists() else "(no maillog)"
                raise RuntimeError(f"private postfix did not start: {err[-2000:]}\nmaillog: {log_text}")
            time.sleep(0.1)
        yield PrivatePostfix(directory, port, process)
    finally:
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)  # master stops its children
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":  # a quick look: start, print the EHLO reply, stop
    with private_postfix() as pf:
        with socket.create_connection(("127.0.0.1", pf.port)) as s:
            print(s.recv(512).decode().strip())
            s.sendall(b"EHLO probe.invalid\r\n")
            time.sleep(0.3)
            print(s.recv(4096).decode())
            s.sendall(b"QUIT\r\n")
