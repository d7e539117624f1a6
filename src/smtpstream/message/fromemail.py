"""``from_email(msg)``: an ``email.message.Message`` as a ``message()`` source.

The tree is rebuilt as a message table: each leaf's decoded payload becomes
the part's body, so this library's filters encode it again (base64 for an
attachment, quoted-printable or 7bit for text) and it can be signed with
``dkim=``. Headers are kept in order and decoded (RFC 2047 words and RFC
2231 parameters are written again by :mod:`smtpstream.message.headers`);
the multipart boundaries are new. The envelope is what ``message()`` finds:
From; To, Cc and Bcc (and Bcc is not written).

Differences from sending the Message itself (``smtp.send(source=msg)``):
the body is encoded again, ``Content-Transfer-Encoding`` is chosen here, a
header given more than once (``Received``, ``Comments``) is refused
(a message table has one value per name), and the Resent-* envelope is not
read.
"""
from __future__ import annotations


from .builder import MessageError, MessageSource, message
from . import headers as hdr

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: typing takes milliseconds to import
    from typing import Any

__all__ = ["from_email"]

_PART_FIELDS = ("content-type", "content-transfer-encoding", "content-disposition", "mime-version")


def from_email(msg: Any, *, dkim: Any = None, unsubscribe: Any = None) -> MessageSource:
    """``message(table)`` for the Message ``msg`` (see the module doc); ``dkim`` and
    ``unsubscribe`` as for :func:`~smtpstream.message.message`."""
    import email.message

    if not isinstance(msg, email.message.Message):
        raise TypeError(f"from_email() takes an email.message.Message, got {type(msg).__name__}")
    return message(table(msg), dkim=dkim, unsubscribe=unsubscribe)


def table(msg: Any) -> dict[str, Any]:
    """The message table ``from_email`` builds (a dict ``message()`` takes)."""
    return _part(msg, "message")


def _headers(part: Any, where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in part.items():
        key = name.lower()
        if key in _PART_FIELDS:
            continue
        if key in out:
            raise MessageError(f"{where}: header {name!r} is given more than once: a message table holds"
                               " one value per name")
        out[key] = _text(value)
    return out


def _text(value: Any) -> str:
    # email's header objects are str; a compat32 Header or an undecoded value is made one.
    import email.header

    if isinstance(value, email.header.Header):
        return str(email.header.make_header(email.header.decode_header(value)))
    if isinstance(value, str) and "=?" in value and type(value) is str:
        return str(email.header.make_header(email.header.decode_header(value)))
    return str(value)


def _params(part: Any, header: str, drop: tuple[str, ...] = ()) -> dict[str, str]:
    import email.utils

    params = part.get_params(header=header, unquote=True) or []
    out: dict[str, str] = {}
    for key, value in params[1:]:  # the first is the type (or the disposition) itself
        if key.lower() in drop:
            continue
        out[key.lower()] = email.utils.collapse_rfc2231_value(value)
    return out


def _part(part: Any, where: str) -> dict[str, Any]:
    headers = _headers(part, where)
    ctype = part.get_content_type()
    params = _params(part, "content-type", drop=("boundary",) if part.is_multipart() else ())
    if part.is_multipart():
        subparts = part.get_payload()
        headers["content-type"] = _ctype(ctype, params)
        body: dict[str, Any] = {"parts": [_part(sub, f"{where} part {i}") for i, sub in enumerate(subparts, 1)]}
        if part.preamble:
            body["preamble"] = part.preamble
        if part.epilogue:
            body["epilogue"] = part.epilogue
        return {"headers": headers, "body": body}
    headers["content-type"] = _ctype(ctype, params)
    disposition = part.get_content_disposition()
    if disposition is not None:
        headers["content-disposition"] = hdr.format_params(disposition, _params(part, "content-disposition"))
    payload = part.get_payload(decode=True)
    if payload is None:  # message/rfc822 and the like: the embedded message, as it is
        inner = part.get_payload()
        payload = inner[0].as_bytes() if isinstance(inner, list) and inner else b""
        headers["content-transfer-encoding"] = "8bit" if not payload.isascii() else "7bit"
    return {"headers": headers, "body": bytes(payload)}


def _ctype(ctype: str, params: dict[str, str]) -> str:
    return hdr.format_params(ctype, params) if params else ctype
