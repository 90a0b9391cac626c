"""Sending a cell's requests: plan -> stream into one view -> settle.

* **plan**: the cache and the replay file answer what they can; the rest goes to the
  network (a missing key, or a replay miss, is raised here: before the live view
  opens or anything is sent);
* **stream** (:func:`execute`): every request's events are folded once, into that
  request's :class:`~writer_magics.answer.result.Accumulator`, and the live view reads
  that same state; whatever happens the view is finished with what arrived;
* **settle**: the cache is written and the prompt log appended only after the view has
  finished, so neither slows the stream, and neither can fail a request (their errors
  become one warning line).

The magic hands over the requests and gets :class:`Outcomes` back. ``execute`` needs
no IPython, so it is tested against the bundled server directly.

**Batches** (``--over``, :func:`run_batch`): one request per item, concurrently, into one
progress view. The requests run on the kernel's loop thread, paced by
:class:`~writer_magics.transport.pacing.Pacer` (a 429 slows the batch down and the
request waits its Retry-After; successes speed it up again). Only whole rows cross back
to the cell thread, where each is checked (``--expect``), cached (when the cache is on: a
row is written the moment it finishes, so an interrupted batch resumes from the cache),
logged, and counted in the view. A failed row keeps its one-line reason and the batch
goes on. Ctrl-C cancels the driver: no new request starts, requests in flight are closed
within :data:`~writer_magics.transport.loop.CANCEL_GRACE_SECONDS`, and every finished
row is kept.
"""

from __future__ import annotations

import asyncio
import heapq
import queue
import sys
import time
from collections import deque
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Callable,
    Collection,
    Hashable,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from writer_magics.answer.batch import Batch, RequestShape, RowStore
from writer_magics.answer.checks import Check, CheckResult, evaluate
from writer_magics.answer.result import (
    Accumulator,
    Outcomes,
    Result,
    Status,
    Timing,
    build_result,
)
from writer_magics.display import LiveView, Outcome, ViewKind, open_view
from writer_magics.display.finish import Stamp
from writer_magics.display.progress import BatchView, Progress
from writer_magics.display.rounds import RoundsView
from writer_magics.errors import CacheError, Interrupted, RateLimitError, WriterError, one_line
from writer_magics.line.items import BatchInput
from writer_magics.line.options import Params
from writer_magics.request import Request
from writer_magics.transport.events import (
    STATUS_EVENTS,
    Event,
    Queued,
    ResponseInfo,
    Started,
    TextDelta,
    ToolCallDelta,
)
from writer_magics.transport.loop import CANCEL_GRACE_SECONDS, POLL_SECONDS, Item, LoopThread
from writer_magics.transport.pacing import MAX_RATE_LIMITS, Pacer

if TYPE_CHECKING:  # httpx is imported on the first request, not at %load_ext
    from writer_magics.answer.budget import Gate
    from writer_magics.answer.promptlog import PromptLog
    from writer_magics.transport.cache import CachedAnswer, ResponseCache
    from writer_magics.transport.client import WriterClient

__all__ = [
    "BatchRun",
    "Interrupted",
    "Outcomes",
    "RowDone",
    "SendSettings",
    "Sender",
    "execute",
    "run_batch",
]

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class SendSettings:
    """A snapshot of the configuration one cell runs with."""

    view: ViewKind = "auto"
    max_updates_per_second: float = 6.0
    max_concurrency: int = 4
    use_cache: bool = False
    cache_path: Path | None = None
    replay_path: Path | None = None
    log: bool = True
    log_path: Path | None = None
    #: Seconds between replayed text pieces, so a cached answer still reads as live.
    replay_pace: float = 0.002
    #: The kernel's budget: asked before anything live is sent (None: unlimited).
    budget: Gate | None = None
    #: The class settings in force, for each answer's provenance (None: none).
    class_settings: Mapping[str, Any] | None = None


@dataclass
class _Plan:
    """Where a cell's answers come from. ``store`` is the cache to write (None when
    replaying or not caching); ``sinks`` collect the events of the requests it records."""

    client: WriterClient
    store: ResponseCache | None
    hits: dict[Params, Any]
    openers: dict[Params, Callable[[], AsyncIterable[Event]]]
    sinks: dict[Params, list[Event]]
    #: The requests that go (a budget with ``--partial`` may drop some) and their titles.
    requests: Mapping[Params, Request]
    titles: Sequence[str] | int
    #: The keys sent live (they count against the budget; cached/replayed ones are free).
    live: list[Params]
    replaying: bool


