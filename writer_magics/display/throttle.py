"""Rate and byte limits for live updates, on an injected clock.

Timers do not fire while a cell runs, so the read loop itself asks "may I update
now?" on every event. Both limits are plain objects so they are tested with a
fake clock and no sleeps.
"""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], float]


class Throttle:
    """At most ``max_per_second`` updates a second; the first one is never delayed."""

    def __init__(self, max_per_second: float = 10.0, clock: Clock = time.monotonic) -> None:
        if max_per_second <= 0:
            raise ValueError("max_per_second must be positive")
        self.interval = 1.0 / max_per_second
        self.clock = clock
        self.last: float | None = None
        self.count = 0

    def due(self) -> bool:
        """True when an update now would keep within the rate."""
        return self.last is None or self.clock() - self.last >= self.interval

    def mark(self) -> None:
        """Record that an update was just sent."""
        self.last = self.clock()
        self.count += 1


class ByteBudget:
    """Keeps bytes sent below ``ratio`` x bytes produced (+ ``slack`` for the start).

    Re-sending an unfinished tail costs its size each time; a budget tied to the
    answer's size keeps the total linear whatever the answer's shape or speed.
    """

    def __init__(self, ratio: float = 1.6, slack: int = 512) -> None:
        self.ratio = ratio
        self.slack = slack
        self.sent = 0

    def allows(self, cost: int, produced: int) -> bool:
        return self.sent + cost <= self.ratio * produced + self.slack

    def spend(self, cost: int) -> None:
        self.sent += cost
