"""The fields of ``send`` as TypedDicts: a misspelt field name is a type error.

Only type checkers read this module's classes in annotations (every
annotation in the package is a string), so they cost nothing when sending.
``ConnectionFields`` go to ``Session(...)`` and the pools, ``MessageFields``
to ``Session.send(...)`` and as the mappings of ``send_many``, ``SendFields``
(both) to ``smtp.send(...)``. ``from`` is a Python keyword: write ``from_=``
as a keyword argument, ``"from"`` (or ``"from_"``) in a mapping.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Union

from typing import TypedDict

__all__ = ["ConnectionFields", "MessageFields", "SendFields", "BulkFields", "Source"]

#: What ``source=`` takes (see ``smtp.send``): byte chunks, a callable source,
#: ``message(...)``, an ``email.message.Message``, an async iterable (aio only).
Source = Union[Iterable[bytes], Iterable[bytearray], Iterable[memoryview], Callable[[], Any], Any]


class ConnectionFields(TypedDict, total=False):
    server: str
    port: int
    domain: str
    create: Callable[[], Any]
    timeout: Union[float, Mapping[str, float]]
    tls: Union[bool, str]
    tlsmode: str
    starttls: str
    ssl_context: Any
    cafile: str
    capath: str
    verify: bool
    user: str
    password: str
    token: str
    auth: Union[str, Iterable[str]]
    chunking: bool
    pipelining: bool


_MessageFieldsBase = TypedDict("_MessageFieldsBase", {"from": str}, total=False)


class MessageFields(_MessageFieldsBase, total=False):
    from_: str
    rcpt: Union[str, Iterable[str]]
    source: Source
    step: Callable[..., Any]
    dsn: Any
    size: int
    dkim: Any


class BulkFields(MessageFields, total=False):
    """One message of ``send_many``: its fields and the caller's ``key`` (never sent)."""

    key: Any


class SendFields(ConnectionFields, MessageFields, total=False):
    """Every field of ``smtp.send``."""