class Sender:
    """Owns the kernel's cache and log files (opened lazily, one object per path)."""

    def __init__(self, loop: LoopThread, client: Callable[[], WriterClient]) -> None:
        self.loop = loop
        self._client = client
        self._caches: dict[tuple[Path, bool], ResponseCache] = {}
        self._logs: dict[Path, PromptLog] = {}

    # ------------------------------------------------------------------ stores

    def cache(self, settings: SendSettings) -> ResponseCache:
        """The replay file (read-only) in replay mode, else the cache file."""
        from writer_magics.transport.cache import ResponseCache, default_cache_path

        replaying = settings.replay_path is not None
        path = settings.replay_path or settings.cache_path or default_cache_path()
        store = self._caches.get((path, replaying))
        if store is None:
            store = self._caches[(path, replaying)] = ResponseCache(
                path, read_only=replaying, secrets=self._secrets
            )
        return store

    def _secrets(self) -> list[str | None]:
        """What the cache redacts: the key the client would send now."""
        return [self._client().settings.api_key]

    def prompt_log(self, settings: SendSettings) -> PromptLog | None:
        if not settings.log:
            return None
        from writer_magics.answer.promptlog import PromptLog, default_log_path

        path = settings.log_path or default_log_path()
        log = self._logs.get(path)
        if log is None:
            log = self._logs[path] = PromptLog(path)
        return log

    # ------------------------------------------------------------------ send

    def send(
        self,
        requests: Mapping[Params, Request],
        settings: SendSettings,
        *,
        header: str,
        titles: Sequence[str] | int,
        shell: Any = None,
        rounds: RoundsView | None = None,
    ) -> Outcomes[Params]:
        """Answer every request (from the cache where possible) into one live view.

        ``rounds``: the view every round of a ``--tools`` cell shares (its first round
        opens the real view; see :mod:`writer_magics.display.rounds`)."""
        plan = self._plan(requests, settings, titles)
        requests = plan.requests
        if plan.hits:
            cached = len(plan.hits)
            header += " · cached" if cached == len(requests) else f" · {cached} cached"

        def opened() -> LiveView:
            return open_view(
                settings.view,
                header,
                panels=plan.titles,
                max_updates_per_second=settings.max_updates_per_second,
                shell=shell,
                stamp=_stamper(plan, settings),
                secrets=self._secrets(),
            )

        view = opened() if rounds is None else rounds.round(opened)
        try:
            outcomes = execute(
                requests,
                loop=self.loop,
                client=plan.client,
                view=view,
                openers=plan.openers,
                limit=settings.max_concurrency,
                cached=set(plan.hits),
            )
        except Interrupted as interrupted:
            _spend(settings, interrupted.results, plan.live)
            self._log_results(settings, interrupted.results, {}, plan.client)
            raise
        _spend(settings, outcomes.results, plan.live)
        self._settle(requests, settings, plan, outcomes)
        return outcomes

    def _plan(
        self,
        requests: Mapping[Params, Request],
        settings: SendSettings,
        titles: Sequence[str] | int,
    ) -> _Plan:
        """Where each answer comes from: the cache / replay file, else the network (the
        budget is asked here, before anything live is sent or the view opens)."""
        from writer_magics.transport.cache import miss_error, recording, replay_opener

        replaying = settings.replay_path is not None
        store = self.cache(settings) if replaying or settings.use_cache else None
        if replaying and store is not None:
            store.ensure_readable()
        elif store is not None and not _readable(store):
            store = None  # told once in this cell; neither looked up nor written
        hits = {
            key: hit for key, req in requests.items() if (hit := _lookup(store, req, replaying))
        }
        notice = store.take_notice() if store is not None else None
        if notice is not None:
            print(f"Warning: {notice}; every other answer is still used.", file=sys.stderr)
        missing = [key for key in requests if key not in hits]
        if replaying and missing:
            request = requests[missing[0]]
            raise miss_error(request.endpoint, request.body)
        client = self._client()
        if missing:
            client.check()  # no key: one line, nothing sent, no view opened
        if missing and settings.budget is not None:
            requests, titles, missing = _within_budget(settings.budget, requests, titles, missing)
        openers: dict[Params, Callable[[], AsyncIterable[Event]]] = {
            key: replay_opener(hit, pace=settings.replay_pace) for key, hit in hits.items()
        }
        sinks: dict[Params, list[Event]] = {}
        if store is not None and not replaying:
            for key in missing:
                sinks[key] = []
                openers[key] = recording(client.opener(requests[key]), sinks[key])
        return _Plan(
            client,
            None if replaying else store,
            hits,
            openers,
            sinks,
            requests=requests,
            titles=titles,
            live=missing,
            replaying=replaying,
        )

    def _settle(
        self,
        requests: Mapping[Params, Request],
        settings: SendSettings,
        plan: _Plan,
        outcomes: Outcomes[Params],
    ) -> None:
        """After the view finished: cache what was recorded, log every result."""
        if plan.store is not None:
            self._remember(plan.store, requests, plan.sinks, outcomes)
        self._log_results(settings, outcomes.results, outcomes.errors, plan.client)

    def _remember(
        self,
        store: ResponseCache,
        requests: Mapping[Params, Request],
        sinks: Mapping[Params, list[Event]],
        outcomes: Outcomes[Params],
    ) -> None:
        from writer_magics.errors import CacheError

        for key, events in sinks.items():
            if key in outcomes.errors or outcomes.results[key].status != "done" or not events:
                continue  # an empty answer (a bare [DONE]) is not worth a cache entry
            request = requests[key]
            try:
                store.put(request.endpoint, request.body, events)
            except CacheError as exc:
                print(f"Warning: the answer was not cached: {exc.message}", file=sys.stderr)

    def _log_results(
        self,
        settings: SendSettings,
        results: Mapping[Any, Result],
        errors: Mapping[Any, BaseException],
        client: WriterClient,
    ) -> None:
        log = self.prompt_log(settings)
        if log is None:
            return
        for key, result in results.items():
            error = errors.get(key)
            log.append(
                result,
                error=None if error is None else one_line(error),
                api_key=client.settings.api_key,
            )


