"""PostgreSQL and Redis for the scale-out tests: Debian's binaries, started here.

Each server is our own child on 127.0.0.1 and a free port, with its data in a
temporary directory, stopped by its PID. Missing binaries skip the tests that
need them, unless ``SMTPSTREAM_REQUIRE_SERVICES=1`` (CI), where they fail.
PostgreSQL refuses to run as root: as root, the cluster runs as the
``postgres`` user that Debian's package creates.
"""
from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from smtp_servers import free_port

REQUIRED = os.environ.get("SMTPSTREAM_REQUIRE_SERVICES") == "1"


def _pg_bin() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    return os.path.dirname(found[-1]) if found else None


def missing(what: str) -> None:
    message = f"{what} is not installed (apt-get install postgresql redis-server)"
    if REQUIRED:
        pytest.fail(message + " and SMTPSTREAM_REQUIRE_SERVICES=1")
    pytest.skip(message)


def _wait_port(port: int, process: subprocess.Popen, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port} within {timeout} s")


def _stop(process: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def postgres_server():
    """Yield a ``postgresql://`` URL of a fresh cluster (database ``postgres``, trust auth)."""
    bindir = _pg_bin()
    if bindir is None:
        missing("PostgreSQL")
    root = os.geteuid() == 0
    user = "postgres" if root else None
    work = tempfile.mkdtemp(prefix="smtpstream-pg-")
    data = os.path.join(work, "data")
    try:
        if root:
            entry = pwd.getpwnam("postgres")
            os.chown(work, entry.pw_uid, entry.pw_gid)
        subprocess.run([os.path.join(bindir, "initdb"), "-D", data, "-A", "trust", "-U", "postgres",
                        "--no-sync", "-E", "UTF8"], check=True, capture_output=True, user=user)
        port = free_port()
        process = subprocess.Popen(
            [os.path.join(bindir, "postgres"), "-D", data, "-h", "127.0.0.1", "-p", str(port), "-k", work,
             "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
             "-c", "max_connections=50"],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "log"), "wb"), user=user)
        try:
            _wait_port(port, process, "postgres")
            url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
            deadline = time.monotonic() + 30
            import psycopg

            while True:  # listening comes before accepting logins
                try:
                    psycopg.connect(url).close()
                    break
                except psycopg.OperationalError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            yield url
        finally:
            _stop(process, signal.SIGINT)  # "fast" shutdown
    finally:
        shutil.rmtree(work, ignore_errors=True)


@contextlib.contextmanager
def redis_server():
    """Yield a ``redis://`` URL of a fresh redis-server (no persistence)."""
    binary = shutil.which("redis-server")
    if binary is None:
        missing("redis-server")
    work = tempfile.mkdtemp(prefix="smtpstream-redis-")
    port = free_port()
    process = subprocess.Popen([binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                                "--appendonly", "no", "--dir", work], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        _wait_port(port, process, "redis-server")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        _stop(process)
        shutil.rmtree(work, ignore_errors=True)


def fresh_database(url: str, name: str) -> str:
    """A new empty database on the server of ``url``; its URL."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return url.rsplit("/", 1)[0] + "/" + name
