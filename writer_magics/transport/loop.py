"""A private asyncio loop in a daemon thread, driven from the (synchronous) cell.

The kernel's own loop is busy running the cell, so the async client runs here
instead (IPython's ``%%script`` does the same); nothing patches the kernel's loop.
Events cross back to the cell thread through a queue so that every display call
happens on the cell thread. A ``KeyboardInterrupt`` (kernel interrupt) lands in the
cell thread while it waits on that queue; we cancel the tasks, wait briefly until
their HTTP streams are closed, and re-raise.

The loop thread also owns the concurrency bound of a sweep (a sweep of 12 must not
open 12 connections): ``merge(streams, limit=N)`` still gives every stream its own
task and panel at once, but at most ``N`` of them hold a connection; the rest wait in
order. The semaphore is made lazily by the first stream that starts, that is on the
loop thread inside the running loop, and belongs to that one ``merge`` call.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Hashable,
    Mapping,
)
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)

#: How long cancellation may take before control goes back to the user anyway.
CANCEL_GRACE_SECONDS = 0.8
#: How often the cell thread wakes while waiting (keeps Ctrl-C responsive everywhere).
POLL_SECONDS = 0.1


@dataclass(slots=True)
class Item(Generic[K, T]):
    """One thing a stream produced: an event, or the exception that ended it.

    Not frozen: one is made per event on the loop thread, and a frozen dataclass's
    ``__init__`` costs five times as much; nothing changes an Item after it is made.
    """

    key: K
    value: T | None = None
    error: BaseException | None = None
    done: bool = False


class LoopThread:
    """Owns one event loop on one daemon thread, started lazily, closed on unload."""

    def __init__(self, name: str = "writer-magics-loop") -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._thread is None or not self._thread.is_alive():
                self._loop = asyncio.new_event_loop()
                ready = threading.Event()
                self._thread = threading.Thread(
                    target=self._run, args=(self._loop, ready), name=self._name, daemon=True
                )
                self._thread.start()
                ready.wait()
            return self._loop

    @staticmethod
    def _run(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        loop.run_forever()

    def run(self, make: Callable[[], Awaitable[T]]) -> T:
        """Run one coroutine to completion; Ctrl-C cancels it."""
        finished = threading.Event()
        future = asyncio.run_coroutine_threadsafe(_call(make, finished), self.loop)
        try:
            while True:
                try:
                    return future.result(timeout=POLL_SECONDS)
                except TimeoutError:
                    continue
        except BaseException:
            _cancel_and_wait([future], [finished])
            raise

    def merge(
        self,
        streams: Mapping[K, Callable[[], AsyncIterable[T]]],
        *,
        limit: int | None = None,
        on_start: Callable[[K], object] | None = None,
        on_idle: Callable[[], object] | None = None,
    ) -> Generator[Item[K, T], None, None]:
        """Run several async streams at once and yield their items as they arrive.

        Each stream ends with one ``Item(done=True)`` (with ``error`` when it failed),
        so one failed stream does not stop the others. Closing the generator early
        (``close()``; Ctrl-C while waiting) cancels every stream that is still running.

        ``limit``: at most this many streams run at once (first come, first served; a
        stream holds its slot until it ends, fails or is cancelled, so a failure never
        blocks the rest); ``None`` runs them all at once. ``on_start(key)`` is called on
        the loop thread when a stream gets its slot, so a caller can start that
        request's clock then instead of counting time spent queued as latency.
        ``on_idle()`` is called on the consuming (cell) thread each time no item
        arrived for ``POLL_SECONDS`` (0.1 s), so a live view's timers tick while the
        streams are quiet (first-token latency); it costs nothing while items flow.
        Raises :class:`ValueError` at once when ``limit`` is less than 1.
        """
        return _flat(self.merge_batches(streams, limit=limit, on_start=on_start, on_idle=on_idle))

    def merge_batches(
        self,
        streams: Mapping[K, Callable[[], AsyncIterable[T]]],
        *,
        limit: int | None = None,
        on_start: Callable[[K], object] | None = None,
        on_idle: Callable[[], object] | None = None,
    ) -> Generator[list[Item[K, T]], None, None]:
        """:meth:`merge`, its items in the lists they crossed threads in.

        A list holds one stream's items, in order (what one network read decoded, or
        more when the cell thread was busy); a stream's ``done`` item ends its list. A
        consumer can treat a run of a fast stream at once (``send.joined``). Same
        arguments, errors and cancellation as :meth:`merge`.
        """
        if limit is not None and limit < 1:
            raise ValueError(f"the concurrency limit must be at least 1, not {limit}")
        gate = _Gate(limit) if limit is not None else None
        if gate is not None or on_start is not None:
            streams = {key: _limited(key, make, gate, on_start) for key, make in streams.items()}
        return self._merge(streams, on_idle)

    def _merge(
        self,
        streams: Mapping[K, Callable[[], AsyncIterable[T]]],
        on_idle: Callable[[], object] | None = None,
    ) -> Generator[list[Item[K, T]], None, None]:
        inbox: queue.SimpleQueue[list[Item[K, T]]] = queue.SimpleQueue()
        finished = [threading.Event() for _ in streams]
        futures = [
            asyncio.run_coroutine_threadsafe(_pump(key, make, inbox, done), self.loop)
            for (key, make), done in zip(streams.items(), finished, strict=True)
        ]
        remaining = len(futures)
        try:
            while remaining:
                try:
                    batch = inbox.get(timeout=POLL_SECONDS)
                except queue.Empty:
                    if on_idle is not None:
                        on_idle()
                    continue
                if batch[-1].done:  # a stream's last item ends its batch (_pump's last())
                    remaining -= 1
                yield batch
        finally:
            if remaining:
                _cancel_and_wait(futures, finished)

    def close(self) -> None:
        """Stop the loop thread; pending tasks are cancelled first."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        if thread.is_alive():

            async def _shutdown() -> None:
                tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(_shutdown(), loop).result(timeout=2)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=2)
        if not loop.is_running():
            loop.close()


