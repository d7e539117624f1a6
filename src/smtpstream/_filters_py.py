"""Pure-Python twin of the compiled filters: the reference implementation.

Same classes, arguments, attributes, outputs and errors as ``smtpstream._filters``
(see ``docs/filters.md``); the behaviour is LuaSocket 3's ``mime.c``. Every
filter works on whole chunks with ``bytes`` built-ins, ``binascii`` and ``re``,
carrying its state as a short remainder; no loop runs per byte.
"""
from __future__ import annotations

import binascii
import re

__all__ = [
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
    "crlf_lines_only",
    "stuffed_lines_only",
    "dkim_canonical",
]

CRLF = b"\r\n"
CR = 13
LF = 10


def _as_bytes(owner: object, chunk: object) -> bytes:
    """Return ``chunk`` as bytes, or raise the contract's TypeError."""
    if type(chunk) is bytes:
        return chunk  # type: ignore[return-value]
    if isinstance(chunk, str) or not isinstance(chunk, (bytearray, memoryview)):
        try:
            view = memoryview(chunk)  # type: ignore[arg-type]
        except TypeError:
            raise TypeError(
                f"{type(owner).__name__} needs a bytes-like chunk or None, "
                f"got {type(chunk).__name__}"
            ) from None
        return view.tobytes()
    return bytes(chunk)


def _check_length(length: object, minimum: int, what: str) -> int:
    if isinstance(length, bool) or not isinstance(length, int):
        raise TypeError(f"{what} length must be an int, got {type(length).__name__}")
    if length < minimum:
        raise ValueError(f"{what} length must be at least {minimum}, got {length}")
    return length


def _check_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    return value


def _check_marker(marker: object) -> bytes:
    if isinstance(marker, str):
        raise TypeError("marker must be bytes, got str")
    try:
        return bytes(memoryview(marker))  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"marker must be bytes, got {type(marker).__name__}") from None


class _Filter:
    """The chunk protocol shared by every filter: data, then one ``None``."""

    __slots__ = ("_finished",)

    def __init__(self) -> None:
        self._finished = False

    @property
    def finished(self) -> bool:
        """True once the filter has been flushed with ``None``."""
        return self._finished

    def __call__(self, chunk: bytes | bytearray | memoryview | None) -> bytes:
        if self._finished:
            raise ValueError(
                f"{type(self).__name__} was already flushed: called after end of input"
            )
        if chunk is None:
            self._finished = True
            return self._flush()
        return self._feed(_as_bytes(self, chunk))

    def _feed(self, data: bytes) -> bytes:  # pragma: no cover - abstract
        raise NotImplementedError

    def _flush(self) -> bytes:
        return b""


# --------------------------------------------------------------------------
# Base64

class Base64Encoder(_Filter):
    """Base64 without line breaks (LuaSocket ``b64``); pads at the end."""

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        super().__init__()
        self._pending = b""

    @property
    def pending(self) -> bytes:
        """The 0-2 input bytes that do not make a full 3-byte group yet."""
        return self._pending

    def _feed(self, data: bytes) -> bytes:
        if self._pending:
            data = self._pending + data
        cut = len(data) - len(data) % 3
        self._pending = data[cut:]
        return binascii.b2a_base64(data[:cut], newline=False) if cut else b""

    def _flush(self) -> bytes:
        rest, self._pending = self._pending, b""
        return binascii.b2a_base64(rest, newline=False) if rest else b""


_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_NOT_VALID = bytes(b for b in range(256) if b not in _B64_ALPHABET + b"=")
_B64_PAD_AS_ZERO = bytes.maketrans(b"=", b"A")


class Base64Decoder(_Filter):
    """Base64 decoding as LuaSocket's ``unb64`` does it.

    Bytes outside the alphabet are skipped; ``=`` counts as the digit 0 and only
    shortens a group's output when it is the group's 3rd (1 byte out) or 4th
    (2 bytes out) character; decoding carries on after padding. An incomplete
    final group is dropped.
    """

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        super().__init__()
        self._pending = b""

    @property
    def pending(self) -> bytes:
        """The 0-3 valid characters of the incomplete group."""
        return self._pending

    def _feed(self, data: bytes) -> bytes:
        data = self._pending + data.translate(None, _B64_NOT_VALID)
        cut = len(data) - len(data) % 4
        self._pending = data[cut:]
        if not cut:
            return b""
        groups = data[:cut]
        if b"=" not in groups:
            return binascii.a2b_base64(groups)
        decoded = binascii.a2b_base64(groups.translate(_B64_PAD_AS_ZERO))
        return _trim_padded_groups(groups, decoded)

    def _flush(self) -> bytes:
        self._pending = b""
        return b""


