"""``message(mesgt)``: a message table turned into a source of byte chunks.

The table has LuaSocket's shape::

    {"headers": {...}, "body": str | bytes | source | Body | multipart}
    multipart = {"preamble": ..., 1: mesgt, 2: mesgt, ..., "epilogue": ...}
                (or {"parts": [mesgt, ...]} instead of the integer keys)

Everything that can be checked is checked when ``message()`` is called
(header values, names, the tree's shape), so a bad table raises there and not
halfway through a send. Nothing is read or encoded until the source is
iterated, except ``str``/``bytes`` leaves, which are already in memory.

Where LuaSocket is weak this departs from it (README, "Differences"): header
names in canonical case and stable order, RFC 2047 / IDNA / folding, header
injection refused, Bcc never written, random boundaries that cannot occur in
base64 or quoted-printable, the real UTC offset in Date, a Message-ID, a nil
body written as an empty body, CRLF line breaks everywhere.
"""
from __future__ import annotations

import functools
import os
import time
from collections.abc import Container, Iterable, Mapping

from .. import __version__, filters
from .._lazyre import Pattern
from ..defaults import lookup
from . import headers as hdr
from .bodies import MAX_LINE, Body, BytesBody, CachedBody, SourceBody, longest_line

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: typing takes milliseconds to import
    from typing import Any, Iterator

__all__ = ["message", "MessageSource", "MessageError"]

CRLF = b"\r\n"
MAILER = f"smtpstream {__version__}"


class MessageError(ValueError):
    """The message table cannot be turned into a message."""


# ---------------------------------------------------------------- nodes

class _Leaf:
    __slots__ = ("head", "body")

    def __init__(self, head: bytes, body: Body) -> None:
        self.head = head
        self.body = body

    def chunks(self) -> Iterator[bytes]:
        yield self.head
        yield from self.body.chunks()

    def body_chunks(self) -> Iterator[bytes]:
        return self.body.chunks()

    def size(self) -> int | None:
        body = self.body.size()
        return None if body is None else len(self.head) + body

    @property
    def replayable(self) -> bool:
        return self.body.replayable

    @property
    def seven_bit(self) -> bool:
        return self.body.seven_bit  # the head is ASCII: headers.py makes it so

    @property
    def short_lines(self) -> bool:
        return self.body.short_lines  # headers are folded under 998 (headers.py)


class _Multipart:
    __slots__ = ("head", "boundary", "preamble", "parts", "epilogue")

    def __init__(self, head, boundary, preamble, parts, epilogue) -> None:
        self.head = head
        self.boundary = boundary
        self.preamble = preamble
        self.parts = parts
        self.epilogue = epilogue

    # LuaSocket's layout (spec 5.3 item 8, keep): preamble CRLF, then
    # CRLF--b CRLF before each part, CRLF--b-- CRLF CRLF, then epilogue CRLF.
    def chunks(self) -> Iterator[bytes]:
        yield self.head
        yield from self.body_chunks()

    def body_chunks(self) -> Iterator[bytes]:
        if self.preamble is not None:
            yield self.preamble + CRLF
        delimiter = b"\r\n--" + self.boundary + CRLF
        for part in self.parts:
            yield delimiter
            yield from part.chunks()
        yield b"\r\n--" + self.boundary + b"--\r\n\r\n"
        if self.epilogue is not None:
            yield self.epilogue + CRLF

    @property
    def replayable(self) -> bool:
        return all(part.replayable for part in self.parts)

    @property
    def seven_bit(self) -> bool:
        texts = [t for t in (self.preamble, self.epilogue) if t is not None]
        return all(t.isascii() for t in texts) and all(part.seven_bit for part in self.parts)

    @property
    def short_lines(self) -> bool:
        texts = [t for t in (self.preamble, self.epilogue) if t is not None]
        return all(longest_line(t) <= MAX_LINE for t in texts) and all(p.short_lines for p in self.parts)

    def size(self) -> int | None:
        total = len(self.head) + len(self.boundary) * (len(self.parts) + 1)
        total += (len(self.parts) * 6) + 10  # the delimiters' fixed bytes
        if self.preamble is not None:
            total += len(self.preamble) + 2
        if self.epilogue is not None:
            total += len(self.epilogue) + 2
        for part in self.parts:
            size = part.size()
            if size is None:
                return None
            total += size
        return total


