"""Running a batch: one request per item, concurrently, into one progress view.

The requests run on the kernel's private loop thread (:class:`runner.LoopThread`),
paced by :class:`pacing.Pacer` (a 429 slows the batch down and the request waits its
Retry-After; successes speed it up again). Only whole rows cross back to the cell
thread, where each is checked (``--expect``), cached (when the cache is on: a row is
written the moment it finishes, so an interrupted batch resumes from the cache), logged,
and counted in the view. A failed row keeps its one-line reason and the batch goes on.
Ctrl-C cancels the driver: no new request starts, requests in flight are closed within
:data:`runner.CANCEL_GRACE_SECONDS`, and every finished row is kept.
"""

from __future__ import annotations

import asyncio
import heapq
import queue
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from writer_magics.answer.batch import Batch, RequestShape, RowStore
from writer_magics.answer.checks import Check, CheckResult, evaluate
from writer_magics.answer.result import Result, Status, Timing, build_result
from writer_magics.display.progress import BatchView, Progress
from writer_magics.errors import RateLimitError, WriterError, one_line
from writer_magics.line.items import BatchInput
from writer_magics.transport.events import Accumulator, Event, Request, TextDelta
from writer_magics.transport.loop import CANCEL_GRACE_SECONDS, POLL_SECONDS, LoopThread
from writer_magics.transport.pacing import MAX_RATE_LIMITS, Pacer

if TYPE_CHECKING:
    from writer_magics.answer.promptlog import PromptLog
    from writer_magics.transport.cache import CachedAnswer, ResponseCache
    from writer_magics.transport.client import WriterClient

__all__ = ["BatchRun", "RowDone", "run_batch"]


@dataclass(frozen=True)
class RowDone:
    """One finished row, handed from the loop thread to the cell thread."""

    index: int
    result: Result
    error: BaseException | None
    events: list[Event] | None


@dataclass(frozen=True)
class _RateLimited:
    error: RateLimitError


@dataclass(frozen=True)
class BatchRun:
    """The Batch, and whether Ctrl-C stopped it (its unsent rows are ``interrupted``)."""

    batch: Batch
    interrupted: bool


async def _answer(
    client: WriterClient, request: Request, record: bool, clock: Callable[[], float]
) -> RowDone | _RateLimited:
    """Send one row's request; a 429 comes back as data for the pacer."""
    acc = Accumulator()
    events: list[Event] | None = [] if record else None
    started = clock()
    first: float | None = None
    error: BaseException | None = None
    try:
        async for event in client.events(
            request.endpoint, request.body, timeout=request.timeout, retry_rate_limit=False
        ):
            if first is None and isinstance(event, TextDelta):
                first = clock()
            acc.add(event)
            if events is not None:
                events.append(event)
    except RateLimitError as exc:
        if not acc.events_seen:
            return _RateLimited(exc)
        error = exc
    except WriterError as exc:
        error = exc
    except Exception as exc:  # anything else fails this row only
        error = exc
    ended = clock()
    status: Status = "failed" if error is not None else "done"
    result = build_result(
        acc,
        endpoint=request.endpoint,
        model=request.model,
        request=request.body,
        timing=Timing(None if first is None else first - started, ended - started),
        status=status,
    )
    return RowDone(-1, result, error, events if error is None else None)


async def _drive(
    jobs: Mapping[int, Request],
    client: WriterClient,
    pacer: Pacer,
    inbox: queue.SimpleQueue[RowDone | int | None],
    record: bool,
    clock: Callable[[], float],
) -> None:
    """Run every job under the pacer; put each finished row (or a 429 count) in the inbox."""
    pending: deque[int] = deque(jobs)
    waiting: list[tuple[float, int]] = []  # rate-limited rows: (not before, index)
    running: dict[asyncio.Task[RowDone | _RateLimited], tuple[int, float]] = {}
    limited: dict[int, int] = {}
    try:
        while pending or waiting or running:
            now = clock()
            while waiting and waiting[0][0] <= now:
                pending.appendleft(heapq.heappop(waiting)[1])
            while pending and len(running) < pacer.allowed:
                index = pending.popleft()
                task = asyncio.create_task(_answer(client, jobs[index], record, clock))
                running[task] = (index, now)
            timeout = max(0.0, waiting[0][0] - now) if waiting else None
            if not running:
                await asyncio.sleep(timeout or 0.0)
                continue
            done, _ = await asyncio.wait(
                running, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                index, started = running.pop(task)
                outcome = task.result()
                if isinstance(outcome, _RateLimited):
                    count = limited[index] = limited.get(index, 0) + 1
                    if count <= MAX_RATE_LIMITS:
                        wait = pacer.rate_limited(started, outcome.error.retry_after, clock())
                        heapq.heappush(waiting, (clock() + wait, index))
                        inbox.put(index)
                        continue
                    result = build_result(
                        Accumulator(),
                        endpoint=jobs[index].endpoint,
                        model=jobs[index].model,
                        request=jobs[index].body,
                        status="failed",
                    )
                    outcome = RowDone(index, result, outcome.error, None)
                elif outcome.error is None:
                    pacer.succeeded()
                inbox.put(replace(outcome, index=index))
    finally:
        for task in running:
            task.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)
        inbox.put(None)


def _from_cache(hit: CachedAnswer, request: Request) -> Result:
    acc = Accumulator()
    for event in hit.events:
        acc.add(event)
    return build_result(
        acc,
        endpoint=request.endpoint,
        model=request.model,
        request=request.body,
        timing=Timing(0.0, 0.0),
        status="cached",
    )


def _label(data: BatchInput, i: int) -> str:
    return f"row {data.index[i]}" if data.index is not None else f"row {i}"


