"""SASL mechanisms for SMTP AUTH (RFC 4954) as pure functions, and the choice among them.

Each mechanism is a small object: ``initial()`` gives the initial response
(sent on the AUTH line, or None), ``respond(challenge)`` answers one 334
challenge (decoded bytes in, raw bytes out; the caller base64-encodes).
Nothing here logs, and no error message includes a credential.

Which mechanism (:func:`choose`), from what the server offers:

* with an OAuth 2 ``token``: XOAUTH2 (Google/Microsoft style);
* over TLS: PLAIN, then LOGIN, then CRAM-MD5. On an encrypted channel PLAIN
  is the standard one (one round trip, RFC 4616); CRAM-MD5 adds nothing and
  obliges the server to keep a reversible password;
* without TLS (only with ``starttls="off"``, or "opportunistic" when the
  server has no STARTTLS): CRAM-MD5 first, since it never puts the password
  on the wire, then PLAIN, then LOGIN.

LuaSocket prefers LOGIN over PLAIN and finds them by substring over the
whole EHLO text (spec 5.4 item 8); we match whole keywords of the AUTH line.
"""
from __future__ import annotations

import binascii

from .errors import LocalProtocolError

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: typing takes milliseconds to import
    from typing import Iterable

__all__ = [
    "plain",
    "login",
    "cram_md5",
    "xoauth2",
    "choose",
    "Mechanism",
    "PLAIN",
    "LOGIN",
    "CRAM_MD5",
    "XOAUTH2",
    "MECHANISMS",
]


def b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")  # base64.b64encode, without importing re


def unb64(text: str) -> bytes:
    """A challenge decoded, strictly: ValueError for anything but base64 text."""
    import base64  # here: it imports re, and only a mechanism with challenges needs it

    return base64.b64decode(text, validate=True)


def _utf8(value: str, what: str) -> bytes:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be str, got {type(value).__name__}")
    return value.encode("utf-8")


def plain(user: str, password: str, authzid: str = "") -> bytes:
    """RFC 4616 message: ``authzid NUL user NUL password``."""
    parts = (_utf8(authzid, "authzid"), _utf8(user, "user"), _utf8(password, "password"))
    if any(b"\0" in p for p in parts):
        raise LocalProtocolError("AUTH PLAIN: a NUL in the user name or password cannot be sent")
    return b"\0".join(parts)


def login(challenge: bytes, user: str, password: str, step: int) -> bytes:
    """The LOGIN answer to one prompt: the user name or the password.

    Servers prompt ``Username:`` then ``Password:`` (base64-decoded); the prompt
    decides when it names one, otherwise the order does (step 0 = user).
    """
    prompt = challenge.lower()
    if b"pass" in prompt:
        return _utf8(password, "password")
    if b"user" in prompt or b"name" in prompt:
        return _utf8(user, "user")
    return _utf8(user if step == 0 else password, "credential")


def cram_md5(challenge: bytes, user: str, password: str) -> bytes:
    """RFC 2195: ``user SP hex(HMAC-MD5(password, challenge))``."""
    import hashlib  # here: OpenSSL's hash table costs milliseconds to load; only CRAM-MD5 needs it
    import hmac

    digest = hmac.new(_utf8(password, "password"), challenge, hashlib.md5).hexdigest()
    return _utf8(user, "user") + b" " + digest.encode("ascii")


def xoauth2(user: str, token: str) -> bytes:
    """The XOAUTH2 initial response: ``user=U ^A auth=Bearer T ^A ^A``."""
    u, t = _utf8(user, "user"), _utf8(token, "token")
    if b"\x01" in u or b"\x01" in t:
        raise LocalProtocolError("XOAUTH2: a \\x01 in the user name or token cannot be sent")
    return b"user=" + u + b"\x01auth=Bearer " + t + b"\x01\x01"


class Mechanism:
    """One AUTH exchange. Subclasses set ``name`` and override the two steps."""

    name = ""

    def __init__(self, user: str, secret: str) -> None:
        self._user = user
        self._secret = secret  # password, or the OAuth token
        self._step = 0

    def initial(self) -> bytes | None:
        return None

    def respond(self, challenge: bytes) -> bytes:
        raise LocalProtocolError(f"AUTH {self.name}: unexpected challenge from the server")

    def __repr__(self) -> str:  # never the secret
        return f"<{type(self).__name__} user={self._user!r}>"


class PLAIN(Mechanism):
    name = "PLAIN"

    def initial(self) -> bytes:
        return plain(self._user, self._secret)


class LOGIN(Mechanism):
    name = "LOGIN"

    def respond(self, challenge: bytes) -> bytes:
        if self._step > 1:
            raise LocalProtocolError("AUTH LOGIN: more than two prompts")
        answer = login(challenge, self._user, self._secret, self._step)
        self._step += 1
        return answer


class CRAM_MD5(Mechanism):
    name = "CRAM-MD5"

    def respond(self, challenge: bytes) -> bytes:
        if self._step:
            raise LocalProtocolError("AUTH CRAM-MD5: more than one challenge")
        self._step = 1
        if not challenge:
            raise LocalProtocolError("AUTH CRAM-MD5: the server sent an empty challenge")
        return cram_md5(challenge, self._user, self._secret)


class XOAUTH2(Mechanism):
    name = "XOAUTH2"

    def initial(self) -> bytes:
        return xoauth2(self._user, self._secret)

    def respond(self, challenge: bytes) -> bytes:
        # A 334 after the token carries a JSON error; the client answers with
        # an empty line and the server then sends the final 5xx.
        return b""


MECHANISMS: dict[str, type[Mechanism]] = {m.name: m for m in (PLAIN, LOGIN, CRAM_MD5, XOAUTH2)}

_SECURE_ORDER = ("PLAIN", "LOGIN", "CRAM-MD5")
_CLEAR_ORDER = ("CRAM-MD5", "PLAIN", "LOGIN")


def choose(
    offered: Iterable[str], *, secure: bool, token: bool, wanted: Iterable[str] | str | None = None
) -> str | None:
    """The mechanism to use, or None when the server offers none we can do.

    ``wanted`` (one name or a list, in order of preference) overrides the
    default order; ``token`` means the secret is an OAuth 2 bearer token.
    """
    offered = {m.upper() for m in offered}
    if wanted is not None:
        order = (wanted,) if isinstance(wanted, str) else tuple(wanted)
        if not all(isinstance(m, str) for m in order):
            raise TypeError(f"auth must be a mechanism name or a list of names, got {wanted!r}")
        order = tuple(m.upper() for m in order)
        unknown = [m for m in order if m not in MECHANISMS]
        if unknown:
            raise ValueError(f"unsupported AUTH mechanism(s) {unknown}; known: {sorted(MECHANISMS)}")
    elif token:
        order = ("XOAUTH2",)
    else:
        order = _SECURE_ORDER if secure else _CLEAR_ORDER
    for name in order:
        if name in offered:
            return name
    return None
