"""Internationalised domain names in ASCII: IDNA 2008 with UTS #46 non-transitional processing.

Python's own ``"idna"`` codec is IDNA 2003: it maps ``ß`` to ``ss`` and final
``ς`` to ``σ`` and drops a zero-width joiner, so mail for ``straße.de`` would
go to ``strasse.de`` (another registrant) and an invisible character would slip
past deny-lists. The ``idna`` package implements IDNA 2008 (RFC 5891) with the
UTS #46 mapping (case folding, width), non-transitional: ``ß`` and ``ς`` stay
themselves, and what IDNA 2008 forbids is refused instead of rewritten.
"""
from __future__ import annotations

__all__ = ["to_ascii"]


def to_ascii(domain: str) -> str:
    """The ASCII (A-label) form of ``domain``; ``UnicodeError`` when IDNA 2008 refuses it."""
    import idna  # here, not at import: its tables cost milliseconds; only non-ASCII names need it

    return idna.encode(domain, uts46=True, transitional=False).decode("ascii")
