"""Header fields for outgoing mail: names, folding, RFC 2047 and RFC 2231. No I/O.

``format_header(name, value)`` returns one complete field as bytes,
``Canonical-Name: value\\r\\n``, ready to be sent. This is where we part from
LuaSocket's ``smtp.message`` (spec 5.3 item 2), which writes values verbatim:

* a value holding CR, LF or NUL is refused before anything else is done
  (header injection), and so is a field name that is not RFC 5322 ``ftext``;
* the output is ASCII only: non-ASCII text becomes RFC 2047 encoded words
  (UTF-8, Q or B, whichever is shorter), non-ASCII domains become IDNA
  A-labels, non-ASCII parameter values use RFC 2231 (``format_params``);
* fields are folded (RFC 5322 2.2.3: CRLF inserted before white space, so
  unfolding gives the value back): lines stay within 78 octets (76 on lines
  holding an encoded word, RFC 2047 section 2) wherever a fold point exists,
  and never exceed 998 octets -- if that is impossible ``HeaderError`` is
  raised, nothing longer is ever produced;
* unknown names are capitalised word by word (``X-Custom-Thing``) instead of
  being left in lower case.

Values are plain text, never pre-encoded: a word that merely looks like an
encoded word (``=?...?=``) is itself encoded, so readers show it literally.

How a field is written depends on its name (see the ``_*_FIELDS`` tables):
address lists, unstructured text (the default, also for unknown and ``X-``
names), identifier lists, ``Content-Type``/``Content-Disposition`` and other
structured fields, which must already be ASCII.
"""
from __future__ import annotations

import binascii
import functools

from .._lazyre import Pattern
from ..idn import to_ascii

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: typing takes milliseconds to import
    from typing import Iterable, Union

__all__ = [
    "HeaderError",
    "canonical_name",
    "check_name",
    "format_header",
    "format_params",
    "rfc2047_word_fallback",
    "addresses",
]


class HeaderError(ValueError):
    """A header name or value that cannot be written safely or correctly."""


# ---------------------------------------------------------------- limits

#: RFC 5322 2.1.1: lines SHOULD be at most 78 octets, excluding CRLF.
SOFT_LIMIT = 78
#: RFC 5322 2.1.1: lines MUST be at most 998 octets, excluding CRLF.
HARD_LIMIT = 998
#: RFC 2047 section 2: a line holding an encoded word is at most 76 characters.
_EW_LINE = 76
#: RFC 2047 section 2: one encoded word is at most 75 characters.
_EW_MAX = 75
#: Room that always holds one character in an encoded word (4 UTF-8 bytes in Q).
_EW_ONE_CHAR = 24
#: Longest white-space run kept visible in unstructured text; longer runs are
#: encoded with their neighbours, so that white space plus a word always fits
#: on a line of its own.
_MAX_WSP_RUN = 900
#: Longest encoded word ``rfc2047_word_fallback`` makes: ``␣filename="`` + word
#: or word + ``";`` then still fits in 78.
_FALLBACK_WORD = 64
#: Parameters longer than this (``key="value"``) are split into RFC 2231
#: continuations even when ASCII, so that they fit in ``HARD_LIMIT``.
_MAX_ASCII_PARAM = 900
#: A parameter section ``key*N*=...`` fits on a continuation line as
#: ``␣section;`` within ``SOFT_LIMIT``.
_PARAM_SECTION = SOFT_LIMIT - 2

_CHARSET = "utf-8"
_EW_OVERHEAD = len("=?utf-8?q?") + len("?=")

# ---------------------------------------------------------------- names

# Field kinds, by lower-case name. Anything not listed is unstructured text.
_ADDRESS_FIELDS = frozenset({
    "from", "to", "cc", "bcc", "reply-to", "sender",
    "resent-from", "resent-to", "resent-cc", "resent-bcc", "resent-sender",
    "disposition-notification-to", "mail-followup-to", "mail-reply-to",
})
_ID_FIELDS = frozenset({"message-id", "in-reply-to", "references", "content-id", "resent-message-id"})
_PARAM_FIELDS = frozenset({"content-type", "content-disposition"})
# Structured fields written as given (white space may fold), which must be ASCII:
# encoding them as RFC 2047 words would corrupt them.
_TOKEN_FIELDS = frozenset({
    "date", "resent-date", "mime-version", "content-transfer-encoding", "content-language",
    "content-location", "content-md5", "received", "dkim-signature", "arc-seal",
    "arc-message-signature", "arc-authentication-results", "authentication-results",
    "received-spf", "auto-submitted", "list-unsubscribe", "list-unsubscribe-post",
    "list-post", "list-help", "list-subscribe", "list-owner", "list-archive",
})