def _within_budget(
    budget: Gate,
    requests: Mapping[Params, Request],
    titles: Sequence[str] | int,
    missing: list[Params],
) -> tuple[Mapping[Params, Request], Sequence[str] | int, list[Params]]:
    """The whole plan's live requests are checked (and counted) before any is sent;
    with ``--partial`` only the first that fit go and the rest are dropped, said in one line."""
    allowed = budget.admit(len(missing))
    if allowed == len(missing):
        return requests, titles, missing
    dropped = set(missing[allowed:])
    keys = list(requests)
    if not isinstance(titles, int) and len(titles) == len(keys):
        titles = [t for t, k in zip(titles, keys, strict=True) if k not in dropped]
    print(
        f"Budget: sending {allowed} of the {len(missing)} requests this cell needs "
        f"(--partial); {len(dropped)} not sent.",
        file=sys.stderr,
    )
    kept = {k: r for k, r in requests.items() if k not in dropped}
    return kept, titles, missing[:allowed]


def _spend(settings: SendSettings, results: Mapping[Any, Result], live: Sequence[Any]) -> None:
    """Count the tokens of the answers that were sent live (cached ones are free)."""
    if settings.budget is not None:
        settings.budget.spend(results[k] for k in live if k in results)


def _stamper(plan: _Plan, settings: SendSettings) -> Stamp:
    """The static finish's output metadata: each answer's provenance (how it was made)."""
    from writer_magics.answer.provenance import Source, stamp

    sources: list[Source] = [
        "replayed" if plan.replaying else "cached" if key in plan.hits else "live"
        for key in plan.requests
    ]

    def metadata(outcome: Outcome) -> dict[str, Any]:
        return {
            "writer_magics": stamp(outcome.results, sources, class_settings=settings.class_settings)
        }

    return metadata


def _readable(store: ResponseCache) -> bool:
    """Load the cache; a file that cannot be read at all is one warning, not a failure."""
    from writer_magics.errors import CacheError

    try:
        len(store)
    except CacheError as exc:
        print(f"Warning: the cache is not used: {exc.message}", file=sys.stderr)
        return False
    return True


def _lookup(store: ResponseCache | None, request: Request, replaying: bool) -> Any:
    """The cached answer for a request, or None; a broken cache file only warns."""
    if store is None:
        return None
    from writer_magics.errors import CacheError

    try:
        return store.get(request.endpoint, request.body)
    except CacheError as exc:
        if replaying:
            raise
        print(f"Warning: the cache was not read: {exc.message}", file=sys.stderr)
        return None


