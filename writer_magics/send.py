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
"""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncIterable, Callable, Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from writer_magics.answer.result import (
    Accumulator,
    Outcomes,
    Result,
    Status,
    Timing,
    build_result,
)
from writer_magics.display import LiveView, Outcome, ViewKind, open_view
from writer_magics.errors import Interrupted, one_line
from writer_magics.line.options import Params
from writer_magics.request import Request
from writer_magics.transport.events import Event, ResponseInfo, TextDelta, ToolCallDelta
from writer_magics.transport.loop import LoopThread

if TYPE_CHECKING:  # httpx is imported on the first request, not at %load_ext
    from writer_magics.answer.promptlog import PromptLog
    from writer_magics.transport.cache import ResponseCache
    from writer_magics.transport.client import WriterClient

__all__ = ["Interrupted", "Outcomes", "SendSettings", "Sender", "execute"]

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class SendSettings:
    """A snapshot of the configuration one cell runs with."""

    view: ViewKind = "auto"
    max_updates_per_second: float = 10.0
    max_concurrency: int = 4
    use_cache: bool = False
    cache_path: Path | None = None
    replay_path: Path | None = None
    log: bool = True
    log_path: Path | None = None
    #: Seconds between replayed text pieces, so a cached answer still reads as live.
    replay_pace: float = 0.002


@dataclass
class _Plan:
    """Where a cell's answers come from. ``store`` is the cache to write (None when
    replaying or not caching); ``sinks`` collect the events of the requests it records."""

    client: WriterClient
    store: ResponseCache | None
    hits: dict[Params, Any]
    openers: dict[Params, Callable[[], AsyncIterable[Event]]]
    sinks: dict[Params, list[Event]]


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
    ) -> Outcomes[Params]:
        """Answer every request (from the cache where possible) into one live view."""
        plan = self._plan(requests, settings)
        if plan.hits:
            cached = len(plan.hits)
            header += " · cached" if cached == len(requests) else f" · {cached} cached"
        view = open_view(
            settings.view,
            header,
            panels=titles,
            max_updates_per_second=settings.max_updates_per_second,
            shell=shell,
        )
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
            self._log_results(settings, interrupted.results, {}, plan.client)
            raise
        self._settle(requests, settings, plan, outcomes)
        return outcomes

    def _plan(self, requests: Mapping[Params, Request], settings: SendSettings) -> _Plan:
        """Where each answer comes from: the cache / replay file, else the network."""
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
        openers: dict[Params, Callable[[], AsyncIterable[Event]]] = {
            key: replay_opener(hit, pace=settings.replay_pace) for key, hit in hits.items()
        }
        sinks: dict[Params, list[Event]] = {}
        if store is not None and not replaying:
            for key in missing:
                sinks[key] = []
                openers[key] = recording(client.opener(requests[key]), sinks[key])
        return _Plan(client, None if replaying else store, hits, openers, sinks)

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

    def start_clock(key: K) -> None:
        progress[key].started = clock()

    merged = loop.merge(
        streams, limit=limit if bounded else None, on_start=start_clock if bounded else None
    )
    status: Status = "failed"
    view.start()
    last_key: Any = None  # the last item's key and state: no hashing of the key per event
    state: _Progress | None = None
    try:
        for item in merged:
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
        results = {
            key: _result(state, "cached" if key in cached and status == "done" else status, clock)
            for key, state in progress.items()
        }
        view.finish(_outcome(results, progress, status, all_cached=set(cached) >= set(keys)))
    if status == "interrupted":
        raise Interrupted("Interrupted; the answer so far is kept above.", results)
    return Outcomes(
        results=results,
        errors={k: s.error for k, s in progress.items() if s.error is not None},
    )


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
