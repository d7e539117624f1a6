"""LuaSocket's module-wide defaults: ``smtp.SERVER``, ``PORT``, ``DOMAIN``, ``TIMEOUT``, ``ZONE``.

A LuaSocket program sets them on the module (``smtp.PORT = 2525``) and every
later call uses them. Here they are attributes of :mod:`smtpstream.smtp`, where
such a program sets them, and :func:`lookup` reads them from there each time
a send, a session or a message starts: never at import time. The layers
below ``smtp`` (``message()`` reads ``ZONE``) go through :func:`lookup` so that
they need not import ``smtp``.

Values that depart from LuaSocket's, on purpose:

* ``DOMAIN = None``: the EHLO argument is the host's fully qualified name or
  the address literal of the connection (RFC 5321 4.1.1.1), not "localhost".
* ``TIMEOUT = None``: RFC 5321 4.5.3.2's limit for each phase
  (``smtp.DEFAULT_TIMEOUTS``); a number is seconds for every operation, as
  LuaSocket's ``TIMEOUT = 60``.
* ``ZONE = None``: the Date is local time with its real offset. A zone
  (``"-0000"``, ``"+0200"``) asks for the Date in that zone, the time
  converted to it (LuaSocket prints UTC time with any suffix).
"""
from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: typing takes milliseconds to import
    from typing import Any

NAMES = ("SERVER", "PORT", "DOMAIN", "TIMEOUT", "ZONE")
__all__ = [*NAMES, "NAMES", "lookup"]

SERVER = "localhost"
PORT = 25
DOMAIN = None
TIMEOUT = None
ZONE = None

_OWNER = "smtpstream.smtp"  # the module a program changes


def lookup(name: str) -> Any:
    """The current value of ``smtp.<name>`` (the built-in one before smtp is imported)."""
    if name not in NAMES:
        raise KeyError(f"no LuaSocket module default named {name!r}")
    return getattr(sys.modules.get(_OWNER), name, globals()[name])