class SharedBody:
    """A message body built once and used by many messages: see :func:`shared`."""

    __slots__ = ("node", "body_hashes", "seven_bit", "short_lines", "replayable")

    def __init__(self, node) -> None:
        self.node = node
        #: DKIM body hashes by canonicalisation: the body's bytes never change,
        #: so a campaign hashes them once however many messages are signed.
        self.body_hashes: dict[str, bytes] = {}
        # Read by the sender for every message; fixed, as the bytes are (its one-shot
        # parts were spilled to files before this is made).
        self.seven_bit: bool = node.seven_bit
        self.short_lines: bool = node.short_lines
        self.replayable: bool = node.replayable


class _SharedRoot:
    """A message's own head in front of a :class:`SharedBody`."""

    __slots__ = ("head", "shared")

    def __init__(self, head: bytes, shared: SharedBody) -> None:
        self.head = head
        self.shared = shared

    def chunks(self) -> Iterator[bytes]:
        yield self.head
        yield from self.shared.node.body_chunks()

    def body_chunks(self) -> Iterator[bytes]:
        return self.shared.node.body_chunks()

    def size(self) -> int | None:
        size = self.shared.node.size()
        return None if size is None else size - len(self.shared.node.head) + len(self.head)

    @property
    def body_hashes(self) -> dict[str, bytes]:
        return self.shared.body_hashes

    @property
    def replayable(self) -> bool:
        return self.shared.replayable

    @property
    def seven_bit(self) -> bool:
        return self.shared.seven_bit

    @property
    def short_lines(self) -> bool:
        return self.shared.short_lines  # our own head is folded like any other