def _trim_padded_groups(groups: bytes, decoded: bytes) -> bytes:
    """Shorten the output of each group whose 3rd or 4th character is ``=``."""
    pieces = []
    start = 0  # next decoded byte not yet copied
    at = groups.find(b"=")
    while at >= 0:
        group = at // 4
        position = at % 4
        if position >= 2:
            keep = 1 if groups[group * 4 + 2] == 0x3D else 2
            pieces.append(decoded[start : group * 3 + keep])
            start = group * 3 + 3
            at = groups.find(b"=", group * 4 + 4)
        else:
            # '=' in the first two places counts as a zero digit; look further in the group
            at = groups.find(b"=", at + 1)
    pieces.append(decoded[start:])
    return b"".join(pieces)


# --------------------------------------------------------------------------
# Quoted-printable

# Bytes that are always written as =XX, except CR and LF, which the encoder
# resolves separately (they may form the CRLF line break).
_QP_QUOTED_RUN = re.compile(rb"([\x00-\x08\x0b\x0c\x0e-\x1f=\x7f-\xff]+)")
_QP_PLAIN = frozenset(range(33, 61)) | frozenset(range(62, 127))
# Quoted runs repeat (an accented letter, "="), so their escapes are cached.
_QP_RUN_CACHE: dict[bytes, bytes] = {}
_QP_RUN_CACHE_MAX = 4096


def _quote_runs(text: bytes) -> bytes:
    parts = _QP_QUOTED_RUN.split(text)
    if len(parts) == 1:
        return text
    cache = _QP_RUN_CACHE
    runs = parts[1::2]
    quoted = [cache.get(run) for run in runs]
    for i, escape in enumerate(quoted):
        if escape is None:
            run = runs[i]
            escape = quoted[i] = b"=" + binascii.hexlify(run, b"=").upper()
            if len(run) <= 8 and len(cache) < _QP_RUN_CACHE_MAX:
                cache[run] = escape
    parts[1::2] = quoted
    return b"".join(parts)


def _qp_quote_all(data: bytes) -> bytes:
    """=XX for every byte that is not plain (the end-of-input rule)."""
    return b"".join(
        bytes([b]) if b in _QP_PLAIN else b"=%02X" % b for b in data
    )


class QPEncoder(_Filter):
    """Quoted-printable encoding as LuaSocket's ``qp``.

    CRLF becomes ``marker`` (CRLF in text mode, ``=0D=0A`` in binary mode); the
    last SPACE or TAB before a CRLF is quoted; lone CR and LF are quoted. No
    line length limit: that is :class:`QPWrapper`'s job.
    """

    __slots__ = ("_pending", "_marker")

    def __init__(self, marker: bytes = CRLF) -> None:
        super().__init__()
        self._marker = _check_marker(marker)
        self._pending = b""

    @property
    def pending(self) -> bytes:
        """The unresolved tail: a CR, a SPACE/TAB, or a SPACE/TAB and one more byte."""
        return self._pending

    def _feed(self, data: bytes) -> bytes:
        if self._pending:
            data = self._pending + data
        # The tail that still needs look-ahead: a SPACE or TAB waits for two
        # more bytes (is CRLF next?), a CR for one (is LF next?).
        cut = len(data)
        if cut >= 2 and data[cut - 2] in (9, 32):
            cut -= 2
        elif cut and data[cut - 1] in (9, 32, CR):
            cut -= 1
        self._pending = data[cut:]
        return self._encode(data[:cut]) if cut else b""

    def _encode(self, text: bytes) -> bytes:
        text = _quote_runs(text)
        if b"\r" in text or b"\n" in text:
            # NUL was quoted above, so it can stand for a CRLF line break here.
            text = text.replace(b"\r\n", b"\x00")
            text = text.replace(b" \x00", b"=20\x00").replace(b"\t\x00", b"=09\x00")
            text = text.replace(b"\r", b"=0D").replace(b"\n", b"=0A")
            text = text.replace(b"\x00", self._marker)
        return text

    def _flush(self) -> bytes:
        rest, self._pending = self._pending, b""
        if not rest:
            return b""
        return _qp_quote_all(rest) + b"=\r\n"


