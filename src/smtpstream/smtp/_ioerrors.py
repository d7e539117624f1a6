"""What a socket, ssl or timeout error means in SMTP terms: shared by both transports.

Kept out of ``errors.py`` so that the sans-IO engine never imports ssl.
"""
from __future__ import annotations

import socket
import ssl

from .errors import SMTPError, SMTPServerDisconnected, SMTPTimeoutError, SMTPTLSError

__all__ = ["translate"]


def translate(exc: BaseException, phase: str, timeout: float) -> SMTPError:
    """The SMTP exception an I/O error means, carrying the phase it happened in."""
    # asyncio.TimeoutError is TimeoutError from Python 3.11 on.
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return SMTPTimeoutError(f"no progress within {timeout:g} s", phase=phase)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return SMTPTLSError(f"TLS certificate verification failed: {exc.verify_message}", phase=phase)
    if isinstance(exc, (ssl.SSLZeroReturnError, ssl.SSLEOFError)) and phase not in ("connect", "starttls"):
        return SMTPServerDisconnected(f"the server closed the TLS connection ({exc})", phase=phase)
    if isinstance(exc, ssl.SSLError):
        return SMTPTLSError(f"TLS failed: {exc}", phase=phase)
    detail = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    if phase == "connect":
        return SMTPServerDisconnected(f"cannot connect: {detail}", phase=phase)
    return SMTPServerDisconnected(f"connection lost: {detail}", phase=phase)
