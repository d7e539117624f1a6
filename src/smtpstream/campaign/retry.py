"""When a deferred recipient is tried again, and when it is given up."""
from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["RetrySchedule", "DEFAULT_DELAYS"]

#: 1, 5, 15 and 60 minutes; the first retry no sooner than a greylisting
#: server's usual minimum (60 s to 5 min).
DEFAULT_DELAYS = (60.0, 300.0, 900.0, 3600.0)


class RetrySchedule:
    """``delays[n-1]`` seconds after a recipient's n-th deferral (the last delay again
    after the list's end); a deferral ``give_up_after`` seconds or more after the
    first one makes the recipient *failed* with that reply."""

    def __init__(self, delays: Sequence[float] = DEFAULT_DELAYS, give_up_after: float = 86400.0) -> None:
        delays = tuple(delays)
        if not delays:
            raise ValueError("a retry schedule needs at least one delay")
        for d in (*delays, give_up_after):
            if isinstance(d, bool) or not isinstance(d, (int, float)) or not math.isfinite(d) or d < 0:
                raise ValueError(f"retry delays and give_up_after must be finite seconds >= 0, got {d!r}")
        self.delays = tuple(float(d) for d in delays)
        self.give_up_after = float(give_up_after)

    def next_attempt(self, deferrals: int, first_deferred: float, now: float) -> float | None:
        """The time of the next try after the ``deferrals``-th deferral (1 for the
        first) at ``now``, or None when the recipient is given up."""
        if now - first_deferred >= self.give_up_after:
            return None
        return now + self.delays[min(deferrals, len(self.delays)) - 1]

    def as_json(self) -> dict:
        return {"delays": list(self.delays), "give_up_after": self.give_up_after}