_QP_DECODE_TOKEN = re.compile(
    rb"=(?:\r\n|([0-9A-Fa-f]{2})|[\s\S]{2})"  # soft break, escape, or bad escape
    rb"|\r\n"
    rb"|\r[\s\S]"  # lone CR: dropped together with the next byte
    rb"|[^\t\x20-\x7e\r]+"  # bytes the decoder drops
    rb"|(=[\s\S]?|\r)\Z"  # unfinished at the end of the data: kept for later
)


class QPDecoder(_Filter):
    """Quoted-printable decoding as LuaSocket's ``unqp``.

    Soft breaks ``=CRLF`` vanish, ``=XX`` (either case) decodes, any other
    ``=`` sequence is copied as its three bytes; CRLF is kept, a lone CR is
    dropped with the byte after it, and bytes other than TAB and 32-126 are
    dropped. An unfinished escape at the very end is dropped.
    """

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        super().__init__()
        self._pending = b""

    @property
    def pending(self) -> bytes:
        """The unfinished tail: ``=``, ``=X`` or CR."""
        return self._pending

    def _feed(self, data: bytes) -> bytes:
        if self._pending:
            data = self._pending + data
        self._pending = b""
        return _QP_DECODE_TOKEN.sub(self._token, data)

    def _token(self, match: re.Match[bytes]) -> bytes:
        token = match.group()
        first = token[0]
        if first == 0x3D:  # '='
            if match.group(1) is not None:
                return binascii.unhexlify(match.group(1))
            if match.group(2) is not None:
                self._pending = token
                return b""
            return b"" if token == b"=\r\n" else token
        if first == CR:
            if match.group(2) is not None:
                self._pending = token
                return b""
            return CRLF if token == CRLF else b""
        return b""

    def _flush(self) -> bytes:
        self._pending = b""
        return b""


# --------------------------------------------------------------------------
# Line wrapping

#: The compiled twin keeps ``left`` and ``length`` in a C long long: ints beyond
#: it are clamped, and reported as given until a byte moves ``left``. Done the
#: same way here, so that both report the same ``left`` for any input.
LEFT_MAX = (1 << 63) - 1


def _clamp(value: int) -> int:
    return LEFT_MAX if value > LEFT_MAX else -LEFT_MAX if value < -LEFT_MAX else value


class _Wrapper(_Filter):
    """What LineWrapper and QPWrapper share: ``length``, ``left``, the line split and the flush."""

    __slots__ = ("_length", "_left", "_length_given", "_left_given")
    _SOFT_BREAK = CRLF

    def _setup(self, length: object, left: object, minimum: int, what: str) -> None:
        given = _check_length(length, minimum, what)
        self._length = _clamp(given)
        self._length_given = given if self._length != given else None
        if left is None:
            self._left, self._left_given = self._length, self._length_given
        else:
            given_left = _check_int(left, "left")
            self._left = _clamp(given_left)
            self._left_given = given_left if self._left != given_left else None

    @property
    def length(self) -> int:
        return self._length if self._length_given is None else self._length_given

    @property
    def left(self) -> int:
        """Columns still free on the current output line."""
        return self._left if self._left_given is None else self._left_given

    def _feed(self, data: bytes) -> bytes:
        if b"\r" in data:
            data = data.replace(b"\r", b"")
        if not data:
            return b""
        self._left_given = None  # a byte other than CR always moves `left`
        out: list[bytes] = []
        lines = data.split(b"\n")
        last = len(lines) - 1
        for index, line in enumerate(lines):
            if line:
                self._wrap_segment(line, out)
            if index != last:
                out.append(CRLF)
                self._left = self._length
        return b"".join(out)

    def _wrap_segment(self, line: bytes, out: list[bytes]) -> None:
        raise NotImplementedError

    def _flush(self) -> bytes:
        pending = self._left < self._length
        self._left, self._left_given = self._length, self._length_given
        return self._SOFT_BREAK if pending else b""


