"""Ready-made parts: attachments, text and HTML, alternative and related groups.

Each function returns an ordinary part table (``{"headers": ..., "body": ...}``
or a multipart table) that ``message()`` accepts anywhere a part goes, so
they mix freely with hand-written LuaSocket-style tables.
"""
from __future__ import annotations

import os

from . import headers as hdr
from .bodies import (
    DEFAULT_CACHE_THRESHOLD,
    Base64FileBody,
    Base64SourceBody,
    Body,
    BytesBody,
    CachedBody,
)
from .._lazyre import Pattern
from ..filters import CleanLines
from .builder import MessageError, _base64, encode_text

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: typing takes milliseconds to import
    from typing import Any, BinaryIO, Union

    from ._parttype import Part

    PathLike = Union[str, "os.PathLike[str]"]

__all__ = ["attachment", "inline", "text", "html", "alternative", "related", "cached", "Part"]


if not TYPE_CHECKING:  # hidden from type checkers: they see the import above
    def __getattr__(name: str) -> Any:
        if name == "Part":  # a TypedDict: typing only for those who use it
            from ._parttype import Part

            return Part
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _guess_type(filename: str | None) -> str:
    if filename:
        import mimetypes  # here: it pulls in urllib.parse, and reads its tables on first use anyway

        guessed, encoding = mimetypes.guess_type(filename, strict=False)
        if guessed and not encoding:
            return guessed
    return "application/octet-stream"


def _name_fallback(filename: str) -> str:
    # Clients that read only Content-Type's name= get the RFC 2047 form, the
    # de facto convention for non-ASCII names there.
    return filename if filename.isascii() else hdr.rfc2047_word_fallback(filename)


def _body_for(source: Any) -> tuple[Body, str | None]:
    """A base64 body for a path, an open binary file, bytes or a source; and a name."""
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.exists(path):
            raise FileNotFoundError(f"attachment not found: {path}")
        return Base64FileBody(path), os.path.basename(path)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return BytesBody(CleanLines(_base64(bytes(source)))), None
    if hasattr(source, "read"):
        name = getattr(source, "name", None)
        return Base64FileBody(source), os.path.basename(name) if isinstance(name, str) else None
    if not (callable(source) or hasattr(source, "__iter__")):
        raise TypeError(f"attachment() takes a path, a binary file, bytes or a source, got {type(source).__name__}")
    return Base64SourceBody(source), None


_TOKEN = Pattern(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*\Z")


def _check_token(what: str, value: Any) -> None:
    """A MIME type or subtype name alone: parameters (``plain; charset=utf-7``) are refused."""
    if not isinstance(value, str) or not _TOKEN.match(value):
        raise MessageError(f"{what} must be a bare MIME token (no parameters), got {value!r}")


def attachment(
    source: Union[PathLike, BinaryIO, bytes, Any],
    filename: str | None = None,
    content_type: str | None = None,
    *,
    disposition: str = "attachment",
    content_id: str | None = None,
    description: str | None = None,
) -> Part:
    """A base64 attachment from a path, an open binary file, bytes or any source.

    The file is read lazily, in blocks, as the message is sent. The content
    type is guessed from the file name unless given. The name is written as
    RFC 2231 ``filename*=`` (or plain ``filename=`` when ASCII) in
    Content-Disposition and as ``name=`` in Content-Type for older clients.
    """
    body, guessed_name = _body_for(source)
    name = filename if filename is not None else guessed_name
    if name and "=?" in name and "?=" in name:
        # Readers decode RFC 2047 words even where RFC 2047 forbids them: the
        # name shown would not be the name given.
        raise MessageError(f"attachment file name {name!r} looks like an RFC 2047 encoded word")
    if content_type is not None:
        kind, slash, sub = content_type.partition("/") if isinstance(content_type, str) else ("", "", "")
        _check_token("attachment() content_type", kind if slash else content_type)
        _check_token("attachment() content_type", sub)
    ctype = content_type or _guess_type(name)
    headers: dict[str, Any] = {}
    if name:
        headers["content-type"] = hdr.format_params(ctype, {"name": _name_fallback(name)})
        headers["content-disposition"] = hdr.format_params(disposition, {"filename": name})
    else:
        headers["content-type"] = ctype
        headers["content-disposition"] = disposition
    headers["content-transfer-encoding"] = "base64"
    if content_id is not None:
        headers["content-id"] = content_id if content_id.startswith("<") else f"<{content_id}>"
    if description is not None:
        headers["content-description"] = description
    return {"headers": headers, "body": body}


def inline(source: Union[PathLike, BinaryIO, bytes, Any], content_id: str, **options: Any) -> Part:
    """An inline part (an image an HTML part shows as ``cid:<content_id>``)."""
    return attachment(source, disposition="inline", content_id=content_id, **options)


def text(content: Union[str, bytes], subtype: str = "plain", charset: str = "utf-8") -> Part:
    """A text part that picks 7bit, quoted-printable or base64 from its content."""
    if not isinstance(content, (str, bytes, bytearray, memoryview)):
        # bytes(5) would be five NUL bytes (and bytes(10**9) a gigabyte)
        raise TypeError(f"text() takes str or bytes, got {type(content).__name__}")
    _check_token("text() subtype", subtype)
    data = content.encode(charset) if isinstance(content, str) else bytes(content)
    used = "us-ascii" if data.isascii() else charset
    cte, encoded = encode_text(data)
    ctype = _TEXT_TYPES.get((subtype, used))
    if ctype is None:
        ctype = hdr.format_params(f"text/{subtype}", {"charset": used})
        if len(_TEXT_TYPES) < 64:  # a few subtypes and charsets in practice; more are formatted each time
            _TEXT_TYPES[subtype, used] = ctype
    return {
        "headers": {
            "content-type": ctype,
            "content-transfer-encoding": cte,
        },
        "body": BytesBody(encoded, short_lines=True),  # encode_text keeps every line within 998
    }


_TEXT_TYPES: dict[tuple[str, str], str] = {}  # (subtype, charset) -> the Content-Type value text() writes


def html(content: Union[str, bytes], charset: str = "utf-8") -> Part:
    """An HTML part (``text/html``), encoded as :func:`text` does."""
    return text(content, "html", charset)


def _as_part(part: Any) -> Any:
    return text(part) if isinstance(part, str) else part


def alternative(*parts: Any) -> Part:
    """``multipart/alternative``: the same content in several forms, plainest first.

    ``alternative("plain text", html("<p>rich</p>"))``: a ``str`` is a text part.
    """
    if not parts:
        raise MessageError("alternative() needs at least one part")
    return {"headers": {"content-type": "multipart/alternative"}, "body": {"parts": [_as_part(p) for p in parts]}}


def related(root: Any, *resources: Any) -> Part:
    """``multipart/related``: an HTML root and the inline parts it refers to by Content-ID."""
    return {
        "headers": {"content-type": 'multipart/related; type="text/html"'},
        "body": {"parts": [_as_part(root), *resources]},
    }


def cached(part: Part, threshold: int = DEFAULT_CACHE_THRESHOLD) -> Part:
    """The same part, with its encoded body produced once and replayed after that.

    For sending one attachment in many messages: build the part once with
    ``cached(attachment(...))`` and put it in every message. Encoded bytes up
    to ``threshold`` stay in memory; above that they go to a temporary file.
    """
    body = part.get("body")
    if not isinstance(body, Body):
        raise MessageError("cached() takes a leaf part made by attachment(), text() or html()")
    if isinstance(body, CachedBody):
        return part
    return {"headers": dict(part.get("headers") or {}), "body": CachedBody(body, threshold)}
