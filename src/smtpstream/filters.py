"""The stateful chunk filters, from the compiled extension or the pure-Python twin.

Every filter is an object called with one chunk at a time:

* ``f(chunk)`` with ``bytes``, ``bytearray`` or ``memoryview`` returns the
  output that chunk allows, as ``bytes`` (``b""`` means "nothing now");
* ``f(None)`` means end of input: it returns the rest of the output;
* any call after ``f(None)`` raises :class:`ValueError`.

Concatenating the outputs never depends on how the input was cut into chunks.

The implementation is chosen once, at import: the Cython extension
``smtpstream._filters`` unless it is missing or the environment variable
``SMTPSTREAM_NO_EXTENSIONS=1`` is set. :data:`IMPLEMENTATION` says which
("cython" or "python").
"""
from __future__ import annotations

import os

TYPE_CHECKING = False  # typing takes milliseconds to import

__all__ = [
    "IMPLEMENTATION",
    "NO_EXTENSIONS",
    "Base64Encoder",
    "Base64Decoder",
    "QPEncoder",
    "QPDecoder",
    "LineWrapper",
    "QPWrapper",
    "EOLNormalizer",
    "DotStuffer",
    "Base64WrapEncoder",
    "NormalizeStuffer",
    "BodyCanonicalizer",
    "CleanLines",
    "crlf_lines_only",
    "stuffed_lines_only",
    "StuffedLines",
    "dkim_canonical",
]

NO_EXTENSIONS: bool = os.environ.get("SMTPSTREAM_NO_EXTENSIONS", "") not in ("", "0")

if TYPE_CHECKING or NO_EXTENSIONS:
    from ._filters_py import (
        Base64Decoder,
        Base64Encoder,
        Base64WrapEncoder,
        BodyCanonicalizer,
        DotStuffer,
        EOLNormalizer,
        LineWrapper,
        NormalizeStuffer,
        QPDecoder,
        QPEncoder,
        QPWrapper,
        crlf_lines_only,
        dkim_canonical,
        stuffed_lines_only,
    )

    IMPLEMENTATION = "python"
else:
    try:
        from ._filters import (  # type: ignore[no-redef]
            Base64Decoder,
            Base64Encoder,
            Base64WrapEncoder,
            BodyCanonicalizer,
            DotStuffer,
            EOLNormalizer,
            LineWrapper,
            NormalizeStuffer,
            QPDecoder,
            QPEncoder,
            QPWrapper,
            crlf_lines_only,
            dkim_canonical,
            stuffed_lines_only,
        )

        IMPLEMENTATION = "cython"
    except ImportError:  # built without a compiler: the twin gives the same bytes
        from ._filters_py import (
            Base64Decoder,
            Base64Encoder,
            Base64WrapEncoder,
            BodyCanonicalizer,
            DotStuffer,
            EOLNormalizer,
            LineWrapper,
            NormalizeStuffer,
            QPDecoder,
            QPEncoder,
            QPWrapper,
            crlf_lines_only,
            dkim_canonical,
            stuffed_lines_only,
        )

        IMPLEMENTATION = "python"


class CleanLines(bytes):
    """Bytes that are SMTP DATA as they stand: base64 text in CRLF lines.

    Every line break is CRLF, there is no other CR or LF, no ``.`` anywhere,
    and the chunk never ends between the CR and the LF of a break. So
    :class:`NormalizeStuffer` would return it unchanged, and a sender may skip
    that scan (the message builder marks its base64 bodies this way).

    Anyone can make one, so the marker alone proves nothing: a sender trusts
    it only when :meth:`holds` (``crlf_lines_only``: memchr from line break to
line break in the extension, far cheaper than stuffing).
    """

    __slots__ = ()

    def holds(self) -> bool:
        """True when the bytes keep the promise: no ``.``, every CR and LF in a CRLF."""
        return crlf_lines_only(self)


class StuffedLines(bytes):
    """Bytes that are SMTP DATA as they stand when they start a line: whole
    CRLF lines, no other CR or LF, and no line beginning with ``.``.

    So :class:`NormalizeStuffer`, at the start of a line, would return them
    unchanged and end at the start of a line again; a sender may skip it (the
    message builder marks the text it encodes this way when it is so). Like
    :class:`CleanLines` the marker proves nothing: a sender trusts it only
    when :meth:`holds` (memchr from line break to line break in the extension).
    """

    __slots__ = ()

    def holds(self) -> bool:
        """True when the bytes keep the promise (an empty chunk does)."""
        return stuffed_lines_only(self)
