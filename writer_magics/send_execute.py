"""Run one or more requests into a live view and fold their events into Results.

This is the loop every cell shares (a single answer, ``n`` choices, a sweep): events
arrive on the cell thread from :class:`runner.LoopThread`, go to the accumulator and
the view, and whatever happens the view is finished with what arrived. No IPython
here, so it is tested against the bundled server directly.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, Callable, Collection, Hashable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from writer_magics.answer.result import Result, Status, Timing, build_result
from writer_magics.display import LiveView, Outcome
from writer_magics.errors import WriterError, one_line
from writer_magics.transport.concurrency import bounded
from writer_magics.transport.events import (
    Accumulator,
    Event,
    Request,
    ResponseInfo,
    TextDelta,
    ToolCallDelta,
)
from writer_magics.transport.loop import LoopThread

if TYPE_CHECKING:  # httpx is imported on the first request, not at %load_ext
    from writer_magics.transport.client import WriterClient

__all__ = ["Interrupted", "Outcomes", "Request", "execute"]

K = TypeVar("K", bound=Hashable)


class Interrupted(WriterError):
    """Ctrl-C or the kernel's stop button while the answer was streaming.

    ``results`` holds the partial answers (already on screen), so callers can log them.
    """

    results: dict[Any, Result]

    def __init__(self, message: str, results: dict[Any, Result] | None = None) -> None:
        super().__init__(message)
        self.results = results or {}


@dataclass
class _Progress:
    """What one request has produced so far."""

    request: Request
    started: float
    acc: Accumulator = field(default_factory=Accumulator)
    first_text: float | None = None
    error: BaseException | None = None
    ended: float | None = None


@dataclass(frozen=True)
class Outcomes(Generic[K]):
    """The results by key, and the first failure (results of failed keys are partial)."""

    results: dict[K, Result]
    errors: dict[K, BaseException]


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
    if limit is not None and len(streams) > limit:

        def start_clock(key: K) -> None:
            progress[key].started = clock()

        streams = bounded(streams, limit, on_start=start_clock)
    status: Status = "failed"
    view.start()
    try:
        for item in loop.merge(streams):
            state = progress[item.key]
            if item.done:
                state.ended = clock()
                state.error = item.error
                continue
            event = item.value
            assert event is not None
            state.acc.add(event)
            if isinstance(event, ResponseInfo):
                continue  # for Result.raw only: nothing to show
            if state.first_text is None and isinstance(event, TextDelta | ToolCallDelta):
                state.first_text = clock()
            view.add(event, panel=panel_of(item.key, event))
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
