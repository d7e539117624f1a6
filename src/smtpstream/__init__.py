"""smtpstream: e-mail with large attachments, streamed in constant memory.

LuaSocket's SMTP design in Python: LTN12 sources, filters, sinks and pumps
(:mod:`smtpstream.ltn12`), MIME filters that work chunk by chunk
(:mod:`smtpstream.mime`, built on :mod:`smtpstream.filters`).
"""
__version__ = "0.1.0"

__all__ = ["__version__"]