class MessageSource:
    """The message as a source: iterate it for its chunks (once).

    ``size`` is the exact length of what iteration produces, known without
    producing it when every part has a known length (strings, files), else
    ``None``. ``sender`` and ``recipients`` are the envelope the headers
    describe (From; To, Cc and Bcc): the Bcc addresses are here but never in
    the message. Calling the object returns the next chunk or ``None`` at the
    end, like a LuaSocket source.
    """

    def __init__(self, root, sender: str | None, recipients: list[str], message_id: str | None):
        self._root = root
        self._chunks: Iterator[bytes] | None = None
        self.sender = sender
        self.recipients = recipients
        self.message_id = message_id
        self._dkim: Any = None  # a dkim.PreparedSignature, see with_dkim()
        self._dkim_field: bytes | None = None
        self._signed: tuple[Any, MessageSource] | None = None  # (signer, the signed copy)

    @property
    def size(self) -> int | None:
        size = self._root.size()
        if size is None or self._dkim is None:
            return size
        return size + self._dkim.size

    @property
    def signed(self) -> bool:
        """True when a DKIM-Signature is written in front of the message."""
        return self._dkim is not None

    def with_dkim(self, signer: Any) -> MessageSource:
        """This message signed by ``signer`` (a :class:`smtpstream.dkim.Signer`), as a new source.

        The body is hashed when the message is first read, in a first pass
        over its parts, and the ``DKIM-Signature`` field is written before
        the rest on the second. A part read from a one-shot source is spilled
        to a temporary file on the way (never held in memory), so the
        message can be read twice. ``size`` stays exact. Asked again with the
        same signer (a resend), it returns the same copy, rewound: the same
        bytes, signature included.
        """
        if not hasattr(signer, "prepare"):
            raise TypeError(f"dkim must be a smtpstream.dkim.Signer, got {type(signer).__name__}")
        if self._signed is not None and self._signed[0] is signer:
            signed = self._signed[1]
            if signed.started:
                signed.rewind()
            return signed
        if self._dkim is not None:
            raise ValueError("this message is signed already")
        if self.started:
            raise ValueError("this message was read already: sign it before sending it")
        _spill_one_shot(self._root)
        signed = MessageSource(self._root, self.sender, list(self.recipients), self.message_id)
        signed._dkim = signer.prepare(self._root.head)
        self._signed = (signer, signed)
        return signed

    @property
    def started(self) -> bool:
        """True once iteration has begun (see :meth:`rewind`)."""
        return self._chunks is not None

    @property
    def replayable(self) -> bool:
        """True when :meth:`rewind` can start the message over: every part is bytes,
        a file given by its path or a cached part (not a one-shot source)."""
        return self._root.replayable

    @property
    def seven_bit(self) -> bool:
        """True when every byte of the message is known to be ASCII (no BODY=8BITMIME needed)."""
        return self._root.seven_bit

    @property
    def short_lines(self) -> bool:
        """True when no line can exceed RFC 5321's limit (every part encoded here):
        the sender then skips its line check."""
        return self._root.short_lines

    def rewind(self) -> None:
        """Start over: the next chunk is the message's first again, the same bytes
        (Date, Message-ID and boundaries were fixed when it was built).

        ``ValueError`` when a part is a one-shot source (see :attr:`replayable`).
        """
        if not self.replayable:
            raise ValueError("this message has a part read from a one-shot source: build it again to resend it")
        if self._chunks is not None:
            self._chunks.close()  # releases a file the first reading left open
        self._chunks = None

    def __iter__(self) -> MessageSource:
        return self

    def __next__(self) -> bytes:
        if self._chunks is None:
            self._chunks = self._root.chunks() if self._dkim is None else self._signed_chunks()
        return next(self._chunks)

    def _signed_chunks(self) -> Iterator[bytes]:
        if self._dkim_field is None:  # once: a rewound message keeps its signature
            signer = self._dkim.signer
            known = getattr(self._root, "body_hashes", {})  # a SharedBody's, for all its messages
            body_hash = known.get(signer.body_mode)
            if body_hash is None:
                chunks = self._root.body_chunks()  # the head is covered by the header hash
                try:
                    body_hash = known[signer.body_mode] = signer.body_hash(chunks)
                finally:
                    chunks.close()
            self._dkim_field = self._dkim.finish(body_hash)
        yield self._dkim_field + self._root.head  # one chunk, as the unsigned head is: one write less
        yield from self._root.body_chunks()

    def __call__(self) -> bytes | None:
        return next(self, None)


# ---------------------------------------------------------------- headers

def _lower_headers(table: Any, where: str) -> dict[str, Any]:
    if table is None:
        return {}
    if type(table) is not dict and not isinstance(table, Mapping):  # the ABC check costs a call
        raise MessageError(f"{where}: headers must be a mapping, got {type(table).__name__}")
    out: dict[str, Any] = {}
    for name, value in table.items():
        if not isinstance(name, str):
            raise MessageError(f"{where}: header names must be str, got {name!r}")
        if not name.isascii():  # str.lower() would make the Kelvin sign a "k"
            raise MessageError(f"{where}: header name {name!r} is not ASCII")
        key = name.lower()
        if key in out:
            # LuaSocket keeps one of them at random (spec 5.3 item 9).
            raise MessageError(f"{where}: header {name!r} is given twice (names are case-insensitive)")
        out[key] = value
    return out


def _head(defaults: list[tuple[str, Any]], given: dict[str, Any]) -> bytes:
    lines = [_field(name, value) for name, value in defaults]
    lines += [_field(name, value) for name, value in given.items()]
    lines.append(CRLF)
    return b"".join(lines)


def _field(name: str, value: Any) -> bytes:
    """One header field; a Message-ID, new in every message, without the bounded
    cache (which it would only churn)."""
    return hdr.format_new_header(name, value) if name == "message-id" else hdr.format_header(name, value)


def _content_type(value: Any) -> tuple[str, str]:
    """The lower-case main type and subtype of a Content-Type value."""
    text = str(value).split(";", 1)[0].strip().lower()
    main, _, sub = text.partition("/")
    return main, sub