# --------------------------------------------------------------------------- stream


@dataclass
class _Progress:
    """What one request has produced so far."""

    request: Request
    started: float
    acc: Accumulator = field(default_factory=Accumulator)
    first_text: float | None = None
    error: BaseException | None = None
    ended: float | None = None


def execute(
    requests: Mapping[K, Request],
    *,
    loop: LoopThread,
    client: WriterClient,
    view: LiveView,
    clock: Callable[[], float] = time.monotonic,
    openers: Mapping[K, Callable[[], AsyncIterable[Event]]] | None = None,
    limit: int | None = None,
    cached: Collection[K] = (),
) -> Outcomes[K]:
    """Stream every request at once into the view; finish the view in all cases.

    Each event is folded once, into its request's Accumulator; the view is handed
    that Accumulator with the event and reads it (it folds nothing itself).

    With one request, panels are its choices (``n``); with several (a sweep), each
    request has its own panel. Ctrl-C cancels every stream (closing its connection),
    keeps the partial text on screen and raises :class:`Interrupted`. ``openers``
    replaces the HTTP stream of some requests (a cache replay); ``limit`` bounds how
    many stream at once (a request's clock starts when it gets its slot); ``cached``
    names the requests answered from the cache, marked so on screen and in results.
    """
    keys = list(requests)
    panel_of: Callable[[K, Event], int]
    if len(keys) == 1:
        panel_of = _choice_panel
    else:
        positions = {key: i for i, key in enumerate(keys)}
        panel_of = lambda key, _event: positions[key]  # noqa: E731
    start = clock()
    progress = {key: _Progress(req, start) for key, req in requests.items()}
    streams: dict[K, Callable[[], AsyncIterable[Event]]] = {
        key: client.opener(req) for key, req in requests.items()
    }
    streams.update(openers or {})
    bounded = limit is not None and len(streams) > limit
    if bounded:  # each stream first says when it got its slot (its panel's clock starts)
        streams = {key: _announced(make, clock) for key, make in streams.items()}

    def start_clock(key: K) -> None:
        progress[key].started = clock()

    merged = loop.merge_batches(
        streams,
        limit=limit if bounded else None,
        on_start=start_clock if bounded else None,
        on_idle=view.tick,
    )
    status: Status = "failed"
    view.start()
    if bounded and limit is not None:  # the rest wait; the first `limit` start at once
        for key in keys[limit:]:
            view.add(Queued(), panel=panel_of(key, Queued()), fold=progress[key].acc)
    last_key: Any = None  # the last item's key and state: no hashing of the key per event
    state: _Progress | None = None
    try:
        for item in (item for batch in merged for item in joined(batch)):
            if state is None or item.key is not last_key:
                last_key = item.key
                state = progress[last_key]
            if item.done:
                state.ended = clock()
                state.error = item.error
                continue
            event = item.value
            assert event is not None
            state.acc.add(event)  # the one fold; the view reads state.acc
            if isinstance(event, ResponseInfo):
                continue  # for Result.raw only: nothing to show
            if state.first_text is None and isinstance(event, TextDelta | ToolCallDelta):
                state.first_text = clock()
            view.add(event, panel=panel_of(item.key, event), fold=state.acc)
        status = "done"
    except KeyboardInterrupt:
        status = "interrupted"
    finally:
        # Cancel what still streams now: the Interrupted traceback keeps this frame (and
        # an unclosed generator with it) alive, which would keep the connections open.
        merged.close()
        results = {
            key: _result(state, "cached" if key in cached and status == "done" else status, clock)
            for key, state in progress.items()
        }
        view.finish(_outcome(results, progress, status, all_cached=set(cached) >= set(keys)))
    if status == "interrupted":
        received = any(c.text or c.tool_calls for r in results.values() for c in r.choices)
        kept = "the answer so far is kept above." if received else "nothing had arrived yet."
        raise Interrupted(kept, results)
    return Outcomes(
        results=results,
        errors={k: s.error for k, s in progress.items() if s.error is not None},
    )


