"""``email.message.Message`` / ``EmailMessage`` as a message source, as ``smtplib.send_message`` reads it.

The envelope comes from the headers (:func:`envelope`): the sender is
``Sender`` or else ``From``; the recipients are every address of ``To``,
``Cc`` and ``Bcc``. When the message carries one ``Resent-Date`` (RFC 5322
3.6.6: it was resent), the ``Resent-`` fields are read instead; more than one
Resent block is ambiguous and refused, as smtplib refuses it.

The message is serialised by the standard library's own generator with CRLF
line ends, without ``Bcc`` and ``Resent-Bcc``, and with the ``utf8`` policy
when the envelope needs SMTPUTF8 (as smtplib does). It is produced part by
part (:func:`chunks`): a multipart's head, each leaf part, each boundary, so
the bytes ``msg.as_bytes()`` would give are never joined into one buffer.
The output is byte for byte what ``smtplib.send_message`` sends.

``email.message`` is never imported here: a caller holding a Message has
imported it already, so :func:`is_message` only looks in ``sys.modules``
(``import smtpstream.smtp`` stays as light as it was).
"""
from __future__ import annotations

import io
import os
import sys

from .._lazyre import Pattern

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: typing takes milliseconds to import
    from typing import Any, Iterator

__all__ = ["is_message", "envelope", "prepare", "PreparedMessage"]

_NL = "\r\n"
_LINES = Pattern(r"\r\n|\r|\n")
_FROM_LINE = Pattern(r"(?m)^From ")


def is_message(obj: Any) -> bool:
    """True for an ``email.message.Message`` (``EmailMessage``, ``MIMEText``... included)."""
    module = sys.modules.get("email.message")
    return module is not None and isinstance(obj, module.Message)


def _resent_prefix(msg: Any) -> str:
    resent = msg.get_all("Resent-Date")
    if resent is None:
        return ""
    if len(resent) == 1:
        return "Resent-"
    raise ValueError("the message has more than one 'Resent-' header block: give from_ and rcpt")


def envelope(msg: Any) -> tuple[str | None, list[str]]:
    """``(sender, recipients)`` from the headers, as ``smtplib.send_message`` finds them."""
    from email.utils import getaddresses

    prefix = _resent_prefix(msg)
    sender_field = msg.get_all(prefix + "Sender") or msg.get_all(prefix + "From") or []
    senders = [addr for _, addr in getaddresses([str(v) for v in sender_field]) if addr]
    values = []
    for name in ("To", "Bcc", "Cc"):
        values.extend(str(v) for v in msg.get_all(prefix + name) or ())
    recipients = [addr for _, addr in getaddresses(values) if addr]
    return (senders[0] if senders else None), recipients


class PreparedMessage:
    """A Message without its Bcc fields, and the policy it is written with."""

    __slots__ = ("msg", "policy", "utf8_headers", "eight_bit")

    def __init__(self, msg: Any, international: bool) -> None:
        import copy  # here: only an email.message.Message needs it

        shown = copy.copy(msg)  # the caller's message keeps its Bcc
        del shown["Bcc"]
        del shown["Resent-Bcc"]
        policy = msg.policy
        if international and hasattr(policy, "utf8"):
            policy = policy.clone(utf8=True)  # smtplib: an SMTPUTF8 envelope gets raw UTF-8 headers
        self.msg = shown
        self.policy = policy.clone(linesep=_NL)
        utf8 = bool(getattr(self.policy, "utf8", False))
        self.utf8_headers = utf8 and any(
            not str(value).isascii() for part in shown.walk() for _, value in part.raw_items())
        self.eight_bit = self.utf8_headers or any(
            str(part.get("Content-Transfer-Encoding", "")).strip().lower() in ("8bit", "binary")
            for part in shown.walk())

    def chunks(self) -> Iterator[bytes]:
        """The message's bytes, part by part."""
        return _walk(self.msg, self.policy)


def prepare(msg: Any, international: bool) -> PreparedMessage:
    return PreparedMessage(msg, international)


def _flatten(part: Any, policy: Any) -> bytes:
    from email.generator import BytesGenerator

    out = io.BytesIO()
    BytesGenerator(out, policy=policy).flatten(part, unixfrom=False, linesep=_NL)
    return out.getvalue()


def _lines(text: str, mangle: bool) -> bytes:
    """The generator's ``_write_lines`` for a preamble or an epilogue."""
    if mangle:
        text = _FROM_LINE.sub(">From ", text)
    if not text:
        return b""
    pieces = _LINES.split(text)
    out = [line + _NL for line in pieces[:-1]]
    if pieces[-1]:
        out.append(pieces[-1])
    return "".join(out).encode("ascii", "surrogateescape")


def _walk(part: Any, policy: Any) -> Iterator[bytes]:
    subparts = part.get_payload()
    if (not part.is_multipart() or not isinstance(subparts, list)
            or part.get_content_type() == "multipart/signed" or hasattr(part, "_write_headers")):
        # A leaf (or a multipart the generator must write as a whole: a signed
        # part's headers are written unfolded).
        yield _flatten(part, policy)
        return
    boundary = part.get_boundary()
    if not boundary:
        # The generator would pick one after writing every part, to be sure no
        # part contains it: 128 random bits make that check needless. Set on a
        # copy: the caller's part is left as it was.
        import copy

        part = copy.copy(part)
        boundary = "=_" + os.urandom(16).hex()
        part.set_boundary(boundary)
    yield b"".join(policy.fold_binary(name, value) for name, value in part.raw_items()) + b"\r\n"
    mangle = bool(policy.mangle_from_)
    if part.preamble is not None:
        yield _lines(part.preamble, mangle) + b"\r\n"
    delimiter = f"--{boundary}\r\n".encode("ascii", "surrogateescape")
    yield delimiter
    for index, sub in enumerate(subparts):
        if index:
            yield b"\r\n" + delimiter
        yield from _walk(sub, policy)
    yield f"\r\n--{boundary}--\r\n".encode("ascii", "surrogateescape")
    if part.epilogue is not None:
        yield _lines(part.epilogue, mangle)
