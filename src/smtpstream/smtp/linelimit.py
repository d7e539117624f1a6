"""RFC 5321 4.5.3.1.6: a text line is at most 1000 octets with its CRLF.

:class:`LineLimit` watches the message data as the engine sends it (already
CRLF-normalised, and in DATA mode dot-stuffed) and raises
:class:`SMTPSourceError` naming the first line over the limit, before the end
of data goes out, so the server never takes a message it may cut or refuse
later. No I/O here.
"""
from __future__ import annotations

from .errors import SMTPSourceError

__all__ = ["MAX_LINE", "LineLimit"]

#: Octets of a line before its CRLF (1000 with it).
MAX_LINE = 998


class LineLimit:
    """Counts the lines of CRLF data given chunk by chunk; refuses one over :data:`MAX_LINE`.

    ``stuffed``: the data is dot-stuffed (DATA mode), so a line's leading
    dot is the transparency dot, which the limit does not count.
    """

    __slots__ = ("line", "_column", "_dotted")

    def __init__(self) -> None:
        self.line = 1  # the number of the line being read, from 1
        self._column = 0  # octets of that line so far (a CR included)
        self._dotted = False  # it starts with a (stuffing) dot

    def __call__(self, data: bytes, stuffed: bool) -> None:
        if not data:
            return
        segments = bytes(data).split(b"\n")  # every LF ends a line: the data is normalised
        head = segments[0]
        if self._column == 0 and head:
            self._dotted = stuffed and head[:1] == b"."
        column = self._column + len(head)
        if len(segments) == 1:
            self._column = column
            # A CR may end it now and its LF come next: one octet of slack.
            if column - self._dotted > MAX_LINE + 1:
                self._refuse(self.line)
            return
        if column - 1 - self._dotted > MAX_LINE:  # the carried line ends here, CR not counted
            self._refuse(self.line)
        middle = segments[1:-1]
        if middle and max(map(len, middle)) > MAX_LINE + 1:  # quick test; exact below
            for index, segment in enumerate(middle, self.line + 1):
                dot = stuffed and segment[:1] == b"."
                if len(segment) - 1 - dot > MAX_LINE:
                    self._refuse(index)
        self.line += len(segments) - 1
        tail = segments[-1]
        self._column = len(tail)
        self._dotted = stuffed and tail[:1] == b"."

    def end(self) -> None:
        """The data is over: its last line (which the engine will end with CRLF) is checked too."""
        if self._column - self._dotted > MAX_LINE:
            self._refuse(self.line)

    @staticmethod
    def _refuse(line: int) -> None:
        raise SMTPSourceError(
            f"line {line} of the message source is longer than {MAX_LINE} octets before its CRLF"
            " (RFC 5321 4.5.3.1.6 allows 1000 with it): the transaction was abandoned before its"
            " end of data, nothing was delivered; wrap the text, or give the part a"
            " quoted-printable or base64 encoding",
            phase="body",
        )
