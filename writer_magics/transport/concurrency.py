"""A bound on how many streams run at once (a sweep of 12 must not open 12 connections).

:func:`bounded` wraps the openers that :meth:`runner.LoopThread.merge` (and
``execute(openers=...)``) call, so every stream still gets its own task and panel
at once, but at most ``limit`` of them hold a connection; the rest wait in order.

The semaphore is created lazily by the first stream that starts, that is on the
loop thread and inside the running loop. Creating it earlier (on the cell thread)
would be harmless on Python >= 3.10, but this keeps it valid for any loop. One
:func:`bounded` mapping therefore belongs to one loop: make a new one per
``execute()`` call rather than keeping it around.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Callable, Hashable, Mapping
from typing import TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")

#: Sweeps run this many requests at once unless configured otherwise.
DEFAULT_LIMIT = 4


class _Gate:
    """The shared semaphore of one :func:`bounded` call, made on first use (loop thread)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._semaphore: asyncio.Semaphore | None = None

    @property
    def semaphore(self) -> asyncio.Semaphore:
        # Only ever touched from coroutines on the one loop thread: no lock needed.
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.limit)
        return self._semaphore


def bounded(
    streams: Mapping[K, Callable[[], AsyncIterable[T]]],
    limit: int = DEFAULT_LIMIT,
    *,
    on_start: Callable[[K], object] | None = None,
) -> dict[K, Callable[[], AsyncIterable[T]]]:
    """The same openers, of which at most ``limit`` stream at once (first come, first served).

    A stream holds its slot until it ends, fails or is cancelled (Ctrl-C), so a failure
    never blocks the rest. ``on_start(key)`` is called on the loop thread when a stream
    gets its slot, so a caller can start that request's clock then instead of counting
    time spent queued as latency.
    """
    if limit < 1:
        raise ValueError(f"the concurrency limit must be at least 1, not {limit}")
    gate = _Gate(limit)
    return {key: _limited(key, opener, gate, on_start) for key, opener in streams.items()}


def _limited(
    key: K,
    opener: Callable[[], AsyncIterable[T]],
    gate: _Gate,
    on_start: Callable[[K], object] | None,
) -> Callable[[], AsyncIterable[T]]:
    async def stream() -> AsyncIterator[T]:
        async with gate.semaphore:
            if on_start is not None:
                on_start(key)
            iterator = opener().__aiter__()
            try:
                async for item in iterator:
                    yield item
            finally:
                # Close the inner stream (its HTTP response) before the slot is given away.
                aclose = getattr(iterator, "aclose", None)
                if aclose is not None:
                    await aclose()

    return stream
