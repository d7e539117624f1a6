"""Server replies: the ``Reply`` value and a bounded, incremental reply parser.

RFC 5321 section 4.2: a reply is one or more lines ``ddd-text`` ending with a
line ``ddd text`` (or just ``ddd``: LuaSocket hangs on that one, spec 5.4
item 7). Every line of a multi-line reply carries the same code. Lines end in
CRLF; a bare LF is accepted too (LuaSocket does, and some servers need it).

Memory is bounded: a line longer than :data:`MAX_REPLY_LINE` or a reply of
more than :data:`MAX_REPLY_LINES` lines is the server's fault
(:class:`RemoteProtocolError`), however it arrives.
"""
from __future__ import annotations


from .._lazyre import Pattern
from ._value import Value
from .errors import RemoteProtocolError

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: typing takes milliseconds to import
    from typing import Any

__all__ = ["Reply", "ReplyParser", "MAX_REPLY_LINE", "MAX_REPLY_LINES", "parse_ehlo"]

#: Longest reply line accepted, CRLF included. RFC 5321 4.5.3.1.5 says 512;
#: real servers exceed it (long EHLO keyword lists, verbose errors), so be lenient.
MAX_REPLY_LINE = 8192
#: Most lines in one multi-line reply.
MAX_REPLY_LINES = 1000

# RFC 3463: class.subject.detail, where class repeats the reply's first digit.
_ENHANCED = Pattern(r"([245])\.(\d{1,3})\.(\d{1,3})(?=\s|$)")

# Queue ids as common MTAs print them in the final 250 (postfix, exim,
# sendmail, Exchange, Gmail, our test servers). None when nothing matches.
_QUEUE_ID = [
    Pattern(r"(?i)queued as\s+<?([^\s>]+)"),
    Pattern(r"(?i)\bid=([\w.-]+)"),
    Pattern(r"(?i)^([\w.-]+) Message accepted for delivery"),
    Pattern(r"(?i)<([^>\s]+)>.*Queued mail for delivery"),
    Pattern(r"(?i)OK\s+\d+\s+(\S+)\s+-\s+gsmtp"),
]
# A text none of the patterns can match lacks all of these, in lower case: a
# literal piece of each without "i" or "s" (which IGNORECASE also matches as
# "ı" and "ſ", which lower() does not give). Most final replies ("2.0.0 Ok")
# are known to have no queue id without running the five patterns.
_QUEUE_ID_HINT = Pattern("queued|d=|accepted|mtp")


class Reply(Value):
    """One server reply: ``code``, the text ``lines`` (without the code), and the
    ``command`` it answers (``None`` for an unsolicited 421; not compared)."""

    __slots__ = _fields = ("code", "lines", "command")
    _compared = ("code", "lines")
    code: int
    lines: tuple[str, ...]
    command: Any

    def __init__(self, code: int, lines: tuple[str, ...], command: Any = None) -> None:
        object.__setattr__(self, "code", code)
        object.__setattr__(self, "lines", lines)
        object.__setattr__(self, "command", command)

    @property
    def text(self) -> str:
        """All text lines joined with newlines (LuaSocket's reply string, minus codes)."""
        return "\n".join(self.lines)

    @property
    def enhanced(self) -> str | None:
        """The RFC 3463 enhanced status code ("2.0.0") from the first line, if any."""
        match = _ENHANCED.match(self.lines[0]) if self.lines else None
        if match is None or int(match.group(1)) != self.code // 100:
            return None
        return match.group(0)

    @property
    def message(self) -> str:
        """The first line's text without the enhanced status code."""
        first = self.lines[0] if self.lines else ""
        code = self.enhanced
        return first[len(code):].lstrip() if code else first

    @property
    def positive(self) -> bool:
        return 200 <= self.code < 300

    @property
    def intermediate(self) -> bool:
        return 300 <= self.code < 400

    @property
    def temporary(self) -> bool:
        return 400 <= self.code < 500

    @property
    def permanent(self) -> bool:
        return 500 <= self.code < 600

    @property
    def queue_id(self) -> str | None:
        """The queue id a final 250 names ("queued as 4AB12"), or None."""
        if _QUEUE_ID_HINT.search("\n".join(self.lines).lower()) is None:
            return None
        return self._queue_id_by_patterns()

    def _queue_id_by_patterns(self) -> str | None:
        """What the patterns find, each line in turn (the hint above only skips this)."""
        for text in (self.message, *self.lines[1:]):
            for pattern in _QUEUE_ID:
                found = pattern.search(text)
                if found:
                    return found.group(1)
        return None

    def __str__(self) -> str:
        if not self.lines:
            return str(self.code)
        return " / ".join(f"{self.code} {line}".rstrip() for line in self.lines)


