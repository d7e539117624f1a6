"""DKIM signing (RFC 6376, RFC 8463) of streamed messages, in constant memory.

A :class:`Signer` holds a domain, a selector and a private key. Give it to
``message(table, dkim=signer)`` (or as the ``dkim=`` send field): when the
message is first read, its body is hashed in a first pass over the
replayable parts, and the ``DKIM-Signature`` header is then written in front
of the message, whose bytes are produced a second time. Nothing is held in
memory but one chunk.

Canonicalisation, the body hash, the header hash and the header's folding
are ours; only the signature itself is made by the ``cryptography``
package, imported when a signer is made (``pip install smtpstream[dkim]``).
"""
from __future__ import annotations

import base64
import hashlib
import os
import re
import time
import warnings
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

from . import filters

__all__ = ["Signer", "DKIMError", "DEFAULT_HEADERS", "body_hash"]

CRLF = b"\r\n"

#: Signed when present, in this order; ``From`` is listed once more so that
#: a second From added on the way breaks the signature (RFC 6376 8.15).
DEFAULT_HEADERS = (
    "From", "To", "Cc", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type",
    "Reply-To", "List-Unsubscribe", "List-Unsubscribe-Post",
)

ALGORITHMS = ("rsa-sha256", "ed25519-sha256")
MODES = ("relaxed", "simple")

# RFC 6376 3.1: selector = sub-domain *("." sub-domain), sub-domain from RFC 5321.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\Z")
_FIELD_NAME = re.compile(r"[!-9;-~]+\Z")  # RFC 5322 ftext
_FIELD_START = re.compile(rb"\r\n(?![ \t])")  # a CRLF not followed by folding white space
_WSP_RUN = re.compile(rb"[ \t]+")
_SIG_WIDTH = 72  # base64 characters of b= per folded line


class DKIMError(ValueError):
    """A signer cannot be made from these settings (the message says why)."""


def _content_span(chunk: bytes) -> tuple[int, int]:
    """Where the content of a clean chunk starts (just past its first content
    byte) and ends (before its trailing line breaks), without copying it."""
    n = len(chunk)
    start = 0
    while start < n and chunk[start] in b"\r\n":
        start += 1
    end = n
    while end > start and chunk[end - 1] in b"\r\n":
        end -= 1
    return start + 1, end


def body_hash(chunks: Iterable[bytes], mode: str = "relaxed") -> bytes:
    """SHA-256 of the canonical body (``mode`` "relaxed" or "simple").

    The chunks are the body as the message gives it; line breaks are made
    CRLF first, as the transport does. A chunk that is canonical already
    (:func:`~smtpstream.filters.dkim_canonical`: no byte below ``+`` outside
    CRLF pairs, as base64 lines and boundary lines are) needs the
    canonicaliser only for the line breaks around it: up to its first content
    byte it goes through the canonicaliser (which writes what it holds), then
    straight to the hash up to its last content byte, and its trailing breaks
    through the canonicaliser again (they may end the body). So a base64
    attachment costs one scan and the hash, never a canonicalising copy.
    """
    digest = hashlib.sha256()
    update = digest.update
    canon = filters.BodyCanonicalizer(mode)
    normalizer = filters.EOLNormalizer()
    canonical = filters.dkim_canonical
    for chunk in chunks:
        if isinstance(chunk, bytes) and not normalizer.state and canonical(chunk):
            start, end = _content_span(chunk)
            if end >= start:
                view = memoryview(chunk)
                update(canon(view[:start]))
                update(view[start:end])
                update(canon(view[end:]))
                continue
        else:
            chunk = normalizer(chunk)
        update(canon(chunk))
    update(canon(None))
    return digest.digest()


