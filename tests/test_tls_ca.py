"""cafile=, capath=, verify=False and the CLI's --cafile / --insecure, against aiosmtpd
with a certificate signed by a private CA that openssl makes here."""
from __future__ import annotations

import asyncio
import os
import shutil
import ssl
import subprocess
import sys

import pytest

from smtpstream import aio, smtp
from smtpstream.pool import AsyncPool, Pool
from smtpstream.smtp import SMTPTLSError

from smtp_servers import HOST, AuthHandler, aiosmtpd_running

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")

T = 20
BODY = [b"Subject: tls\r\n\r\nover TLS\r\n"]
ENVELOPE = {"from_": "a@example.com", "rcpt": "b@example.org"}


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A private CA, and a server certificate for 127.0.0.1 it signed."""
    d = tmp_path_factory.mktemp("pki")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=smtpstream test CA", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=127.0.0.1", cwd=d)
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                               "extendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf", cwd=d)
    hashed = d / "hashed"
    hashed.mkdir()
    shutil.copy(d / "ca.pem", hashed / "ca.pem")
    openssl("rehash", str(hashed), cwd=d)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(str(d / "server.pem"), str(d / "server.key"))
    return {"dir": d, "ca": str(d / "ca.pem"), "capath": str(hashed), "server": server_ctx}


@pytest.fixture(scope="module")
def starttls_server(pki):
    handler = AuthHandler()
    with aiosmtpd_running(handler, tls_context=pki["server"], require_starttls=True) as port:
        yield port, handler


@pytest.fixture(scope="module")
def implicit_server(pki):
    handler = AuthHandler()
    with aiosmtpd_running(handler, ssl_context=pki["server"]) as port:
        yield port, handler


def test_the_private_ca_is_not_trusted_by_default(starttls_server):
    port, handler = starttls_server
    before = len(handler.box)
    with pytest.raises(SMTPTLSError, match="verification failed") as info:
        smtp.send(server=HOST, port=port, source=BODY, starttls="required", timeout=T, **ENVELOPE)
    assert info.value.phase == "starttls"
    assert len(handler.box) == before


def test_cafile_and_capath_trust_it(starttls_server, pki):
    port, handler = starttls_server
    before = len(handler.box)
    smtp.send(server=HOST, port=port, source=BODY, starttls="required", cafile=pki["ca"], timeout=T, **ENVELOPE)
    with smtp.Session(server=HOST, port=port, capath=pki["capath"], starttls="required", timeout=T) as session:
        session.send(source=BODY, **ENVELOPE)
    assert handler.tls[before:] == [True, True]
    assert b"over TLS" in handler.box[-1].content


def test_verify_false_encrypts_without_checking(starttls_server):
    port, handler = starttls_server
    before = len(handler.box)
    smtp.send(server=HOST, port=port, source=BODY, starttls="required", verify=False, timeout=T, **ENVELOPE)
    assert handler.tls[before:] == [True]


def test_an_ssl_context_wins(starttls_server, pki):
    port, _ = starttls_server
    with pytest.raises(SMTPTLSError):
        smtp.send(server=HOST, port=port, source=BODY, starttls="required", cafile=pki["ca"],
                  ssl_context=ssl.create_default_context(), timeout=T, **ENVELOPE)


def test_implicit_tls_with_aio_and_the_pools(implicit_server, pki):
    port, handler = implicit_server
    before = len(handler.box)

    async def main():
        await aio.send(server=HOST, port=port, tls=True, source=BODY, cafile=pki["ca"], timeout=T, **ENVELOPE)
        with pytest.raises(SMTPTLSError):
            await aio.send(server=HOST, port=port, tls=True, source=BODY, timeout=T, **ENVELOPE)
        return await AsyncPool(server=HOST, port=port, tls=True, cafile=pki["ca"], connections=1,
                               timeout=T).send_many([{"source": BODY, **ENVELOPE}])

    results = asyncio.run(main())
    assert results[0].ok
    messages = [{"source": BODY, "from": "a@example.com", "rcpt": "b@example.org"}] * 2
    assert all(r.ok for r in Pool(server=HOST, port=port, tls=True, cafile=pki["ca"], connections=2,
                                  timeout=T).send_many(messages))
    assert len(handler.box) - before == 4


def test_a_missing_or_bad_cafile_fails_before_connecting(pki, tmp_path):
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("not a certificate\n")
    for bad in (str(tmp_path / "missing.pem"), str(not_pem)):
        with pytest.raises(SMTPTLSError, match="nothing was sent"):
            smtp.send(server=HOST, port=9, source=BODY, cafile=bad, timeout=T, **ENVELOPE)  # port 9: never reached
    with pytest.raises(TypeError):
        smtp.send(server=HOST, port=9, source=BODY, verify="no", **ENVELOPE)


def cli(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "smtpstream", "send", "--from", "a@example.com", "--to",
                           "b@example.org", "--text", "hi", "--quiet", "--timeout", str(T), *args],
                          capture_output=True, text=True, timeout=60, input=stdin)


def test_cli_cafile_insecure_and_exit_78(starttls_server, pki, tmp_path):
    port, handler = starttls_server
    server = f"{HOST}:{port}"
    before = len(handler.box)
    untrusted = cli("--server", server, "--starttls")
    assert untrusted.returncode == 78, untrusted.stderr
    assert "certificate" in untrusted.stderr and "Traceback" not in untrusted.stderr
    trusted = cli("--server", server, "--starttls", "--cafile", pki["ca"])
    assert trusted.returncode == 0, trusted.stderr
    insecure = cli("--server", server, "--starttls", "--insecure")
    assert insecure.returncode == 0, insecure.stderr
    missing = cli("--server", server, "--cafile", str(tmp_path / "nope.pem"))
    assert missing.returncode == 78, missing.stderr
    assert len(handler.box) - before == 2


def test_cli_help_documents_the_tls_options():
    done = subprocess.run([sys.executable, "-m", "smtpstream", "send", "--help"], capture_output=True, text=True,
                          timeout=60)
    for option in ("--cafile", "--capath", "--insecure", "--starttls", "--tls", "--password-stdin", "--debug"):
        assert option in done.stdout


def test_cli_debug_prints_the_dialogue_and_password_stdin_needs_user(starttls_server):
    port, _ = starttls_server
    done = cli("--server", f"{HOST}:{port}", "--starttls", "--insecure", "-v")
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert any(line.startswith("smtpstream: C: StartTLS") for line in lines)
    assert any(line.startswith("smtpstream: S: 250") for line in lines)
    alone = cli("--server", f"{HOST}:{port}", "--password-stdin", stdin="secret\n")
    assert alone.returncode == 64 and "--user" in alone.stderr and "secret" not in alone.stderr