# boundary=, and its RFC 2231 forms boundary*=, boundary*0=, boundary*0*=
_BOUNDARY_PARAM = Pattern(r'(?i);\s*boundary(?:\*\d*\*?)?\s*=\s*(?:"(?:[^"\\]|\\.)*"|[^;]*)')


def _new_boundary() -> bytes:
    # "=_" cannot occur in quoted-printable ("=" is followed by hex or CRLF)
    # nor in base64 ("_" is outside its alphabet); 128 random bits do the rest.
    return b"=_" + os.urandom(16).hex().encode()  # as secrets.token_hex, without importing hmac


# ---------------------------------------------------------------- bodies

def _as_bytes(data: Any, what: str) -> bytes:
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise MessageError(f"{what} must be str or bytes, got {type(data).__name__}")


def _crlf(data: bytes) -> bytes:
    normalizer = filters.EOLNormalizer()
    return normalizer(data) + normalizer(None)


def _quoted_printable(data: bytes) -> bytes:
    encoder, wrapper = filters.QPEncoder(), filters.QPWrapper()
    return wrapper(encoder(data)) + wrapper(encoder(None)) + wrapper(None)


def _base64(data: bytes) -> bytes:
    encoder = filters.Base64WrapEncoder(76)
    return encoder(data) + encoder(None)


def encode_text(data: bytes) -> tuple[str, bytes]:
    """Choose 7bit, quoted-printable or base64 for text; return it and the body.

    Line breaks become CRLF. Plain ASCII with lines of at most 998 octets
    stays 7bit; otherwise the shorter of quoted-printable and base64 wins.
    """
    if len(data) <= _CACHED_TEXT:
        return _encode_short_text(bytes(data))
    return _encode_text(data)


_CACHED_TEXT = 16 << 10  # bulk sends repeat the same short text; results are immutable bytes


@functools.lru_cache(maxsize=256)
def _encode_short_text(data: bytes) -> tuple[str, bytes]:
    return _encode_text(data)


def _encode_text(data: bytes) -> tuple[str, bytes]:
    data = _crlf(data)
    if data.isascii() and b"\0" not in data and longest_line(data) <= MAX_LINE:
        return "7bit", _marked(data)
    qp = _quoted_printable(data)
    b64 = _base64(data)
    return ("quoted-printable", _marked(qp)) if len(qp) <= len(b64) else ("base64", _marked(b64))


def _marked(encoded: bytes) -> bytes:
    """The encoded text as :class:`~smtpstream.filters.StuffedLines` when it is so:
    the sender then need not dot-stuff it (it checks the promise, far cheaper)."""
    return filters.StuffedLines(encoded) if filters.stuffed_lines_only(encoded) else encoded


def _leaf_body(body: Any, given: dict[str, Any], where: str) -> tuple[list[tuple[str, Any]], Body]:
    """The defaults this leaf needs and its body object."""
    defaults: list[tuple[str, Any]] = []
    cte = given.get("content-transfer-encoding")
    if body is None:
        body = b""  # LuaSocket ends the whole message here (spec 5.3 item 1, fix)
    if isinstance(body, Body):
        if "content-type" not in given:
            defaults.append(("content-type", "application/octet-stream"))
        return defaults, body
    if isinstance(body, (str, bytes, bytearray, memoryview)):
        data = _as_bytes(body, f"{where}: body")
        if "content-type" in given:
            is_text = _content_type(given["content-type"])[0] == "text"
        else:
            is_text = isinstance(body, str) or _is_utf8(data)
            charset = "us-ascii" if data.isascii() else "utf-8"
            ctype = f'text/plain; charset="{charset}"' if is_text else "application/octet-stream"
            defaults.append(("content-type", ctype))
        if cte is not None:
            # The caller chose the encoding, so the body is already encoded.
            binary = str(cte).strip().lower() == "binary"
            return defaults, BytesBody(data if binary else _crlf(data))
        if is_text:
            chosen, encoded = encode_text(data)
        else:
            chosen, encoded = "base64", _base64(data)
        defaults.append(("content-transfer-encoding", chosen))
        return defaults, BytesBody(encoded, short_lines=True)  # encode_text and _base64 keep lines short
    if isinstance(body, (tuple, list)):
        _check_chunks(body, where)
    if isinstance(body, Iterable) or callable(body):
        if "content-type" not in given:
            defaults.append(("content-type", 'text/plain; charset="utf-8"'))
        binary = cte is not None and str(cte).strip().lower() == "binary"
        return defaults, SourceBody(body, normalize=not binary)
    raise MessageError(
        f"{where}: body must be str, bytes, a source, a Body or a multipart mapping,"
        f" got {type(body).__name__}"
    )


