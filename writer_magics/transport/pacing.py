"""How many requests of a batch run at once, adapting to rate limits (pure, clock injected).

:class:`Pacer` is an additive-increase / multiplicative-decrease window, as TCP uses
for congestion: it starts at ``WriterMagics.max_concurrency``; a 429 halves it (at
most once per round: answers to requests sent before the last cut do not cut again)
and the rate-limited request waits the server's ``Retry-After`` (or
:data:`DEFAULT_WAIT`) before it is sent again; every success grows the window by
``1 / window``, so after a full window of successes one more request runs at once,
up to the maximum again.
"""

from __future__ import annotations

import math

__all__ = ["DEFAULT_WAIT", "MAX_RATE_LIMITS", "MAX_WAIT", "Pacer"]

#: Seconds a rate-limited request waits when the server gave no Retry-After.
DEFAULT_WAIT = 1.0
#: A Retry-After longer than this is capped (a batch should not sleep for an hour).
MAX_WAIT = 60.0
#: Rate-limit answers one row may get before it fails with the 429's reason.
MAX_RATE_LIMITS = 10


class Pacer:
    """The concurrency window of one batch."""

    def __init__(self, maximum: int) -> None:
        if maximum < 1:
            raise ValueError(f"the concurrency limit must be at least 1, not {maximum}")
        self.maximum = maximum
        self.window = float(maximum)
        self.last_cut = -math.inf
        #: 429 answers seen (for the progress view).
        self.rate_limited_count = 0

    @property
    def allowed(self) -> int:
        """Requests that may be in flight now (at least one)."""
        return max(1, min(self.maximum, int(self.window)))

    def rate_limited(self, started: float, retry_after: float | None, now: float) -> float:
        """A request sent at ``started`` got a 429 at ``now``; returns seconds it waits."""
        self.rate_limited_count += 1
        if started >= self.last_cut:
            self.window = max(1.0, self.window / 2)
            self.last_cut = now
        if retry_after is None or not math.isfinite(retry_after) or retry_after <= 0:
            return DEFAULT_WAIT
        return min(retry_after, MAX_WAIT)

    def succeeded(self) -> None:
        """One answer arrived: grow back towards the maximum."""
        if self.window < self.maximum:
            self.window = min(float(self.maximum), self.window + 1.0 / self.window)