class ReplyParser:
    """Incremental parser: ``feed(bytes)``, then ``next_reply()`` until it gives None."""

    __slots__ = ("_buf", "_scanned", "_code", "_lines")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._scanned = 0  # bytes of _buf known to hold no LF: keeps a slow drip O(n)
        self._code: int | None = None  # the code of a multi-line reply in progress
        self._lines: list[str] = []

    def feed(self, data: bytes) -> None:
        self._buf += data

    @property
    def buffered(self) -> int:
        """Bytes received and not yet part of a returned reply."""
        return len(self._buf)

    def next_reply(self) -> tuple[int, tuple[str, ...]] | None:
        """The next complete reply as ``(code, lines)``, or None if more bytes are needed."""
        while True:
            end = self._buf.find(b"\n", self._scanned)
            if end < 0:
                self._scanned = len(self._buf)
                if self._scanned > MAX_REPLY_LINE:
                    raise RemoteProtocolError(
                        f"reply line longer than {MAX_REPLY_LINE} bytes (MAX_REPLY_LINE)"
                    )
                return None
            if end + 1 > MAX_REPLY_LINE:
                raise RemoteProtocolError(f"reply line longer than {MAX_REPLY_LINE} bytes (MAX_REPLY_LINE)")
            raw = bytes(self._buf[:end])
            del self._buf[: end + 1]
            self._scanned = 0
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            code, last, text = _split_line(raw)
            if last and self._code is None:  # a one-line reply: most of them
                return code, (text,)
            if self._code is not None and code != self._code:
                raise RemoteProtocolError(
                    f"multi-line reply changed its code from {self._code} to {code} (RFC 5321 4.2.1)"
                )
            self._lines.append(text)
            if len(self._lines) > MAX_REPLY_LINES:
                raise RemoteProtocolError(f"reply of more than {MAX_REPLY_LINES} lines (MAX_REPLY_LINES)")
            if last:
                lines = tuple(self._lines)
                self._code = None
                self._lines = []
                return code, lines
            self._code = code


def _split_line(raw: bytes) -> tuple[int, bool, str]:
    """``ddd text`` / ``ddd-text`` / ``ddd`` -> (code, is_last, text)."""
    head = raw[:3]
    if len(head) < 3 or not head.isdigit() or not (b"2" <= head[:1] <= b"5"):
        raise RemoteProtocolError(f"malformed reply line {_show(raw)}: expected a code 200-599")
    sep = raw[3:4]
    if sep not in (b"", b" ", b"-"):
        raise RemoteProtocolError(f"malformed reply line {_show(raw)}: code not followed by space or '-'")
    # Non-UTF-8 bytes in reply text are the server's business, not an error.
    return int(head), sep != b"-", raw[4:].decode("utf-8", "replace")


def _show(raw: bytes) -> str:
    return repr(raw[:60]) + ("..." if len(raw) > 60 else "")


def parse_ehlo(lines: tuple[str, ...]) -> dict[str, str]:
    """Service extensions from an EHLO reply's lines: KEYWORD (upper case) -> params.

    The first line is the server's name, not an extension. Keywords are
    case-insensitive (RFC 5321 4.1.1.1); the old ``AUTH=LOGIN PLAIN`` form is
    merged into ``AUTH``.
    """
    found: dict[str, str] = {}
    for line in lines[1:]:
        keyword, _, params = line.strip().partition(" ")
        keyword = keyword.upper()
        if keyword.startswith("AUTH="):
            params = (keyword[5:] + " " + params).strip()
            keyword = "AUTH"
        if not keyword:
            continue
        if keyword == "AUTH" and keyword in found:
            params = (found[keyword] + " " + params).strip()
        found[keyword] = params.strip()
    return found
