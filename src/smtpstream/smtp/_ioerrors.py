"""What a socket, ssl or timeout error means in SMTP terms: shared by both transports.

Kept out of ``errors.py`` so that the sans-IO engine never imports ssl; and ssl is looked up
here, never imported: a process that has not imported it has made no TLS connection.
"""
from __future__ import annotations

import sys
from types import ModuleType

from .errors import (RemoteProtocolError, SMTPConnectError, SMTPError, SMTPServerDisconnected, SMTPTimeoutError,
                     SMTPTLSError)

__all__ = ["translate"]

#: OpenSSL's reasons for a handshake that met bytes which are not TLS records.
_NOT_TLS = frozenset({"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG",
                      "UNKNOWN_PROTOCOL", "HTTP_REQUEST", "WRONG_SSL_VERSION"})


def translate(exc: BaseException, phase: str, timeout: float) -> SMTPError:
    """The SMTP exception an I/O error means, carrying the phase it happened in."""
    # socket.timeout and asyncio.TimeoutError are TimeoutError from Python 3.11 on.
    if isinstance(exc, TimeoutError):
        return SMTPTimeoutError(f"timed out ({timeout:g} s)", phase=phase)
    ssl = sys.modules.get("ssl")  # not imported: no TLS was used, so exc is no TLS error
    if ssl is not None and isinstance(exc, ssl.SSLError):
        return _tls_error(ssl, exc, phase)
    detail = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    if phase == "connect":
        return SMTPConnectError(f"cannot connect: {detail}", phase=phase)
    return SMTPServerDisconnected(f"connection lost: {detail}", phase=phase)


def _tls_error(ssl: ModuleType, exc: BaseException, phase: str) -> SMTPError:
    """What an ``ssl.SSLError`` means (``ssl`` passed in: it is imported only when TLS is used)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return SMTPTLSError(f"TLS certificate verification failed: {exc.verify_message}", phase=phase)
    if isinstance(exc, (ssl.SSLZeroReturnError, ssl.SSLEOFError)) and phase not in ("connect", "starttls"):
        return SMTPServerDisconnected(f"the server closed the TLS connection ({exc})", phase=phase)
    if phase == "starttls" and exc.reason in _NOT_TLS:  # type: ignore[attr-defined]
        # RFC 3207 5: nothing may come in clear between the 220 and the
        # handshake; bytes that did were injected (CVE-2011-0411 class).
        return RemoteProtocolError(f"the server sent bytes in clear after the STARTTLS go-ahead ({exc})",
                                   phase=phase)
    return SMTPTLSError(f"TLS failed: {exc}", phase=phase)