def _check_chunks(body: tuple | list, where: str) -> None:
    """A body given as a list or tuple of chunks holds only chunks: checked now, not after DATA."""
    for index, item in enumerate(body):
        if isinstance(item, (bytes, bytearray, memoryview)):
            continue
        if isinstance(body, tuple):
            # Lua keeps the first of a function's results (body = mime.eol(0, text));
            # Python gets both as a tuple.
            kinds = ", ".join(type(x).__name__ for x in body)
            raise MessageError(
                f"{where}: body is a tuple ({kinds}): a low-level mime function returns two"
                " results (bytes, context); take the first, as in body = mime.eol(...)[0]"
            )
        raise MessageError(f"{where}: body item {index} is {type(item).__name__}, not a bytes chunk")


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# ---------------------------------------------------------------- the tree

def _parts_of(body: Mapping, where: str) -> list[Any]:
    if "parts" in body:
        parts = body["parts"]
        if isinstance(parts, (str, bytes)) or not isinstance(parts, Iterable):
            raise MessageError(f"{where}: 'parts' must be a list of parts")
        parts = list(parts)
        if any(isinstance(k, int) for k in body):
            raise MessageError(f"{where}: give parts as 'parts' or as 1..n keys, not both")
        return parts
    numbered = sorted(k for k in body if isinstance(k, int) and not isinstance(k, bool))
    if numbered != list(range(1, len(numbered) + 1)):
        raise MessageError(f"{where}: parts must be numbered 1..n without holes, got {numbered}")
    unknown = [k for k in body if not isinstance(k, int) and k not in ("preamble", "epilogue")]
    if unknown:
        raise MessageError(f"{where}: unknown multipart keys {unknown}")
    return [body[k] for k in numbered]


_TABLE_KEYS = frozenset({"headers", "body", "zone"})


def _build(mesgt: Any, defaults: list[tuple[str, Any]], where: str, given: dict[str, Any] | None = None):
    """A part's node; ``given``: its headers already checked and lowered (message()'s own copy)."""
    if type(mesgt) is not dict and not isinstance(mesgt, Mapping):
        raise MessageError(f"{where}: a part must be a mapping with 'headers' and 'body'")
    if not mesgt.keys() <= _TABLE_KEYS:
        raise MessageError(f"{where}: unknown keys {sorted(map(str, set(mesgt) - _TABLE_KEYS))}")
    if given is None:
        given = _lower_headers(mesgt.get("headers"), where)
    body = mesgt.get("body")
    if isinstance(body, Mapping):
        parts = _parts_of(body, where)
        if not parts:
            raise MessageError(f"{where}: a multipart needs at least one part (RFC 2046 5.1.1)")
        boundary = _new_boundary()
        ctype = given.pop("content-type", "multipart/mixed")
        if _content_type(ctype)[0] != "multipart":
            raise MessageError(f"{where}: a body with parts needs a multipart/* Content-Type, got {ctype!r}")
        # A second boundary parameter would be ambiguous (spec 5.3 item 7): ours replaces it.
        ctype = _BOUNDARY_PARAM.sub("", str(ctype)).rstrip() + f'; boundary="{boundary.decode()}"'
        head = _head(defaults + [("content-type", ctype)], given)
        children = [_build(part, [], f"{where} part {i}") for i, part in enumerate(parts, 1)]
        return _Multipart(
            head,
            boundary,
            _optional_text(body.get("preamble"), f"{where}: preamble"),
            children,
            _optional_text(body.get("epilogue"), f"{where}: epilogue"),
        )
    leaf_defaults, body_obj = _leaf_body(body, given, where)
    return _Leaf(_head(defaults + leaf_defaults, given), body_obj)


