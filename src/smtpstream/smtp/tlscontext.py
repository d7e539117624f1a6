"""The TLS context that ``cafile``, ``capath`` and ``verify`` ask for (kept apart: it imports ssl)."""
from __future__ import annotations

import functools
import os
import ssl

from .errors import SMTPTLSError

__all__ = ["client_context"]


@functools.lru_cache(maxsize=16)
def client_context(cafile: str | None, capath: str | None, verify: bool) -> ssl.SSLContext:
    # One context per setting: a pool's connections share it (loading a CA
    # bundle for every connection would cost more than the handshake).
    if cafile is not None and not os.path.isfile(cafile):
        raise SMTPTLSError(f"cafile {cafile!r} is not a file: nothing was sent")
    if capath is not None and not os.path.isdir(capath):
        raise SMTPTLSError(f"capath {capath!r} is not a directory: nothing was sent")
    try:
        context = ssl.create_default_context(cafile=cafile, capath=capath)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise SMTPTLSError(f"cannot load the CA certificates ({exc}): nothing was sent") from None
    if not verify:
        # Encrypted but not authenticated: anyone on the path can read it.
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