class LineWrapper(_Wrapper):
    """Break lines at ``length`` bytes with CRLF (LuaSocket ``wrp``).

    Every CR is dropped, every LF becomes CRLF. Meant for base64 text: breaks
    fall at byte positions, never at spaces.
    """

    __slots__ = ()

    def __init__(self, length: int = 76, left: int | None = None) -> None:
        super().__init__()
        self._setup(length, left, 1, "line")

    def _wrap_segment(self, line: bytes, out: list[bytes]) -> None:
        length = self._length
        left = self._left
        if left <= 0:
            out.append(CRLF)
            left = length
        out.append(line[:left])
        pos = left
        end = len(line)
        if pos >= end:
            self._left = left - end
            return
        while pos < end:
            out.append(CRLF)
            out.append(line[pos : pos + length])
            pos += length
        self._left = length - (end - (pos - length))


class QPWrapper(_Wrapper):
    """Insert soft line breaks ``=CRLF`` into quoted-printable text (``qpwrp``).

    Lines hold at most ``length - 1`` characters plus the ``=``; an ``=XX``
    escape is never split. CR is dropped and LF is a hard break (CRLF).
    """

    __slots__ = ()
    _SOFT_BREAK = b"=\r\n"

    def __init__(self, length: int = 76, left: int | None = None) -> None:
        super().__init__()
        self._setup(length, left, 4, "quoted-printable line")

    def _wrap_segment(self, line: bytes, out: list[bytes]) -> None:
        # A soft break comes before byte j of the current line when
        # left - j <= 1, or when the byte is '=' and left - j <= 3.
        length = self._length
        left = self._left
        pos = 0
        end = len(line)
        while pos < end:
            plain_limit = max(left - 1, 0)  # bytes before a non-'=' byte must break
            eq_from = max(left - 3, 0)  # from here on, an '=' must break
            stop = min(plain_limit, end - pos)
            eq = line.find(b"=", pos + eq_from, pos + stop) if eq_from < stop else -1
            if eq >= 0:
                stop = eq - pos
            if pos + stop >= end:
                out.append(line[pos:])
                left -= end - pos
                break
            out.append(line[pos : pos + stop])
            out.append(b"=\r\n")
            pos += stop
            left = length
        self._left = left


# --------------------------------------------------------------------------
# End-of-line normalisation and dot-stuffing

# A run of line-break bytes is read in pairs: two different bytes (CRLF, LFCR)
# are one break, two equal bytes (CRCR, LFLF) are two, an odd last byte is one.
_EOL_PAIR = re.compile(rb"\r\n|\n\r|\r\r|\n\n|\r|\n")


class EOLNormalizer(_Filter):
    """Turn every CR, LF, CRLF and LFCR into ``marker`` (LuaSocket ``eol``)."""

    __slots__ = ("_marker", "_state", "_pairs")

    def __init__(self, marker: bytes = CRLF, state: int = 0) -> None:
        super().__init__()
        self._marker = _check_marker(marker)
        # Kept as given (LuaSocket returns it unchanged for empty input);
        # values other than CR and LF act as 0.
        self._state = _check_int(state, "state")
        m = self._marker
        self._pairs = {
            b"\r\n": m, b"\n\r": m, b"\r\r": m + m, b"\n\n": m + m, b"\r": m, b"\n": m,
        }

    @property
    def state(self) -> int:
        """The CR or LF (13 or 10) whose pair is still open, or 0."""
        return self._state

    @property
    def marker(self) -> bytes:
        """What every line break becomes (a copy of the marker given)."""
        return self._marker

    def _feed(self, data: bytes) -> bytes:
        if not data:
            return b""
        head = b""
        first = data[0]
        if self._state in (CR, LF) and first in (CR, LF):
            # The open break's marker was written already; this byte closes it.
            head = self._marker if first == self._state else b""
            data = data[1:]
        self._state = 0
        if not data:
            return head
        if b"\r" not in data:
            body = data.replace(b"\n", self._marker) if b"\n" in data else data
        elif b"\n" not in data:
            body = data.replace(b"\r", self._marker)
        elif data.count(b"\r") == data.count(b"\n") == data.count(b"\r\n"):
            # Only CRLF pairs: every run of breaks is (CRLF)*, one marker each.
            body = data if self._marker == CRLF else data.replace(b"\r\n", self._marker)
        else:
            body = _EOL_PAIR.sub(self._pair, data)
        tail_run = len(data) - len(data.rstrip(b"\r\n"))
        if tail_run % 2:
            self._state = data[-1]
        return head + body if head else body

    def _pair(self, match: re.Match[bytes]) -> bytes:
        return self._pairs[match.group()]


