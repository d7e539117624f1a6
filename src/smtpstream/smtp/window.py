"""How many messages one connection keeps in flight in BDAT mode, and when that drops to one.

With CHUNKING and PIPELINING nothing forces the client to wait between
messages: ``MAIL RCPT... BDAT n LAST RSET`` of message after message go out
while the server answers the earlier ones (the ``RSET`` leaves a clean state
whatever the verdict was, so the next ``MAIL`` never meets a transaction a
server kept open). :class:`Window` holds the size allowed (``window=`` of a
session or pool, default :data:`DEFAULT_WINDOW`) and drops it to 1 -- one
message at a time, waiting for each verdict -- for good once a server
misbehaves: a 503 to MAIL, a reply that breaks the protocol, a refused
pipelined RSET, a connection lost with messages in flight. One object is
shared by a session's reconnections and by all the connections of a pool.
DATA mode is one message per round trip whatever the window (RFC 2920: DATA
ends a group).
"""
from __future__ import annotations

__all__ = ["DEFAULT_WINDOW", "Window", "window_of"]

#: Messages in flight per connection in BDAT mode unless ``window=`` says otherwise.
DEFAULT_WINDOW = 16


class Window:
    """The window of a session or pool: ``size`` as configured, ``limit`` as allowed now."""

    __slots__ = ("size", "limit", "reason")

    def __init__(self, size: int = DEFAULT_WINDOW) -> None:
        if isinstance(size, bool) or not isinstance(size, int):
            raise TypeError(f"window must be an int, got {type(size).__name__}")
        if size < 1:
            raise ValueError(f"window must be at least 1, got {size}")
        self.size = size
        self.limit = size
        #: Why the window dropped to 1, or None while it has not.
        self.reason: str | None = None

    def shrink(self, reason: str) -> None:
        """One message at a time from now on (a server that misbehaves with more)."""
        if self.limit > 1:
            self.limit = 1
            self.reason = reason

    def __repr__(self) -> str:
        why = f", dropped to 1: {self.reason}" if self.reason else ""
        return f"Window(size={self.size}, limit={self.limit}{why})"


def window_of(value: object) -> Window:
    """A ``window=`` field as a :class:`Window`: an int makes a new one, a Window is shared."""
    if value is None:
        return Window()
    if isinstance(value, Window):
        return value
    return Window(value)  # type: ignore[arg-type]
