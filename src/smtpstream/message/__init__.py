"""Streaming message construction: LuaSocket's ``smtp.message`` and friends.

``message(mesgt)`` turns a message table into a source of byte chunks;
``attachment``, ``inline``, ``text``, ``html``, ``alternative``, ``related``
and ``cached`` build the parts users usually want; ``template(mesgt)``
prepares a table once for many messages that differ in a few headers. See ``builder`` for the
table's shape and where we depart from LuaSocket.
"""
from __future__ import annotations

import os

from .bodies import Body, CachedBody
from .builder import MessageError, MessageSource, SharedBody, encode_text, message, shared
from .headers import HeaderError
from .parts import alternative, attachment, cached, html, inline, related, text
from .fromemail import from_email
from .template import MessageTemplate, template

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: typing takes milliseconds to import
    from typing import Any

__all__ = [
    "message", "MessageSource", "MessageError", "HeaderError", "Body", "CachedBody",
    "attachment", "inline", "text", "html", "alternative", "related", "cached",
    "encode_text", "write_eml", "shared", "SharedBody", "from_email", "template", "MessageTemplate",
]


def write_eml(source: "MessageSource | dict[Any, Any]", path: "str | os.PathLike[str]") -> int:
    """Write a message (a ``MessageSource`` or a message table) to ``path``; return its size.

    The chunks go through an LTN12 file sink, so memory stays constant.
    """
    import os

    from .. import ltn12

    if not isinstance(source, MessageSource):
        source = message(source)
    handle = open(path, "wb")
    try:
        ltn12.pump.all(source, ltn12.sink.file(handle))
    finally:
        handle.close()  # also when the source fails: the sink closes only at the end
    return os.path.getsize(path)