_DOT_PREFIX = {0: b"", 1: b"\r", 2: b"\r\n"}


class DotStuffer(_Filter):
    """SMTP dot-stuffing (LuaSocket ``dot``): a ``.`` right after CRLF is doubled.

    ``state`` 2 means "at the start of a line", so a leading ``.`` is doubled
    too; that is where an SMTP body starts.
    """

    __slots__ = ("_state",)

    def __init__(self, state: int = 2) -> None:
        super().__init__()
        # Kept as given (LuaSocket returns it unchanged for empty input);
        # values other than 1 and 2 act as 0.
        self._state = _check_int(state, "state")

    @property
    def state(self) -> int:
        """0 mid-line, 1 after CR, 2 after CRLF."""
        return self._state

    def _feed(self, data: bytes) -> bytes:
        if not data:
            return b""
        prefix = _DOT_PREFIX.get(self._state, b"")
        work = prefix + data
        if work.endswith(b"\r\n"):
            self._state = 2
        elif work.endswith(b"\r"):
            self._state = 1
        else:
            self._state = 0
        if b"\r\n." not in work:
            return data
        return work.replace(b"\r\n.", b"\r\n..")[len(prefix) :]


# --------------------------------------------------------------------------
# Fused filters: in the pure twin they are the chain of their parts

class Base64WrapEncoder(_Filter):
    """Base64 broken into CRLF lines of ``length`` characters, in one filter.

    Gives exactly the bytes of ``Base64Encoder`` followed by ``LineWrapper``.
    """

    __slots__ = ("_encoder", "_wrapper")

    def __init__(self, length: int = 76) -> None:
        super().__init__()
        self._wrapper = LineWrapper(length)
        self._encoder = Base64Encoder()

    @property
    def pending(self) -> bytes:
        return self._encoder.pending

    @property
    def left(self) -> int:
        return self._wrapper.left

    def _feed(self, data: bytes) -> bytes:
        return self._wrapper(self._encoder(data))

    def _flush(self) -> bytes:
        return self._wrapper(self._encoder(None)) + self._wrapper(None)


class NormalizeStuffer(_Filter):
    """Line breaks to CRLF and SMTP dot-stuffing, in one filter.

    Gives exactly the bytes of ``EOLNormalizer()`` followed by ``DotStuffer()``.
    """

    __slots__ = ("_normalizer", "_stuffer")

    def __init__(self) -> None:
        super().__init__()
        self._normalizer = EOLNormalizer()
        self._stuffer = DotStuffer()

    @property
    def state(self) -> int:
        """The stuffer's state: 2 when the output so far ends with CRLF, else 0."""
        return self._stuffer.state

    @property
    def eol_state(self) -> int:
        """The normaliser's open CR or LF (13 or 10), or 0."""
        return self._normalizer.state

    def _feed(self, data: bytes) -> bytes:
        return self._stuffer(self._normalizer(data))

    def _flush(self) -> bytes:
        return b""


# --------------------------------------------------------------------------
# DKIM body canonicalisation (RFC 6376 3.4.3, 3.4.4)

_WSP_BEFORE_CRLF = re.compile(rb"[\t ]+\r\n")
_WSP_RUN = re.compile(rb"[\t ]+")


def _check_mode(mode: object) -> bool:
    """True for "relaxed", False for "simple"; anything else is refused."""
    if mode == "relaxed":
        return True
    if mode == "simple":
        return False
    raise ValueError(f'canonicalization mode must be "relaxed" or "simple", got {mode!r}')


