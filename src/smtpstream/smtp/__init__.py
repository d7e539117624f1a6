"""SMTP: LuaSocket's ``socket.smtp`` in Python.

``message(mesgt)`` builds a message source (see :mod:`smtpstream.message`).
"""
from ..message import message

__all__ = ["message"]
