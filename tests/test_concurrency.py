"""LoopThread.merge(limit=N): N streams at most, in order, slots freed on failure or cancel."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from typing import cast

import pytest

from writer_magics.transport.loop import Item, LoopThread


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    thread = LoopThread("test-concurrency")
    yield thread
    thread.close()


class Tracker:
    """Counts streams running at once; records start order and the thread they ran on."""

    def __init__(self) -> None:
        self.active = 0
        self.peak = 0
        self.started: list[int] = []
        self.closed: list[int] = []
        self.threads: set[int] = set()

    def opener(
        self, key: int, items: int = 3, delay: float = 0.02, fail: bool = False
    ) -> Callable[[], AsyncIterator[int]]:
        async def stream() -> AsyncIterator[int]:
            self.active += 1
            self.peak = max(self.peak, self.active)
            self.started.append(key)
            self.threads.add(threading.get_ident())
            try:
                for i in range(items):
                    await asyncio.sleep(delay)
                    if fail and i == 1:
                        raise RuntimeError(f"stream {key} broke")
                    yield key * 100 + i
            finally:
                self.active -= 1
                self.closed.append(key)

        return stream


def test_at_most_limit_streams_run_at_once_and_all_finish(loop: LoopThread) -> None:
    tracker = Tracker()
    items = list(loop.merge({k: tracker.opener(k) for k in range(6)}, limit=2))
    values = sorted(i.value for i in items if not i.done and i.value is not None)
    assert values == sorted(k * 100 + i for k in range(6) for i in range(3))
    assert sum(i.done for i in items) == 6
    assert not any(i.error for i in items)
    assert tracker.peak == 2
    assert tracker.started == list(range(6))  # first come, first served


def test_without_a_bound_they_all_overlap(loop: LoopThread) -> None:
    tracker = Tracker()
    list(loop.merge({k: tracker.opener(k) for k in range(5)}))
    assert tracker.peak == 5
    tracker = Tracker()
    list(loop.merge({k: tracker.opener(k) for k in range(5)}, limit=10))
    assert tracker.peak == 5


def test_a_failure_frees_its_slot_and_fails_only_its_stream(loop: LoopThread) -> None:
    tracker = Tracker()
    openers = {k: tracker.opener(k, fail=(k == 0)) for k in range(4)}
    items = list(loop.merge(openers, limit=1))
    errors = {i.key: i.error for i in items if i.done and i.error is not None}
    assert list(errors) == [0]
    assert "stream 0 broke" in str(errors[0])
    assert tracker.peak == 1
    assert sorted(tracker.closed) == [0, 1, 2, 3]


def test_closing_early_cancels_running_and_queued_streams(loop: LoopThread) -> None:
    tracker = Tracker()
    openers = {k: tracker.opener(k, items=50, delay=0.05) for k in range(4)}
    merged = cast(Generator[Item[int, int], None, None], loop.merge(openers, limit=2))
    first = next(merged)
    assert not first.done
    merged.close()  # what Ctrl-C in the cell does
    assert tracker.active == 0
    assert tracker.started[:2] == [0, 1]
    # runner cancels the tasks one by one from the cell thread, so a queued stream may
    # get a freed slot just before its own cancel arrives; it is closed at once too.
    assert sorted(tracker.closed) == sorted(tracker.started)


def test_on_start_is_called_when_a_slot_is_granted(loop: LoopThread) -> None:
    tracker = Tracker()
    granted: list[tuple[int, int]] = []
    streams = {k: tracker.opener(k) for k in range(3)}
    list(loop.merge(streams, limit=1, on_start=lambda key: granted.append((key, tracker.active))))
    assert granted == [(0, 0), (1, 0), (2, 0)]  # each starts only after the previous ended


def test_the_semaphore_is_made_lazily_on_the_loop_thread(loop: LoopThread) -> None:
    """Building the mapping on the cell thread touches no loop; it runs on the loop thread."""
    tracker = Tracker()
    merged = loop.merge({k: tracker.opener(k) for k in range(3)}, limit=2)  # nothing runs yet
    list(merged)
    loop_thread = loop.run(_thread_id)
    assert tracker.threads == {loop_thread}
    assert loop_thread != threading.get_ident()


async def _thread_id() -> int:
    return threading.get_ident()


def test_limit_must_be_positive(loop: LoopThread) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        loop.merge({}, limit=0)  # at the call, before anything is iterated