def _optional_text(value: Any, what: str) -> bytes | None:
    if value is None:
        return None
    return _crlf(_as_bytes(value, what))


_ZONE = Pattern(r"([+-])([01][0-9]|2[0-3])([0-5][0-9])")


def _date(zone: Any) -> str:
    """Now, in ``zone`` (``mesgt["zone"]``, else ``smtp.ZONE``), or local time with its offset.

    LuaSocket prints UTC time followed by the zone, which is wrong for any zone
    but -0000/+0000 (spec 5.3 item 4, fix): here the time is converted to it.
    ``-0000`` is UTC with no claim about the local zone (RFC 5322 3.3).
    The text of the last second and zone is kept: a bulk job writes the same
    Date for every message of a second.
    """
    global _last_date
    if zone is None:
        zone = lookup("ZONE")
    second = int(time.time())
    key = (second, zone)
    last = _last_date
    if last[0] == key:
        return last[1]
    from datetime import datetime, timedelta, timezone  # here: once a second at most, and not at import

    now = datetime.fromtimestamp(second, timezone.utc)
    if zone is None:
        text = _rfc5322_date(now.astimezone())
    else:
        match = _ZONE.fullmatch(zone) if isinstance(zone, str) else None
        if match is None:
            raise MessageError(f"message: zone must be +hhmm or -hhmm (RFC 5322 3.3), got {zone!r}")
        if zone == "-0000":
            text = _rfc5322_date(now, "-0000")
        else:
            sign = 1 if match[1] == "+" else -1
            offset = timedelta(hours=int(match[2]), minutes=int(match[3]))
            text = _rfc5322_date(now.astimezone(timezone(sign * offset)))
    _last_date = (key, text)  # one reference swapped: threads read a matching pair
    return text


_last_date: tuple[Any, str] = (None, "")


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _rfc5322_date(when: datetime, zone: str | None = None) -> str:
    """RFC 5322 3.3's date-time, English names whatever the locale: ``Tue, 01 Dec 2026 18:00:00 +0100``.

    Written here rather than with ``email.utils.format_datetime`` (the same
    text) so that building a message does not import the email package.
    """
    return (f"{_DAYS[when.weekday()]}, {when.day:02d} {_MONTHS[when.month - 1]} {when.year:04d} "
            f"{when.hour:02d}:{when.minute:02d}:{when.second:02d} {zone or _offset(when)}")


def _offset(when: datetime) -> str:
    """``+hhmm``/``-hhmm`` of an aware time (what ``strftime("%z")`` gives, at a tenth of its cost)."""
    minutes = round(when.utcoffset().total_seconds()) // 60  # type: ignore[union-attr]
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"


def _message_id_domain(sender: str | None) -> str:
    if sender and "@" in sender:
        return sender.rsplit("@", 1)[1]
    import socket  # here: a transport imports it anyway, a message alone seldom needs it

    host = socket.gethostname()  # no DNS lookup: just the kernel's name
    return host if "." in host else "localhost.localdomain"


