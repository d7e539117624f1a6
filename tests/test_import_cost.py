"""What importing the sender and building a plain message pull in: heavy modules only when used.

Times live in bench/test_import_bench.py; here, which modules get imported,
since that is behaviour: a process that never uses TLS never imports ssl.
"""
import email.utils
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, strategies as st

import smtpstream.smtp
from smtpstream import filters
from smtpstream.message import builder

# Each costs milliseconds at import and is needed only by some uses.
HEAVY = ("ssl", "email", "asyncio", "logging", "secrets", "hmac", "hashlib", "idna", "mimetypes", "urllib")
# Needed by no part of the sender at import: annotations are strings (typing only
# under TYPE_CHECKING), values are plain classes (no dataclasses, which imports
# inspect), regexes compile on first use (no re), socket and signal come with
# the first connection, a pool's SIGINT mask. (The filters' pure-Python twin
# works with regexes: re only with the compiled extension.)
LEAN = ("typing", "dataclasses", "inspect", "socket", "signal", "datetime", "copy", "base64",
        *(("re",) if filters.IMPLEMENTATION == "cython" else ()))


def imported_after(code: str) -> set[str]:
    probe = code + "\nimport sys\nprint(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


def test_importing_the_sender_pulls_in_no_heavy_module():
    # Every public name resolved: what a program that sends loads, not only the package.
    assert imported_after("from smtpstream.smtp import *") & {*HEAVY, *LEAN} == set()


def test_importing_the_pool_pulls_in_no_heavy_module():
    assert imported_after("import smtpstream.pool") & {*HEAVY, *LEAN} == set()


def test_the_command_line_imports_what_its_command_needs():
    assert imported_after("import smtpstream.cli") & {"typing", "json", "csv", "hashlib", "tempfile", "socket"} == set()


def test_the_sender_package_loads_its_modules_on_first_use():
    code = ("import sys, smtpstream.smtp as smtp\n"
            "print(sorted(m for m in sys.modules if m.startswith('smtpstream')))\n"
            "smtp.PORT = 2525\n"
            "assert smtp.message.__module__ == 'smtpstream.message.builder'\n"
            "from smtpstream.message import builder\n"
            "from smtpstream.smtp import blocking, errors, lowlevel, options, protocol, reply\n"
            "homes = (blocking, errors, lowlevel, options, protocol, reply)\n"
            "for name in smtp.__all__:\n"
            "    value = getattr(smtp, name)\n"
            "    assert name in ('message', 'SERVER', 'PORT', 'DOMAIN', 'TIMEOUT', 'ZONE') or any(\n"
            "        getattr(home, name, None) is value for home in homes), name\n"
            "assert smtp.PORT == 2525 and smtp.options.DEFAULT_TIMEOUTS is smtp.DEFAULT_TIMEOUTS\n"
            "assert set(smtp.__all__) <= set(dir(smtp))\n"
            "import smtpstream\n"
            "assert smtpstream.ltn12.BLOCKSIZE and smtpstream.message.text")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["['smtpstream',", "'smtpstream.defaults',", "'smtpstream.smtp']"]
    with pytest.raises(AttributeError, match="no attribute 'sned'"):
        smtpstream.smtp.sned  # noqa: B018


def test_a_plain_message_is_built_without_the_email_package():
    code = ("from smtpstream import ltn12, smtp\n"
            "from smtpstream.message import text\n"
            "part = text('hi\\n')\n"
            "src = smtp.message({'headers': {'from': 'Ann <ann@example.com>', 'to': 'bob@example.org',"
            " 'subject': 'Olá', **part['headers']}, 'body': part['body']})\n"
            "assert b'Subject: =?utf-8?' in b''.join(iter(src))")
    assert imported_after(code) & {"email", "ssl", "logging", "secrets"} == set()


def test_address_parsing_beyond_the_simple_forms_still_works():
    code = ("from smtpstream import smtp\n"
            "src = smtp.message({'headers': {'from': '\"Ann, A.\" (work) <ann@example.com>'}, 'body': 'x'})\n"
            "assert src.sender == 'ann@example.com', src.sender")
    assert "email" in imported_after(code)  # the general parser is the email package's


def test_importing_the_sender_then_using_logging_still_logs():
    code = ("import smtpstream.smtp.client as c, logging, io\n"
            "out = io.StringIO(); logging.basicConfig(stream=out, level=logging.DEBUG)\n"
            "c._debug('C: %r', 'NOOP')\n"
            "assert 'C: ' in out.getvalue() and 'NOOP' in out.getvalue(), out.getvalue()")
    imported_after(code)


@given(when=st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9998, 12, 30)),
       minutes=st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59))
def test_date_header_is_what_email_utils_writes(when, minutes):
    aware = when.replace(tzinfo=timezone(timedelta(minutes=minutes)))
    assert builder._rfc5322_date(aware) == email.utils.format_datetime(aware)
    assert builder._rfc5322_date(when, "-0000") == email.utils.format_datetime(when)