def run_batch(
    requests: Sequence[Request],
    data: BatchInput,
    *,
    checks: Sequence[Check],
    user_ns: Mapping[str, Any],
    loop: LoopThread,
    client: Callable[[], WriterClient],
    store: ResponseCache | None,
    replaying: bool,
    log: PromptLog | None,
    view: Literal["widget", "markdown", "text"],
    limit: int,
    title: str,
    max_updates_per_second: float = 2.0,
    clock: Callable[[], float] = time.monotonic,
) -> BatchRun:
    """Answer ``requests[i]`` for every item ``i`` of ``data``; see the module docstring.

    Cache hits are answered first without a request; in replay mode a miss raises
    before anything is shown. Returns the Batch (every row, in input order).
    """
    from writer_magics.transport.cache import CacheError, miss_error

    shape = RequestShape(requests[0].endpoint, requests[0].model, requests[0].body)
    records = None if data.columns == ("item",) else data.fields
    store_rows = RowStore(shape, data.items, records, [_prompt(r) for r in requests])
    hits: dict[int, Result] = {}
    if store is not None:
        for i, request in enumerate(requests):
            try:
                hit = store.get(request.endpoint, request.body)
            except CacheError:
                if replaying:
                    raise
                hit = None
            if hit is not None:
                hits[i] = _from_cache(hit, request)
    if replaying and len(hits) < len(requests):
        first = next(r for i, r in enumerate(requests) if i not in hits)
        raise miss_error(first.endpoint, first.body)
    jobs = {i: r for i, r in enumerate(requests) if i not in hits}
    writer = client() if jobs else None
    if writer is not None:
        writer.check()  # no key: one line, nothing sent, no view
    progress = Progress(title, len(requests), started=clock())
    shown = BatchView(view, progress, max_per_second=max_updates_per_second, clock=clock)
    api_key = writer.settings.api_key if writer is not None else None

    def settle(i: int, result: Result, error: BaseException | None) -> None:
        outcome: tuple[CheckResult, ...] = ()
        if error is None and checks:
            outcome = evaluate(checks, result.text, data.namespace(i, user_ns))
        reason = None if error is None else one_line(error)
        store_rows.set(i, result, reason, outcome)
        if result.status == "cached":
            progress.cached += 1
        elif error is None:
            progress.done += 1
        else:
            progress.failed += 1
        if result.usage is not None and result.usage.total_tokens:
            progress.tokens += result.usage.total_tokens
        if error is not None:
            progress.add(_label(data, i), reason or "", False)
        else:
            progress.add(_label(data, i), result.text, True)

    shown.start()
    interrupted = False
    try:
        for i, result in hits.items():
            settle(i, result, None)
        if jobs and writer is not None:
            pacer = Pacer(limit)
            inbox: queue.SimpleQueue[RowDone | int | None] = queue.SimpleQueue()
            future = asyncio.run_coroutine_threadsafe(
                _drive(jobs, writer, pacer, inbox, store is not None and not replaying, clock),
                loop.loop,
            )
            try:
                _collect(inbox, settle, store, log, api_key, progress, shown)
            except KeyboardInterrupt:
                interrupted = True
                future.cancel()
                _drain(inbox, settle, store, log, api_key, progress)
            else:
                future.result(timeout=CANCEL_GRACE_SECONDS)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        batch = Batch(
            store_rows,
            columns=data.columns,
            index=data.index,
            checks=[c.spec for c in checks],
            elapsed=clock() - progress.started,
        )
        batch.rate_limited = progress.rate_limited
        shown.finish(batch._repr_markdown_(), repr(batch))
    return BatchRun(batch, interrupted)


def _collect(
    inbox: queue.SimpleQueue[RowDone | int | None],
    settle: Callable[[int, Result, BaseException | None], None],
    store: ResponseCache | None,
    log: PromptLog | None,
    api_key: str | None,
    progress: Progress,
    view: BatchView,
) -> None:
    """Take finished rows until the driver says it is done; redraw as the rate allows."""
    while True:
        try:
            item = inbox.get(timeout=POLL_SECONDS)
        except queue.Empty:
            view.update()
            continue
        if item is None:
            return
        _take(item, settle, store, log, api_key, progress)
        view.update()


def _drain(
    inbox: queue.SimpleQueue[RowDone | int | None],
    settle: Callable[[int, Result, BaseException | None], None],
    store: ResponseCache | None,
    log: PromptLog | None,
    api_key: str | None,
    progress: Progress,
) -> None:
    """After Ctrl-C: keep the rows that finished before the cancel reached the loop."""
    deadline = time.monotonic() + CANCEL_GRACE_SECONDS
    while True:
        try:
            item = inbox.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return
        if item is None:
            return
        _take(item, settle, store, log, api_key, progress)


def _take(
    item: RowDone | int,
    settle: Callable[[int, Result, BaseException | None], None],
    store: ResponseCache | None,
    log: PromptLog | None,
    api_key: str | None,
    progress: Progress,
) -> None:
    if isinstance(item, int):
        progress.rate_limited += 1
        return
    settle(item.index, item.result, item.error)
    if store is not None and item.events is not None and item.error is None:
        from writer_magics.transport.cache import CacheError

        try:
            store.put(item.result.endpoint, item.result.request, item.events)
        except (CacheError, ValueError) as exc:
            progress.add("cache", f"not cached: {one_line(exc)}", False)
    if log is not None:
        log.append(
            item.result,
            error=None if item.error is None else one_line(item.error),
            api_key=api_key,
        )


def _prompt(request: Request) -> str:
    if request.endpoint == "completions":
        return str(request.body.get("prompt", ""))
    messages = request.body.get("messages") or [{}]
    return str(messages[-1].get("content", ""))