def message(mesgt: Mapping[Any, Any], *, dkim: Any = None, unsubscribe: Any = None) -> MessageSource:
    """Turn a message table into a source of the message's bytes (see module doc).

    The top level gets ``Date`` (now, with the real UTC offset),
    ``Message-ID``, ``MIME-Version: 1.0`` and ``X-Mailer`` unless given
    (MIME-Version is always 1.0). A ``Bcc`` header is never written: its
    addresses are in ``.recipients`` for the envelope only.

    ``unsubscribe``: an https URL and/or a mailto URI (a str or a list)
    written as ``List-Unsubscribe`` (RFC 2369), with
    ``List-Unsubscribe-Post: List-Unsubscribe=One-Click`` when there is an
    https URL (RFC 8058). ``dkim``: a :class:`smtpstream.dkim.Signer`; the
    message is signed (see :meth:`MessageSource.with_dkim`).
    """
    if type(mesgt) is not dict and not isinstance(mesgt, Mapping):
        raise MessageError(f"message() needs a mapping, got {type(mesgt).__name__}")
    given = _lower_headers(mesgt.get("headers"), "message")
    if unsubscribe is not None:
        given.update(unsubscribe_headers(unsubscribe, given))
    body = mesgt.get("body")
    if isinstance(body, SharedBody):
        unknown = set(mesgt) - {"headers", "body"}
        if unknown:
            raise MessageError(f"message: unknown keys {sorted(map(str, unknown))}")
        return _shared_message(given, body, None, {}, dkim, "message")
    bcc, sender, recipients = _envelope_of(given)
    defaults, message_id = _top_defaults(given, mesgt.get("zone"), sender)
    table = dict(mesgt)
    table["headers"] = given  # a copy: the caller's table is never changed (spec 5.3 item 9)
    root = _build(table, defaults, "message", given)
    if isinstance(root, _Leaf):
        # In a multipart the delimiter's CRLF ends a part's last line; a
        # single-part message must end its last line itself.
        root.body = _terminated(root.body)
    source = MessageSource(root, sender, recipients, str(message_id))
    return source if dkim is None else source.with_dkim(dkim)


def _envelope_of(given: dict[str, Any]) -> tuple[Any, str | None, list[str]]:
    """Take Bcc (never written) and MIME-Version (always ours) out of ``given``;
    return the Bcc value and the envelope its From, To, Cc and Bcc describe."""
    bcc = given.pop("bcc", None)
    given.pop("mime-version", None)
    sender = None
    if "from" in given:
        found = hdr.addresses(str(given["from"]))
        sender = found[0] if found else None
    recipients: list[str] = []
    for value in (given.get("to"), given.get("cc"), bcc):
        if value is not None:
            recipients.extend(hdr.addresses(str(value)))
    return bcc, sender, recipients


def _top_defaults(given: dict[str, Any], zone: Any, sender: str | None) -> tuple[list[tuple[str, Any]], Any]:
    """The top level's fields written unless given (Date, Message-ID, MIME-Version,
    X-Mailer), in order, and the message's Message-ID."""
    defaults: list[tuple[str, Any]] = []
    if "date" not in given:
        defaults.append(("date", _date(zone)))
    message_id = given.get("message-id")
    if message_id is None:
        message_id = f"<{os.urandom(16).hex()}@{_message_id_domain(sender)}>"
        defaults.append(("message-id", message_id))
    defaults.append(("mime-version", "1.0"))
    if "x-mailer" not in given:
        defaults.append(("x-mailer", MAILER))
    return defaults, message_id


def _shared_message(given: dict[str, Any], body: SharedBody, zone: Any, lines: Mapping[str, bytes],
                    dkim: Any, where: str, fresh: Container[str] = ()) -> MessageSource:
    """A message of a shared body: our fields, the body's, the empty line.

    ``lines``: fields already formatted (a template's), used for every header
    of ``given`` they have and ``fresh`` does not name (those are new values:
    formatted without the bounded cache, which they would only churn)."""
    for name in ("content-type", "content-transfer-encoding"):
        if name in given:
            raise MessageError(f"{where}: a shared body brings its own {name}: do not give it")
    bcc, sender, recipients = _envelope_of(given)
    defaults, message_id = _top_defaults(given, zone, sender)
    out = [_field(name, value) for name, value in defaults]
    for name, value in given.items():
        line = None if name in fresh else lines.get(name)
        if line is None:
            line = hdr.format_new_header(name, value) if name in fresh else _field(name, value)
        out.append(line)
    out.append(body.node.head)
    source = MessageSource(_SharedRoot(b"".join(out), body), sender, recipients, str(message_id))
    return source if dkim is None else source.with_dkim(dkim)