class _Gate:
    """The shared semaphore of one ``merge`` call, made on first use (on the loop thread)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._semaphore: asyncio.Semaphore | None = None

    @property
    def semaphore(self) -> asyncio.Semaphore:
        # Only ever touched from coroutines on the one loop thread: no lock needed.
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.limit)
        return self._semaphore


def _limited(
    key: K,
    make: Callable[[], AsyncIterable[T]],
    gate: _Gate | None,
    on_start: Callable[[K], object] | None,
) -> Callable[[], AsyncIterable[T]]:
    """``make`` waiting for a slot of ``gate`` (if any), then telling ``on_start``."""

    async def stream() -> AsyncIterator[T]:
        async with gate.semaphore if gate is not None else contextlib.nullcontext():
            if on_start is not None:
                on_start(key)
            iterator = make().__aiter__()
            try:
                async for item in iterator:
                    yield item
            finally:
                # Close the inner stream (its HTTP response) before the slot is given away.
                aclose = getattr(iterator, "aclose", None)
                if aclose is not None:
                    await aclose()

    return stream


async def _call(make: Callable[[], Awaitable[T]], finished: threading.Event) -> T:
    try:
        return await make()
    finally:
        finished.set()


def _flat(batches: Generator[list[Item[K, T]], None, None]) -> Generator[Item[K, T], None, None]:
    """The items of ``batches`` one by one; closing this closes ``batches`` (cancels)."""
    try:
        for batch in batches:
            yield from batch
    finally:
        batches.close()


async def _pump(
    key: K,
    make: Callable[[], AsyncIterable[T]],
    inbox: queue.SimpleQueue[list[Item[K, T]]],
    finished: threading.Event,
) -> None:
    """Run one stream, handing its items over in batches.

    Items decoded from one network read go across in one queue operation (flushed
    when the loop next turns), so a 50,000-chunk stream does not pay a thread
    hand-off per chunk; the first item still leaves at once.
    """
    loop = asyncio.get_running_loop()
    pending: list[Item[K, T]] = []

    def flush() -> None:
        if pending:
            inbox.put(pending[:])
            pending.clear()

    def last(item: Item[K, T]) -> None:
        pending.append(item)
        flush()

    try:
        async for value in make():
            if not pending:
                loop.call_soon(flush)
            pending.append(Item(key, value))
    except asyncio.CancelledError:
        last(Item(key, error=KeyboardInterrupt(), done=True))
        raise
    except BaseException as exc:  # handed to the cell thread as data
        last(Item(key, error=exc, done=True))
        return
    else:
        last(Item(key, done=True))
    finally:
        finished.set()


def _cancel_and_wait(futures: list[Future[Any]], finished: list[threading.Event]) -> None:
    """Cancel the tasks and wait (briefly) until their ``finally`` blocks closed the streams."""
    for future in futures:
        future.cancel()
    deadline = time.monotonic() + CANCEL_GRACE_SECONDS
    for event in finished:
        event.wait(timeout=max(0.0, deadline - time.monotonic()))