class BodyCanonicalizer(_Filter):
    """A message body in DKIM canonical form, ready for the body hash.

    Only CRLF is a line break (normalise first). Empty lines at the end are
    dropped: line breaks are held back (``held``) until a line with content
    follows, and the end gives one CRLF. "relaxed" also drops white space at
    the end of lines and turns every run of SP/TAB into one SP. The end of
    input ends the last line as SMTP would: an empty body is ``b""`` in
    relaxed mode and ``b"\\r\\n"`` in simple mode.
    """

    __slots__ = ("_relaxed", "_held", "_wsp", "_cr", "_any")

    def __init__(self, mode: str = "relaxed") -> None:
        super().__init__()
        self._relaxed = _check_mode(mode)
        self._held = 0      # CRLFs not written yet: they may be trailing empty lines
        self._wsp = False   # relaxed: a run of SP/TAB is open in the current line
        self._cr = False    # the last byte was a CR (a line break if LF follows)
        self._any = False   # some content was written

    @property
    def mode(self) -> str:
        return "relaxed" if self._relaxed else "simple"

    @property
    def held(self) -> int:
        """The line breaks held back until content follows them."""
        return self._held

    def _feed(self, data: bytes) -> bytes:
        if not data:
            return b""
        # The open white-space run and CR are put back in front: a run of
        # white space collapses into one SP anyway, so one stands for it.
        if self._cr or self._wsp:
            data = (b" " if self._wsp else b"") + (b"\r" if self._cr else b"") + data
        self._cr = data.endswith(b"\r")
        if self._cr:
            data = data[:-1]
        if self._relaxed:
            kept = data.rstrip(b" \t")
            self._wsp = len(kept) < len(data)
            if b" " in kept or b"\t" in kept:
                kept = _WSP_RUN.sub(b" ", _WSP_BEFORE_CRLF.sub(b"\r\n", kept))
            data = kept
        end = _content_end(data)
        if end == 0:
            self._held += len(data) // 2
            return b""
        out = CRLF * self._held + data[:end] if self._held else data[:end]
        self._held = (len(data) - end) // 2
        self._any = True
        return out

    def _flush(self) -> bytes:
        out = b""
        if self._cr:  # a CR that no LF followed is content
            out = CRLF * self._held + (b" \r" if self._wsp else b"\r")
            self._held = 0
            self._any = True
        if self._any or not self._relaxed:
            out += CRLF
        return out


def _content_end(data: bytes) -> int:
    """Where the trailing run of CRLF pairs of ``data`` starts."""
    run = len(data) - len(data.rstrip(b"\r\n"))
    end = len(data) - run
    tail = data[end:]
    if len(tail) % 2 == 0 and tail == CRLF * (len(tail) // 2):
        return end
    end = len(data)  # a bare CR or LF in the run: count the pairs one by one
    while data.endswith(CRLF, 0, end):
        end -= 2
    return end


# A byte below "+" (the lowest of the base64 alphabet) that is not in a CRLF pair.
# Every byte but those below "+" that are neither CR nor LF: deleting them leaves
# the bytes that may not appear at all (two C loops, not a regex with look-arounds).
_ALL_BUT_FORBIDDEN = bytes(b for b in range(256) if b >= 0x2B or b in (0x0A, 0x0D))


def dkim_canonical(data: bytes) -> bool:
    """True when ``data`` (bytes) is in DKIM canonical form already, for the relaxed
    and the simple body canonicalisation alike, but for line breaks at its ends:
    every byte below ``+`` in it (CR, LF, SP and TAB among them) is the CR or LF
    of a CRLF pair. Base64 lines are; the body hash takes them as they are."""
    if not isinstance(data, bytes):
        raise TypeError(f"dkim_canonical needs bytes, got {type(data).__name__}")
    if data.translate(None, _ALL_BUT_FORBIDDEN):
        return False
    return data.count(b"\r") == data.count(b"\r\n") == data.count(b"\n")  # each CR and LF in a pair


def crlf_lines_only(data: bytes) -> bool:
    """True when ``data`` (bytes) has no ``.`` and every CR and LF in it is a CRLF pair."""
    if not isinstance(data, bytes):
        raise TypeError(f"crlf_lines_only needs bytes, got {type(data).__name__}")
    return b"." not in data and data.count(b"\r") == data.count(b"\r\n") == data.count(b"\n")


def stuffed_lines_only(data: bytes) -> bool:
    """True when ``data`` (bytes) is whole CRLF lines, no other CR or LF, none starting with ``.``."""
    if not isinstance(data, bytes):
        raise TypeError(f"stuffed_lines_only needs bytes, got {type(data).__name__}")
    if not data:
        return True
    return (data.endswith(b"\r\n") and not data.startswith(b".") and b"\n." not in data
            and data.count(b"\r") == data.count(b"\r\n") == data.count(b"\n"))