def joined(batch: list[Item[K, Event]]) -> list[Item[K, Event]]:
    """``batch`` (one stream's items, in order) with each run of text pieces of one choice
    joined into one :class:`TextDelta` (its ``pieces`` counts them).

    A fast stream's chunks cross from the loop thread a network read at a time (a
    hundred or more): joined, they cost one fold and one view call instead of one each.
    The text, its order against other events and the counts are unchanged.
    """
    if len(batch) == 1:
        return batch
    out: list[Item[K, Event]] = []
    texts: list[str] = []  # the run's texts; its first item is out[-1]
    choice = -1
    for item in batch:
        event = item.value
        if type(event) is TextDelta:
            if texts and event.choice == choice:
                texts.append(event.text)
                continue
            _close_run(out, texts)
            texts = [event.text]
            choice = event.choice
        else:
            _close_run(out, texts)
            texts = []
        out.append(item)
    _close_run(out, texts)
    return out


def _close_run(out: list[Item[K, Event]], texts: list[str]) -> None:
    """Replace the run's first item (``out[-1]``) by the run joined, when it is longer."""
    if len(texts) > 1:
        first = out[-1]
        assert isinstance(first.value, TextDelta)
        joined_text = TextDelta("".join(texts), first.value.choice, len(texts))
        out[-1] = Item(first.key, joined_text)


def _announced(
    make: Callable[[], AsyncIterable[Event]], clock: Callable[[], float]
) -> Callable[[], AsyncIterator[Event]]:
    """``make``'s stream, first saying :class:`Started` (called once it holds a slot)."""

    async def stream() -> AsyncIterator[Event]:
        yield Started(clock())
        inner = make().__aiter__()
        try:
            async for event in inner:
                yield event
        finally:  # closed early: close the HTTP stream now, not when collected
            aclose = getattr(inner, "aclose", None)
            if aclose is not None:
                await aclose()

    return stream


def _choice_panel(_key: Any, event: Event) -> int:
    return int(getattr(event, "choice", 0))


def _result(state: _Progress, status: Status, clock: Callable[[], float]) -> Result:
    if status in ("done", "cached") and state.error is not None:
        status = "failed"
    ended = state.ended if state.ended is not None else clock()
    timing = Timing(
        first_token=None if state.first_text is None else state.first_text - state.started,
        total=ended - state.started,
    )
    return build_result(
        state.acc,
        endpoint=state.request.endpoint,
        model=state.request.model,
        request=state.request.body,
        timing=timing,
        status=status,
    )


def _outcome(
    results: Mapping[Any, Result],
    progress: Mapping[Any, _Progress],
    status: Status,
    *,
    all_cached: bool,
) -> Outcome:
    reasons = [one_line(s.error) for s in progress.values() if s.error is not None]
    if status == "done" and reasons and len(reasons) == len(progress):
        status = "failed"
    elif status == "done" and all_cached:
        status = "cached"
    errors = [progress[k].error if k in progress else None for k in results]
    return Outcome(
        results=list(results.values()),
        state=status,
        reason=reasons[0] if reasons else None,
        reasons=[None if e is None else one_line(e) for e in errors],
    )


# --------------------------------------------------------------------------- batches


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
    seen = False
    try:
        async for event in client.events(
            request.endpoint, request.body, timeout=request.timeout, retry_rate_limit=False
        ):
            if isinstance(event, STATUS_EVENTS):
                continue  # a retry: nothing to keep (the batch view shows rows, not waits)
            seen = True
            if first is None and isinstance(event, TextDelta):
                first = clock()
            acc.add(event)
            if events is not None:
                events.append(event)
    except RateLimitError as exc:
        if not seen:
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
    class_settings: Mapping[str, Any] | None = None,
) -> BatchRun:
    """Answer ``requests[i]`` for every item ``i`` of ``data``; see the module docstring.

    The summary output carries every row's provenance (``answer/provenance.py``), as a
    single answer's static finish does, so ``provenance --class`` checks batches too.

    Cache hits are answered first without a request; in replay mode a miss raises
    before anything is shown. Returns the Batch (every row, in input order).
    """
    from writer_magics.transport.cache import miss_error

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
        shown.finish(
            batch._repr_markdown_(), repr(batch), _batch_stamp(batch, replaying, class_settings)
        )
    return BatchRun(batch, interrupted)


def _batch_stamp(
    batch: Batch, replaying: bool, class_settings: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The summary output's metadata: the provenance of every row that has a request."""
    from writer_magics.answer.provenance import Source, stamp

    rows = [r for r in batch if r.request]
    sources: list[Source] = [
        "replayed" if replaying else "cached" if r.status == "cached" else "live" for r in rows
    ]
    return {"writer_magics": stamp(rows, sources, class_settings=class_settings)}


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
