"""The log of received requests that tests assert on."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any


@dataclass
class ReceivedRequest:
    """One HTTP request the server received (updated in place as the response goes out)."""

    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: Any  # parsed JSON or None
    started: float  # time.monotonic() at arrival
    ended: float | None = None  # when the response finished or the connection broke
    status: int | None = None  # status sent
    disconnected: bool = False  # client closed the connection before the response finished


class RequestLog:
    """Thread-safe request log; ``items`` is the list tests read."""

    def __init__(self) -> None:
        self.items: list[ReceivedRequest] = []
        self._cond = threading.Condition()

    def add(self, record: ReceivedRequest) -> None:
        """Append a request at arrival."""
        with self._cond:
            self.items.append(record)
            self._cond.notify_all()

    def finish(self, record: ReceivedRequest, disconnected: bool = False) -> None:
        """Mark a request finished (``ended`` set) and wake waiters."""
        with self._cond:
            record.disconnected = record.disconnected or disconnected
            record.ended = time.monotonic()
            self._cond.notify_all()

    def clear(self) -> None:
        """Forget all requests (in place: ``items`` keeps its identity)."""
        with self._cond:
            del self.items[:]

    def wait(self, n: int, timeout: float) -> list[ReceivedRequest]:
        """Wait until at least ``n`` requests arrived and the first ``n`` have finished."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                done = len(self.items) >= n and all(r.ended is not None for r in self.items[:n])
                if done:
                    return list(self.items)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"expected {n} finished requests within {timeout}s; got "
                        f"{sum(r.ended is not None for r in self.items)} of {len(self.items)}"
                    )
                self._cond.wait(remaining)