def unsubscribe_headers(uris: Any, given: Mapping[str, Any] = {}) -> dict[str, str]:
    """The List-Unsubscribe (and List-Unsubscribe-Post) headers for these URIs (see ``message``)."""
    if isinstance(uris, str):
        uris = [uris]
    uris = list(uris)
    if not uris:
        raise MessageError("unsubscribe: give an https URL and/or a mailto URI")
    for name in ("list-unsubscribe", "list-unsubscribe-post"):
        if name in given:
            raise MessageError(f"unsubscribe= writes {name}: do not give that header too")
    for uri in uris:
        if not isinstance(uri, str):
            raise MessageError(f"unsubscribe: URIs must be str, got {type(uri).__name__}")
        scheme = uri.split(":", 1)[0].lower()
        if scheme not in ("https", "mailto") or not uri.isascii() or _NOT_IN_URI.search(uri):
            raise MessageError(
                f"unsubscribe: {uri!r} is not an https URL or a mailto URI (ASCII, no spaces, '<', '>' or ',')"
            )
        if scheme == "https" and not uri[6:].startswith("//"):
            raise MessageError(f"unsubscribe: {uri!r} is not an https URL")
    out = {"list-unsubscribe": ", ".join(f"<{uri}>" for uri in uris)}
    if any(uri.lower().startswith("https:") for uri in uris):
        out["list-unsubscribe-post"] = "List-Unsubscribe=One-Click"  # RFC 8058 3.1
    return out


_NOT_IN_URI = Pattern(r"[\s<>,\x00-\x1f\x7f]")


def shared(body: Any) -> SharedBody:
    """A body (a str, bytes, a part's body or a multipart mapping, as in a
    message table, or a whole part such as ``text(...)`` or
    ``alternative(...)``, which brings its own Content-* fields) built once for many messages: ``message({"headers": ...,
    "body": shared_body})``. Every message then has the same body bytes,
    boundaries included, and a DKIM signer hashes them once for all (each
    message costs one header hash and one signature). Parts from one-shot
    sources are spilled to a temporary file at the first reading.
    """
    if isinstance(body, SharedBody):
        return body
    # A whole part (text(...), alternative(...)): its own Content-* fields come with it.
    # No multipart mapping has these keys (parts are numbered or under "parts").
    is_part = isinstance(body, Mapping) and bool(body) and set(body) <= {"headers", "body"}
    node = _build(body if is_part else {"body": body}, [], "shared body")
    if isinstance(node, _Leaf):
        node.body = _terminated(node.body)
    _spill_one_shot(node)
    return SharedBody(node)


def _spill_one_shot(node) -> None:
    """Make every part read from a one-shot source replayable through a temporary file."""
    if isinstance(node, _SharedRoot):
        return  # spilled when it was made shared
    if isinstance(node, _Multipart):
        for part in node.parts:
            _spill_one_shot(part)
    elif not node.body.replayable:
        node.body = CachedBody(node.body, threshold=0)  # 0: always a file, never memory


def _terminated(body: Body) -> Body:
    if isinstance(body, BytesBody):
        return body.terminated()
    if isinstance(body, SourceBody):
        return _CRLFTerminated(body)
    return body  # base64 bodies end with CRLF already


class _CRLFTerminated(Body):
    """A source body whose last line gets a CRLF if it lacks one."""

    def __init__(self, inner: Body) -> None:
        self._inner = inner

    @property
    def replayable(self) -> bool:
        return self._inner.replayable

    @property
    def seven_bit(self) -> bool:
        return self._inner.seven_bit

    @property
    def short_lines(self) -> bool:
        return self._inner.short_lines

    def chunks(self) -> Iterator[bytes]:
        last = b""
        for chunk in self._inner.chunks():
            last = chunk
            yield chunk
        if last and not last.endswith(CRLF):
            yield CRLF