# Words written in capitals in registered field names (IANA message headers:
# Message-ID, MIME-Version, Content-MD5, DKIM-Signature, Received-SPF, ARC-Seal,
# Reporting-MTA, Reporting-UA, TLS-Required, MT-Priority, DL-Expansion-History,
# VBR-Info, CFBL-Address, MMHS-*, PICS-Label); every other word is capitalised.
_UPPER_WORDS = {
    word: word.upper()
    for word in (
        "id", "mime", "md5", "dkim", "spf", "arc", "mta", "dsn", "smtp", "ua",
        "tls", "mt", "dl", "vbr", "cfbl", "mmhs", "pics",
    )
}

_FTEXT = Pattern(r"[\x21-\x39\x3b-\x7e]+")  # RFC 5322 3.6.8: printable ASCII except ":"


def check_name(name: str) -> None:
    """Raise unless ``name`` is an RFC 5322 field name (1*ftext).

    ``TypeError`` for a non-str; ``HeaderError`` for an empty name or one with
    a character outside printable ASCII or a colon.
    """
    if not isinstance(name, str):
        raise TypeError(f"header name must be str, got {type(name).__name__}")
    if not _FTEXT.fullmatch(name):
        hint = " (header injection?)" if any(c in name for c in "\r\n\0") else ""
        raise HeaderError(
            f"invalid header name {name!r}{hint}: a field name is one or more printable "
            "ASCII characters other than ':' (RFC 5322 3.6.8)"
        )


@functools.lru_cache(maxsize=256)
def canonical_name(name: str) -> str:
    """The conventional spelling of a field name: ``message-id`` -> ``Message-ID``.

    Case-insensitive. Each dash-separated word is capitalised, except the
    words in ``_UPPER_WORDS``, which are written in capitals.
    """
    check_name(name)
    return "-".join(_UPPER_WORDS.get(word, word.capitalize()) for word in name.lower().split("-"))


# ---------------------------------------------------------------- value checks

_INJECTION = Pattern(r"[\r\n\0]")
_NOT_VCHAR = Pattern(r"[^\x21-\x7e]")  # anything but printable, non-space ASCII
_NOT_TEXT = Pattern(r"[^\x20-\x7e\t]")  # anything but printable ASCII and WSP
_WSP_RUNS = Pattern(r"([ \t]+)")
_WORDS = Pattern(r"[ \t]*[^ \t]+")
_ONE_LINE = Pattern(r"[\x21-\x7e]+(?: [\x21-\x7e]+)*")  # printable ASCII words, single spaces


def _check_injection(where: str, value: str, suffix: str = "") -> None:
    """HeaderError when ``value`` holds CR, LF or NUL (``where`` + ``suffix`` names it:
    joined only then, as the value is almost always clean)."""
    if "\r" not in value and "\n" not in value and "\0" not in value:  # three C scans, no regex call
        return
    where += suffix
    found = _INJECTION.search(value)
    if found:
        raise HeaderError(
            f"{where} contains {found.group()!r}: CR, LF and NUL are refused in header values "
            "(they would allow header injection)"
        )


def _value_text(value: object) -> str:
    # bool is an int subclass, but True as a header value is almost surely a mistake.
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise TypeError(f"header value must be str or int, got {type(value).__name__}")


def _check_ascii(field: str, value: str, hint: str = "") -> None:
    found = _NOT_TEXT.search(value)
    if found:
        kind = "non-ASCII" if found.group() > "\x7f" else "control"
        raise HeaderError(f"{field}: {kind} character {found.group()!r} is not allowed here{hint}")


# ---------------------------------------------------------------- RFC 2047

# Q-encoding leaves these bytes as they are (RFC 2047 5(3), the strictest
# context, so one encoder serves text and phrases); SPACE becomes "_".
_Q_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")
_Q_MAP = {b: chr(b) if b in _Q_SAFE else "=%02X" % b for b in range(256)}
_Q_MAP[0x20] = "_"


@functools.lru_cache(maxsize=4096)
def _char_cost(char: str) -> tuple[int, int]:
    """(UTF-8 length, Q-encoded length) of one character."""
    data = char.encode(_CHARSET)
    return len(data), sum(len(_Q_MAP[b]) for b in data)


