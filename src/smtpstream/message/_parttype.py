"""The ``Part`` TypedDict, apart: typing takes milliseconds to import, so
:mod:`smtpstream.message.parts` imports this module on first use of ``Part`` only."""
from __future__ import annotations

from typing import Any, TypedDict


class Part(TypedDict, total=False):
    """A part table, as the helpers here return it (``message()`` takes any mapping of this shape)."""

    headers: dict[str, Any]
    body: Any