def _domain(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise DKIMError(f"the {what} must be a str, got {type(value).__name__}")
    try:
        ascii_value = value.encode("idna").decode("ascii") if not value.isascii() else value
    except UnicodeError:
        ascii_value = ""
    if not _DOMAIN.match(ascii_value) or len(ascii_value) > 253:
        raise DKIMError(f"the {what} {value!r} is not a domain name (letters, digits, '-' and '.')")
    return ascii_value.lower() if what == "domain" else ascii_value


def _header_names(headers: Sequence[str] | None) -> tuple[str, ...]:
    names = DEFAULT_HEADERS if headers is None else headers
    if isinstance(names, (str, bytes)) or not isinstance(names, Iterable):
        raise DKIMError("headers must be a list of header names")
    names = tuple(names)
    for name in names:
        if not isinstance(name, str) or not _FIELD_NAME.match(name):
            raise DKIMError(f"{name!r} is not a header name")
    lower = [n.lower() for n in names]
    if "from" not in lower:
        raise DKIMError("the signed headers must include From (RFC 6376 5.4)")
    if "dkim-signature" in lower:
        raise DKIMError("DKIM-Signature cannot sign itself")
    return tuple(dict.fromkeys(lower))  # lower case, each once, order kept


def _expiry(expire: Any) -> int | None:
    if expire is None:
        return None
    if isinstance(expire, timedelta):
        expire = expire.total_seconds()
    if isinstance(expire, bool) or not isinstance(expire, (int, float)) or expire <= 0:
        raise DKIMError(f"expire must be a positive number of seconds or a timedelta, got {expire!r}")
    return int(expire)


def _load_key(private_key: Any, algorithm: str):
    """The key object of ``cryptography``, checked against the algorithm."""
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
    except ImportError:  # pragma: no cover - the extra is missing
        raise DKIMError("DKIM signing needs the cryptography package: pip install 'smtpstream[dkim]'") from None
    if isinstance(private_key, str) and private_key.lstrip().startswith("-----BEGIN"):
        private_key = private_key.encode("ascii")
    if isinstance(private_key, (str, os.PathLike)):
        try:
            with open(private_key, "rb") as handle:
                private_key = handle.read()
        except OSError as exc:
            raise DKIMError(f"cannot read the private key file {os.fspath(private_key)!r}: {exc}") from exc
    if not isinstance(private_key, (bytes, bytearray, memoryview)):
        raise DKIMError(f"private_key must be PEM bytes or a path, got {type(private_key).__name__}")
    try:
        # OpenSSL's RSA key check tests p and q for primality: 40 ms a process,
        # a fifth of a 64 MiB send. Signer._check_rsa_key checks that it signs instead.
        key = serialization.load_pem_private_key(bytes(private_key), password=None,
                                                 unsafe_skip_rsa_key_validation=True)
    except (ValueError, TypeError) as exc:
        raise DKIMError(f"the private key does not parse as an unencrypted PEM key: {exc}") from None
    except Exception as exc:  # cryptography's UnsupportedAlgorithm
        raise DKIMError(f"the private key is not usable: {exc}") from None
    if algorithm == "rsa-sha256":
        if not isinstance(key, rsa.RSAPrivateKey):
            hint = " (algorithm='ed25519-sha256' for this one)" if isinstance(key, ed25519.Ed25519PrivateKey) else ""
            raise DKIMError(f"rsa-sha256 needs an RSA key, got {type(key).__name__}{hint}")
        if key.key_size < 1024:
            raise DKIMError(f"an RSA key of {key.key_size} bits is refused: verifiers ignore keys under 1024 bits")
        if key.key_size < 2048:
            warnings.warn(
                f"an RSA key of {key.key_size} bits is weak: use 2048 bits or more (RFC 8301)",
                UserWarning,
                stacklevel=4,
            )
    elif not isinstance(key, ed25519.Ed25519PrivateKey):
        raise DKIMError(f"ed25519-sha256 needs an Ed25519 key, got {type(key).__name__}")
    return key


def _fields(head: bytes, relaxed: bool, wanted: frozenset[bytes]) -> dict[bytes, list[bytes]]:
    """The ``wanted`` header fields of ``head`` (ending with the empty line) by lower-case
    name, in order, each with its CRLF: as they are, or in relaxed form (RFC 6376 3.4.2)."""
    text = head[:-4] if head.endswith(b"\r\n\r\n") else head.removesuffix(CRLF)
    by_name: dict[bytes, list[bytes]] = {}
    if relaxed:
        # The whole head at once (a few C passes, not a regex per field):
        # unfolded, so that each field is one line, and white space runs as one SP.
        text = text.replace(b"\r\n ", b" ").replace(b"\r\n\t", b"\t")
        if b"\t" in text or b"  " in text:
            text = _WSP_RUN.sub(b" ", text)
        fields = text.split(b"\r\n")
    else:
        fields = _FIELD_START.split(text)
    for field in fields:
        name, _, value = field.partition(b":")
        name = name.strip(b" \t").lower()
        if name in wanted:
            field = name + b":" + value.strip(b" ") + CRLF if relaxed else field + CRLF
            stack = by_name.get(name)
            if stack is None:
                by_name[name] = [field]
            else:
                stack.append(field)
    return by_name


def _relaxed_field(field: bytes) -> bytes:
    """RFC 6376 3.4.2: lower-case name, unfolded, white space runs as one SP, trimmed."""
    name, _, value = field.partition(b":")
    value = value.replace(b"\r\n", b"")
    if b"\t" in value or b"  " in value:  # most values have single spaces only: no regex for them
        value = _WSP_RUN.sub(b" ", value)
    return name.strip(b" \t").lower() + b":" + value.strip(b" \t") + CRLF


def _fold_tags(name: str, tags: list[str]) -> bytes:
    """``name: tag; tag;`` folded before a tag, or inside ``h=`` after a colon, to keep lines within 78."""
    words: list[tuple[str, str]] = []  # (glue, word): a fold may replace the glue
    for tag in tags:
        parts = tag.split(":") if tag.startswith("h=") else [tag]
        for k, part in enumerate(parts):
            last = k == len(parts) - 1
            words.append((" " if k == 0 else "", part + (";" if last else ":")))
    lines = [f"{name}:"]
    for glue, word in words:
        if len(lines[-1]) + len(glue) + len(word) > 78:
            lines.append(" " + word)
        else:
            lines[-1] += glue + word
    return "\r\n".join(lines).encode("ascii")


class Signer:
    """Signs messages for ``domain`` with the key published at ``selector._domainkey.domain``.

    ``private_key``: PEM bytes (or str) or the path of a PEM file; RSA of
    2048 bits or more for "rsa-sha256" (under 1024 refused, under 2048
    warned), Ed25519 for "ed25519-sha256" (RFC 8463). ``canonicalization``:
    "relaxed/relaxed" (default), "simple/simple", "relaxed/simple",
    "simple/relaxed" or one word for both. ``headers``: the header names to
    sign (default :data:`DEFAULT_HEADERS`; must include From), signed when
    present, From once more. ``expire``: seconds (or a timedelta) after the
    signing time for the ``x=`` tag. Bad settings raise :class:`DKIMError`.
    """

    def __init__(self, domain: str, selector: str, private_key: Any, algorithm: str = "rsa-sha256",
                 canonicalization: str = "relaxed/relaxed", headers: Sequence[str] | None = None,
                 expire: int | float | timedelta | None = None) -> None:
        if algorithm not in ALGORITHMS:
            raise DKIMError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
        if not isinstance(canonicalization, str):
            raise DKIMError(f"canonicalization must be a str like 'relaxed/relaxed', got {canonicalization!r}")
        header_mode, _, body_mode = canonicalization.partition("/")
        body_mode = body_mode or "simple"  # RFC 6376 3.5: "c=relaxed" means relaxed/simple
        if header_mode not in MODES or body_mode not in MODES:
            raise DKIMError(f"canonicalization must be relaxed or simple, twice, got {canonicalization!r}")
        self.domain = _domain(domain, "domain")
        self.selector = _domain(selector, "selector")
        self.algorithm = algorithm
        self.header_mode = header_mode
        self.body_mode = body_mode
        self.headers = _header_names(headers)
        self.expire = _expiry(expire)
        self._key = _load_key(private_key, algorithm)
        self._rsa_args = None  # padding and hash of an RSA signature, made once
        if algorithm == "rsa-sha256":
            from cryptography.hazmat.primitives import hashes
            from cryptography.hazmat.primitives.asymmetric import padding

            self._rsa_args = (padding.PKCS1v15(), hashes.SHA256())
            self._check_rsa_key()
        self._sig_len = 4 * ((self._signature_bytes() + 2) // 3)
        self._names = tuple(name.encode("ascii") for name in self.headers)
        self._wanted = frozenset(self._names)
        # after the head: CRLF " bh=" + 44 (base64 of a SHA-256) + ";" CRLF " b=" + the signature folded, CRLF
        self._tail_size = 2 + 4 + 44 + 1 + 2 + 3 + self._sig_len + 3 * (-(-self._sig_len // _SIG_WIDTH) - 1) + 2
        self._folded: dict[tuple[bytes, ...], bytes] = {}  # see _tags()

    def __repr__(self) -> str:
        return (f"Signer(domain={self.domain!r}, selector={self.selector!r}, algorithm={self.algorithm!r}, "
                f"canonicalization='{self.header_mode}/{self.body_mode}')")

    def _tags(self, signed: tuple[bytes, ...]) -> bytes:
        """``DKIM-Signature: v=1; a=...; d=...; s=...; h=...;`` folded, for these signed
        names: the same for every message with the same fields, so folded once."""
        folded = self._folded.get(signed)
        if folded is None:
            if len(self._folded) >= 64:  # heads of many shapes: keep the table small
                self._folded.clear()
            tags = [
                "v=1", f"a={self.algorithm}", f"c={self.header_mode}/{self.body_mode}",
                f"d={self.domain}", f"s={self.selector}", "h=" + b":".join(signed).decode("ascii"),
            ]
            folded = self._folded[signed] = _fold_tags("DKIM-Signature", tags)
        return folded

    def _signature_bytes(self) -> int:
        return self._key.key_size // 8 if self.algorithm == "rsa-sha256" else 64

    def dns_record(self) -> str:
        """The TXT record to publish at ``selector._domainkey.domain``."""
        from cryptography.hazmat.primitives import serialization

        public = self._key.public_key()
        if self.algorithm == "rsa-sha256":
            der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
            return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode()}"

    # -------------------------------------------------------- one message

    def prepare(self, head: bytes, timestamp: int | None = None) -> "PreparedSignature":
        """Fix what the signature covers (the header list, ``t=`` and ``x=``) for
        a message head; the body hash comes later (:meth:`PreparedSignature.finish`)."""
        return PreparedSignature(self, head, int(time.time()) if timestamp is None else timestamp)

    def body_hash(self, chunks: Iterable[bytes]) -> bytes:
        """The body hash (``bh=``, raw) of these body chunks, in this signer's body canonicalisation."""
        return body_hash(chunks, self.body_mode)

    def _check_rsa_key(self) -> None:
        """One signature made and verified with the key's public half: an RSA key whose
        numbers do not agree (loaded without OpenSSL's check, see _load_key) is refused."""
        from cryptography.exceptions import InvalidSignature

        data = b"smtpstream DKIM key check"
        try:
            self._key.public_key().verify(self._sign(data), data, *self._rsa_args)
        except (InvalidSignature, ValueError) as exc:
            raise DKIMError(f"the RSA private key is inconsistent: its signatures do not verify ({exc})") from None

    def _sign(self, data: bytes) -> bytes:
        if self._rsa_args is not None:
            return self._key.sign(data, *self._rsa_args)
        return self._key.sign(hashlib.sha256(data).digest())  # RFC 8463 3: PureEdDSA over the hash


class PreparedSignature:
    """One message's signature in the making: the header's length is known before the body is read."""

    __slots__ = ("signer", "_signed_fields", "_head", "size")

    def __init__(self, signer: Signer, head: bytes, timestamp: int) -> None:
        self.signer = signer
        by_name = _fields(head, signer.header_mode == "relaxed", signer._wanted)
        signed: list[bytes] = []
        chosen: list[bytes] = []
        for name in signer._names:
            stack = by_name.get(name)
            if stack is None:
                continue
            if len(stack) == 1:
                signed.append(name)
                chosen.append(stack[0])
            else:
                signed.extend([name] * len(stack))
                chosen.extend(reversed(stack))  # RFC 6376 5.4.2: several fields of one name, bottom up
        signed.append(b"from")  # once more than there are: no From may be added (RFC 6376 8.15)
        self._signed_fields = b"".join(chosen)
        times = b"t=%d;" % timestamp
        if signer.expire is not None:
            times += b" x=%d;" % (timestamp + signer.expire)
        self._head = signer._tags(tuple(signed)) + b"\r\n " + times
        self.size = len(self._head) + signer._tail_size

    def finish(self, bh: bytes) -> bytes:
        """The complete ``DKIM-Signature`` field (with its CRLF) for this body hash."""
        unsigned = self._head + b"\r\n bh=" + base64.b64encode(bh) + b";\r\n b="
        if self.signer.header_mode == "relaxed":
            own = _relaxed_field(unsigned)[:-2]
        else:
            own = unsigned
        signature = base64.b64encode(self.signer._sign(self._signed_fields + own))
        folded = b"\r\n ".join(signature[i:i + _SIG_WIDTH] for i in range(0, len(signature), _SIG_WIDTH))
        return unsigned + folded + CRLF