def _ew_length(nbytes: int, qlen: int) -> int:
    return _EW_OVERHEAD + min(qlen, (nbytes + 2) // 3 * 4)


def _encoded_word(text: str) -> str:
    """``text`` as one encoded word, Q or B, whichever is shorter (Q on a tie)."""
    data = text.encode(_CHARSET)
    q = "".join(_Q_MAP[b] for b in data)
    b = binascii.b2a_base64(data, newline=False).decode("ascii")  # base64.b64encode, without importing re
    if len(b) < len(q):
        return f"=?{_CHARSET}?b?{b}?="
    return f"=?{_CHARSET}?q?{q}?="


def _cost(text: str) -> tuple[int, int]:
    nbytes = qlen = 0
    for char in text:
        n, q = _char_cost(char)
        nbytes += n
        qlen += q
    return nbytes, qlen


def _take_chars(text: str, room: int) -> tuple[int, int, int]:
    """How many leading characters of ``text`` fit in one encoded word of
    ``room`` characters, with their UTF-8 and Q-encoded lengths."""
    nbytes = qlen = 0
    for i, char in enumerate(text):
        n, q = _char_cost(char)
        if _ew_length(nbytes + n, qlen + q) > room:
            return i, nbytes, qlen
        nbytes += n
        qlen += q
    return len(text), nbytes, qlen


def rfc2047_word_fallback(text: str) -> str:
    """``text`` as RFC 2047 B-encoded UTF-8 words joined by single spaces.

    For the legacy ``name="=?utf-8?b?...?="`` parameter that many clients
    read instead of RFC 2231. Words are split between characters and are at
    most ``_FALLBACK_WORD`` characters, so each fits on a folded line.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be str, got {type(text).__name__}")
    _check_injection("rfc2047_word_fallback() text", text)
    words = []
    start = 0
    while start < len(text):
        nbytes = 0
        end = start
        while end < len(text):
            n = _char_cost(text[end])[0]
            if _EW_OVERHEAD + (nbytes + n + 2) // 3 * 4 > _FALLBACK_WORD:
                break
            nbytes += n
            end += 1
        data = text[start:end].encode(_CHARSET)
        words.append(f"=?{_CHARSET}?b?{binascii.b2a_base64(data, newline=False).decode('ascii')}?=")
        start = end
    return " ".join(words)


# ---------------------------------------------------------------- folding

# A field value is laid out from items: (kind, lead, text). ``lead`` is the
# white space before the item -- a fold (CRLF) may be inserted before it, or
# inside it -- and is never empty. Kind "p" is written as it is; kind "e" is
# text to encode, as one or more encoded words separated by single spaces
# (which decoders drop between adjacent encoded words, RFC 2047 6.2).
Item = tuple[str, str, str]


class _Folder:
    """Greedy line filling for one field; see the module docstring for the limits."""

    def __init__(self, field: str) -> None:
        self.field = field
        self.lines: list[str] = []
        self.line = field + ":"
        self.has_ew = False  # the current line holds an encoded word
        # Nothing placed yet. We never fold straight after the colon unless
        # a line would exceed 998: readers (Python's email among them) keep
        # the white space of a continuation line that starts the value.
        self.start = True

    def _break(self) -> None:
        self.lines.append(self.line)
        self.line = ""
        self.has_ew = False

    def plain(self, lead: str, text: str) -> None:
        line = self.line
        total = len(line) + len(lead) + len(text)
        limit = _EW_LINE if self.has_ew else SOFT_LIMIT
        if total <= limit or (self.start and total <= HARD_LIMIT):
            self.line += lead + text
            self.start = False
            return
        self.start = False
        alone = len(lead) + len(text)
        for limit in (SOFT_LIMIT, HARD_LIMIT):
            if alone <= limit:
                self._break()
                self.line = lead + text
                return
            # A long white-space run: leave part of it at the end of this line.
            keep = alone - limit
            if keep < len(lead) and len(line) + keep <= limit:
                self.line = line + lead[:keep]
                self._break()
                self.line = lead[keep:] + text
                return
        raise HeaderError(
            f"{self.field}: {text[:40]!r}... ({len(text)} characters) cannot be folded into "
            f"lines of at most {HARD_LIMIT} octets"
        )

    def encoded(self, lead: str, text: str) -> None:
        # Encoded words break only between "segments" (white space + word)
        # while they can: decoders that wrongly keep the space between two
        # encoded words (CPython gh-128110) then at worst double a space.
        segments = _WORDS.findall(text)
        tail = text[len("".join(segments)):]
        if tail:  # trailing white space belongs to the last word
            segments = segments[:-1] + [segments[-1] + tail] if segments else [tail]
        costs = [_cost(s) for s in segments]
        whole = _ew_length(sum(c[0] for c in costs), sum(c[1] for c in costs))
        if whole <= _EW_MAX and not self.start and len(self.line) + len(lead) + whole > _EW_LINE:
            # One encoded word on the next line rather than two across a fold:
            # Python's email (default policy) keeps the space between adjacent
            # encoded words and doubles it (gh-128110); other readers differ too.
            self._break()
        i = 0
        while i < len(segments):
            fresh = self.line == "" or self.start
            room = min(_EW_MAX, _EW_LINE - len(self.line) - len(lead))
            nbytes = qlen = 0
            j = i
            while j < len(segments):
                n, q = costs[j]
                if _ew_length(nbytes + n, qlen + q) > room:
                    break
                nbytes += n
                qlen += q
                j += 1
            if j > i:
                chunk = "".join(segments[i:j])
                i = j
            elif not fresh:
                self._break()
                continue
            else:
                room = max(room, _EW_ONE_CHAR)
                if len(self.line) + len(lead) + room > HARD_LIMIT:
                    if not self.start:  # pragma: no cover - leads are at most _MAX_WSP_RUN
                        raise HeaderError(f"{self.field}: value cannot be folded")
                    self.start = False
                    self._break()
                    continue
                cut, n, q = _take_chars(segments[i], room)
                chunk = segments[i][:cut]
                segments[i] = segments[i][cut:]
                costs[i] = (costs[i][0] - n, costs[i][1] - q)
                if not segments[i]:
                    i += 1
            self.line += lead + _encoded_word(chunk)
            self.has_ew = True
            self.start = False
            lead = " "

    def layout(self, items: Iterable[Item]) -> bytes:
        for kind, lead, text in items:
            if kind == "e":
                self.encoded(lead, text)
            else:
                self.plain(lead, text)
        if self.start:  # an empty value
            self.line += " "
        self.lines.append(self.line)
        return ("\r\n".join(self.lines) + "\r\n").encode("ascii")


def _split_wsp(text: str, lead: str = " ") -> list[Item]:
    """Plain items for ``text``, breaking at its white-space runs."""
    parts = _WSP_RUNS.split(text)
    items: list[Item] = []
    if parts[0]:
        items.append(("p", lead, parts[0]))
    for k in range(1, len(parts) - 1, 2):
        if parts[k + 1]:  # white space at the end has nothing to lead
            items.append(("p", parts[k], parts[k + 1]))
    return items


# ---------------------------------------------------------------- unstructured

def _unstructured_items(value: str, field: str) -> list[Item]:
    """RFC 5322 unstructured text; encoded words per RFC 2047 5(1)."""
    if not value:
        return []
    parts = _WSP_RUNS.split(value)
    words = parts[0::2]
    leads = [" "] + parts[1::2]  # the white space before each word
    # The first word must fit on the first line: folding straight after the
    # colon would make readers see a leading space.
    leads[0] = " " * (len(field) + 2)
    n = len(words)
    encode = [bool(_NOT_VCHAR.search(w)) or "=?" in w for w in words]
    # Readers strip white space at either end of a value: keep it inside an
    # encoded word, together with the word next to it.
    if words[0] == "":
        encode[0] = True
        if n > 1:
            encode[1] = True
    if words[-1] == "":
        encode[-1] = True
        if n > 1:
            encode[-2] = True
    for k in range(n):
        if k and len(leads[k]) > _MAX_WSP_RUN:
            encode[k - 1] = encode[k] = True
        elif len(leads[k]) + len(words[k]) > HARD_LIMIT:
            encode[k] = True  # a word too long for any line
    leads[0] = " "
    items: list[Item] = []
    k = 0
    while k < n:
        if not encode[k]:
            items.append(("p", leads[k], words[k]))
            k += 1
            continue
        # White space between two encoded words is dropped by decoders, so a
        # run of adjacent words to encode is encoded as one text.
        end = k + 1
        while end < n and encode[end]:
            end += 1
        run = words[k] + "".join(leads[m] + words[m] for m in range(k + 1, end))
        items.append(("e", leads[k], run))
        k = end
    return items


# ---------------------------------------------------------------- phrases and addresses

_ATEXT = r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+"
_PLAIN_PHRASE = Pattern(rf"{_ATEXT}(?: {_ATEXT})*")
_DOT_ATOM = Pattern(rf"{_ATEXT}(?:\.{_ATEXT})*")
_QUOTED_LOCAL = Pattern(r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e\t]|\\[\x20-\x7e\t])*"')
_DOMAIN_LITERAL = Pattern(r"\[[\x21-\x5a\x5e-\x7e]*\]")
_DOT_ATOM_TEXT = rf"{_ATEXT}(?:\.{_ATEXT})*"
# The common mailbox, "Plain Name <local@domain>" or "local@domain" (ASCII,
# no comments, no quotes): read without the general parser, same result.
_BARE_ADDRESS = Pattern(rf"{_DOT_ATOM_TEXT}@{_DOT_ATOM_TEXT}")  # one ASCII addr-spec, nothing around it
# One mailbox as a header writes it unchanged: "Plain Name <local@domain>"
# (atoms and single spaces; "=?" excluded: the folder encodes such a name), or a bare addr-spec.
_ONE_LINE_MAILBOX = Pattern(rf"(?:{_ATEXT}(?: {_ATEXT})* <{_DOT_ATOM_TEXT}@{_DOT_ATOM_TEXT}>|{_DOT_ATOM_TEXT}@{_DOT_ATOM_TEXT})")
_SIMPLE_MAILBOX = Pattern(
    rf"[ \t]*(?:({_ATEXT}(?: {_ATEXT})*)[ \t]*<({_DOT_ATOM_TEXT}@{_DOT_ATOM_TEXT})>|<?({_DOT_ATOM_TEXT}@{_DOT_ATOM_TEXT})>?)[ \t]*"
)
# A display name with a longer word or white-space run is encoded, so that
# white space plus word (plus quotes) always fits on a line.
_MAX_PHRASE_PART = 400


def _phrase_items(text: str) -> list[Item]:
    """A display name: atoms, a quoted string or encoded words (RFC 2047 5(3))."""
    too_long = any(len(part) > _MAX_PHRASE_PART for part in _WSP_RUNS.split(text))
    if too_long or _NOT_TEXT.search(text) or "=?" in text:
        # Encoded whole: exact for any white space, never mixes encoded words
        # with quoted strings, and breaks anywhere (for absurdly long words).
        return [("e", " ", text)]
    if _PLAIN_PHRASE.fullmatch(text):
        return _split_wsp(text)
    quoted = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return _split_wsp(quoted)


#: Comments nested deeper than this in an address header are refused.
MAX_COMMENT_DEPTH = 50
_ONE_MAILBOX = Pattern(r'[^"(),:;<>\\]*(?:<[^"(),:;<>\\]*>[^"(),:;<>\\]*)?')


def _split_address_list(field: str, value: str) -> list[tuple[str | None, list[str]]]:
    """Split at top-level commas and groups: [(group name or None, [mailbox texts])].

    Quoted strings, comments and angle brackets are skipped over; anything
    unbalanced is an error.
    """
    if _ONE_MAILBOX.fullmatch(value):  # no list, group, quote or comment: one mailbox at most
        return [(None, [value])] if value.strip(" \t") else []
    entries: list[tuple[str | None, list[str]]] = []
    group: str | None = None
    members: list[str] = []
    start = 0
    in_quote = in_angle = False
    depth = 0
    i = 0
    n = len(value)

    def bad(why: str) -> HeaderError:
        return HeaderError(f"{field}: cannot parse address list {value!r}: {why}")

    while i < n:
        c = value[i]
        if in_quote:
            if c == "\\":
                i += 1
            elif c == '"':
                in_quote = False
        elif depth:
            if c == "\\":
                i += 1
            elif c == "(":
                depth += 1
                if depth > MAX_COMMENT_DEPTH:  # the stdlib parser recurses per level
                    raise HeaderError(f"{field}: comments nested more than {MAX_COMMENT_DEPTH} deep")
            elif c == ")":
                depth -= 1
        elif c == '"':
            in_quote = True
        elif c == "(":
            depth = 1
        elif c == ")":
            raise bad("unbalanced ')'")
        elif in_angle:
            if c == ">":
                in_angle = False
            elif c == "<":
                raise bad("'<' inside '<...>'")
        elif c == "<":
            in_angle = True
        elif c == ">":
            raise bad("unbalanced '>'")
        elif c == ",":
            if group is None:
                entries.append((None, [value[start:i]]))
            else:
                members.append(value[start:i])
            start = i + 1
        elif c == ":":
            if group is not None:
                raise bad("a group inside a group")
            group, members, start = value[start:i], [], i + 1
        elif c == ";":
            if group is None:
                raise bad("';' outside a group")
            members.append(value[start:i])
            entries.append((group, members))
            group, start = None, i + 1
        i += 1
    if in_quote or depth or in_angle:
        raise bad("unterminated quoted string, comment or '<'")
    if group is not None:
        raise bad(f"group {group.strip()!r} has no closing ';'")
    entries.append((None, [value[start:]]))
    # Blank elements (",,", text after ";") are allowed and dropped (RFC 5322 4.4).
    return [
        (name, [m for m in texts if m.strip(" \t")])
        for name, texts in entries
        if name is not None or texts[0].strip(" \t")
    ]


def _domain(field: str, domain: str) -> str:
    if _DOMAIN_LITERAL.fullmatch(domain):
        return domain
    if not domain.isascii():
        try:
            domain = to_ascii(domain)
        except UnicodeError as exc:
            raise HeaderError(f"{field}: domain {domain!r} cannot be converted to IDNA: {exc}") from None
    if not _DOT_ATOM.fullmatch(domain):
        raise HeaderError(f"{field}: invalid domain {domain!r}")
    return domain


def _mailbox(field: str, text: str) -> tuple[str, str]:
    """(display name, ASCII addr-spec) of one mailbox."""
    simple = _SIMPLE_MAILBOX.fullmatch(text)
    if simple is not None and (text.count("<") == text.count(">")):
        name, addr = simple.group(1) or "", simple.group(2) or simple.group(3)
        local, _, domain = addr.rpartition("@")
        return name, f"{local}@{_domain(field, domain)}"
    from email.utils import getaddresses  # here: the simple forms above need no email package

    pairs = getaddresses([text])
    if len(pairs) != 1 or not pairs[0][1] or pairs[0][1] not in text:
        # The last test catches what getaddresses glues silently ("a@b x" -> "a@bx").
        raise HeaderError(f"{field}: cannot parse address {text.strip()!r}")
    name, addr = pairs[0]
    local, at, domain = addr.rpartition("@")
    if not at or not local or not domain:
        raise HeaderError(f"{field}: {addr!r} is not an address (local@domain)")
    if not local.isascii():
        raise HeaderError(
            f"{field}: the local part of {addr!r} is not ASCII; that needs SMTPUTF8 "
            "(RFC 6531/6532), which is not supported"
        )
    if not (_DOT_ATOM.fullmatch(local) or _QUOTED_LOCAL.fullmatch(local)):
        raise HeaderError(f"{field}: invalid local part in {addr!r}")
    return name, f"{local}@{_domain(field, domain)}"


def _group_name(field: str, text: str) -> str:
    # A group's display name is a phrase, like a mailbox's: let getaddresses
    # unquote it and drop comments.
    if not text.strip(" \t"):
        raise HeaderError(f"{field}: a group needs a name")
    from email.utils import getaddresses

    pairs = getaddresses([f"{text} <group@invalid>"])
    if len(pairs) != 1 or pairs[0][1] != "group@invalid" or not pairs[0][0]:
        raise HeaderError(f"{field}: invalid group name {text.strip()!r}")
    return pairs[0][0]


def _parse_addresses(field: str, value: str) -> list[tuple[str | None, list[tuple[str, str]]]]:
    return [
        (None if group is None else _group_name(field, group), [_mailbox(field, m) for m in texts])
        for group, texts in _split_address_list(field, value)
    ]


def _address_items(field: str, value: str) -> list[Item]:
    entries = _parse_addresses(field, value)
    if not entries:
        raise HeaderError(f"{field}: no address given")
    items: list[Item] = []
    for k, (group, mailboxes) in enumerate(entries):
        after = "," if k < len(entries) - 1 else ""
        if group is not None:
            name = _phrase_items(group)
            if name[-1][0] == "e":  # RFC 2047 5(3): white space before a special
                name.append(("p", " ", ":" if mailboxes else ":;" + after))
            else:
                kind, lead, text = name[-1]
                name[-1] = (kind, lead, text + (":" if mailboxes else ":;" + after))
            items.extend(name)
            if not mailboxes:
                continue
        for m, (display, addr) in enumerate(mailboxes):
            last = m == len(mailboxes) - 1
            sep = (";" + after if group is not None else after) if last else ","
            if display:
                items.extend(_phrase_items(display))
                items.append(("p", " ", f"<{addr}>{sep}"))
            else:
                items.append(("p", " ", addr + sep))
    return items


def addresses(value: str) -> list[str]:
    """The addr-specs (``local@domain``) in an address-list value, in order.

    For the SMTP envelope. Domains are IDNA A-labels; members of groups are
    included and empty groups give nothing. ``HeaderError`` for malformed
    input or a non-ASCII local part.
    """
    if not isinstance(value, str):
        raise TypeError(f"address list must be str, got {type(value).__name__}")
    _check_injection("address list", value)
    if _BARE_ADDRESS.fullmatch(value):
        return [value]  # what the parser below gives for one ASCII local@domain
    return list(_envelope_addresses(value))


@functools.lru_cache(maxsize=1024)
def _envelope_addresses(value: str) -> tuple[str, ...]:
    # Cached: a bulk send parses the same From for every message.
    return tuple(addr for _, mailboxes in _parse_addresses("address list", value) for _, addr in mailboxes)


# ---------------------------------------------------------------- structured

def _param_items(value: str) -> list[Item]:
    """Content-Type/Disposition: break after top-level ';', then at other white space."""
    pieces = []
    start = 0
    in_quote = False
    i = 0
    while i < len(value):
        c = value[i]
        if in_quote and c == "\\":
            i += 1
        elif c == '"':
            in_quote = not in_quote
        elif c == ";" and not in_quote:
            pieces.append(value[start:i + 1])
            start = i + 1
        i += 1
    pieces.append(value[start:])
    items: list[Item] = []
    for piece in pieces:
        text = piece.lstrip(" \t")
        if not text:
            continue
        lead = piece[: len(piece) - len(text)] or " "  # FWS is allowed after ';'
        if len(lead) + len(text) < SOFT_LIMIT:
            items.append(("p", lead, text))
        else:
            items.extend(_split_wsp(text, lead))
    return items


_ATTRIBUTE_CHAR = frozenset("!#$&+-.^_`{|}~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def _pct(char: str) -> str:
    if char in _ATTRIBUTE_CHAR:
        return char
    return "".join("%%%02X" % b for b in char.encode(_CHARSET))


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _sections(key: str, pieces: list[str], first: str) -> list[str]:
    """RFC 2231 continuations ``key*N*=...``, packing whole percent-encoded characters."""
    out = []
    current = first
    size = len(f"{key}*0*=") + len(current)
    for piece in pieces:
        if current != first and size + len(piece) > _PARAM_SECTION and current:
            out.append(current)
            current = ""
            size = len(f"{key}*{len(out)}*=")
        current += piece
        size += len(piece)
    out.append(current)
    return [f"{key}*{n}*={section}" for n, section in enumerate(out)]


def format_params(value: str, params: dict[str, str]) -> str:
    """``value; key=v; ...`` for Content-Type or Content-Disposition.

    Results for str values and parameters are cached (bounded): a bulk send
    formats the same attachment's parameters for every message.

    ASCII values are written bare when they are RFC 2231 attribute-chars
    only (a subset of RFC 2045 tokens), else as quoted strings. Values with
    non-ASCII or control characters use RFC 2231 (``key*=utf-8''%C3%A9...``),
    split into continuations ``key*0*=``, ``key*1*=``... when too long for
    one folded line. Continuations break only between characters, so readers
    that decode each section on its own get it right too.
    """
    if type(value) is str and isinstance(params, dict) and all(
        type(k) is str and type(v) is str for k, v in params.items()
    ):
        return _format_params_cached(value, tuple(params.items()))
    return _format_params(value, params)


@functools.lru_cache(maxsize=1024)
def _format_params_cached(value: str, items: tuple[tuple[str, str], ...]) -> str:
    return _format_params(value, dict(items))


def _format_params(value: str, params: dict[str, str]) -> str:
    if not isinstance(value, str):
        raise TypeError(f"value must be str, got {type(value).__name__}")
    _check_injection("format_params() value", value)
    _check_ascii("format_params() value", value)
    out = [value.strip(" \t")]
    seen = set()
    for key, val in params.items():
        if not isinstance(key, str) or not isinstance(val, str):
            raise TypeError(f"parameter names and values must be str, got {key!r}: {val!r}")
        if not key or not all(c in _ATTRIBUTE_CHAR for c in key):
            raise HeaderError(f"invalid parameter name {key!r}")
        if key.lower() in seen:
            raise HeaderError(f"parameter {key!r} is given twice (names are case-insensitive)")
        seen.add(key.lower())
        _check_injection(f"parameter {key!r}", val)
        if not _NOT_TEXT.search(val) and "\t" not in val:
            # Bare only when made of RFC 2231 attribute-chars: readers treat
            # "*", "'" and "%" in a bare value as RFC 2231 syntax.
            text = val if val and all(c in _ATTRIBUTE_CHAR for c in val) else _quote(val)
            if len(key) + 1 + len(text) <= _MAX_ASCII_PARAM:
                out.append(f"{key}={text}")
            else:
                chunks = [val[i:i + 60] for i in range(0, len(val), 60)]
                out.extend(f"{key}*{n}={_quote(chunk)}" for n, chunk in enumerate(chunks))
            continue
        pieces = [_pct(c) for c in val]
        first = f"{_CHARSET}''"
        single = f"{key}*={first}{''.join(pieces)}"
        if len(single) <= _PARAM_SECTION:
            out.append(single)
        else:
            out.extend(_sections(key, pieces, first))
    return "; ".join(out)


# ---------------------------------------------------------------- format_header

def format_header(name: str, value: Union[str, int]) -> bytes:
    """One complete header field, ``Canonical-Name: value\\r\\n``, folded, ASCII.

    Bulk sends repeat the same fields (From, an attachment's Content-Type), so
    results for ``str``/``int`` values are cached (bounded).
    """
    if type(value) is str or type(value) is int:
        return _format_header_cached(name, value)
    return _format_header(name, value)


def format_new_header(name: str, value: Union[str, int]) -> bytes:
    """:func:`format_header` for a value seldom seen twice (a recipient's To): not cached."""
    return _format_header(name, value)


@functools.lru_cache(maxsize=4096)
def _format_header_cached(name: str, value: Union[str, int]) -> bytes:
    return _format_header(name, value)


def _format_header(name: str, value: Union[str, int]) -> bytes:
    """One complete header field, ``Canonical-Name: value\\r\\n``, folded, ASCII.

    ``value`` is a str or an int. ``HeaderError`` for an invalid name, a
    value with CR, LF or NUL (checked first), a value this field cannot
    carry (non-ASCII in a structured field, a malformed address list) or one
    that cannot be folded into lines of at most 998 octets.
    """
    if type(name) is not str:
        check_name(name)  # the TypeError (canonical_name's cache would raise its own for a list)
    field = canonical_name(name)  # checks the name: once per name, then cached
    text = value if type(value) is str else _value_text(value)
    _check_injection(field, text, " header value")
    if len(field) + 1 > HARD_LIMIT:
        raise HeaderError(f"header name {name[:40]!r}... is too long for a {HARD_LIMIT}-octet line")
    key = field.lower()
    if len(field) + 2 + len(text) <= SOFT_LIMIT and (
            _ONE_LINE_MAILBOX.fullmatch(text) if key in _ADDRESS_FIELDS
            else key not in _PARAM_FIELDS and _ONE_LINE.fullmatch(text)) and "=?" not in text:
        # What the folder below gives such a value (a Subject, a Message-ID,
        # a To of one plain mailbox): one line as it is (tests/test_headers.py compares the two on random values).
        return f"{field}: {text}\r\n".encode("ascii")
    return _folded(field, key, text)


def _folded(field: str, key: str, text: str) -> bytes:
    """The field laid out by :class:`_Folder`, as its kind (``key``, lower case) asks."""
    items: list[Item]
    if key in _ADDRESS_FIELDS:
        items = _address_items(field, text)
    elif key in _PARAM_FIELDS:
        _check_ascii(field, text, "; encode parameter values with format_params()")
        items = _param_items(text.strip(" \t"))
    elif key in _ID_FIELDS or key in _TOKEN_FIELDS:
        _check_ascii(field, text, " (a structured field cannot carry encoded words)")
        items = _split_wsp(text.strip(" \t"))
    else:
        items = _unstructured_items(text, field)
    return _Folder(field).layout(items)
