"""The rounds of one ``%%chat --tools`` cell in one live view, and each call's line.

Every round is one request (:mod:`writer_magics.tools.rounds`); without this module
each would open its own view, so a two-round cell showed two headers and two
usage lines. :class:`RoundsView` is the one :class:`~writer_magics.display.LiveView`
every round of a cell streams into: it opens the real view once (the first round's),
folds the rounds' events into one cell-wide Accumulator that the view reads (a later
round's text follows the earlier text after a blank line), and finishes the real view
once, with one Result for the whole cell (the usage of every round added up, the time
from the first request to the answer). A round that ends in tool calls does not
finish it; :meth:`RoundsView.close` does if the cell stops there (the round limit:
then the calls that were not run are shown). The calls that ran are not folded into
the view: each has its own :class:`ToolLine`, below what streamed before it.

:class:`ToolLine` is one call's line: ``running get_weather({"city": "Paris"})…``
while the function runs, then replaced in place by ``get_weather({"city": "Paris"})
→ 18C and cloudy``. No IPython state is kept between cells.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable, Iterable, Sequence

from writer_magics.answer.preview import preview
from writer_magics.answer.result import Accumulator, Result, Timing, build_result
from writer_magics.display.finish import display, update_display
from writer_magics.display.panel import Outcome
from writer_magics.display.views import LiveView
from writer_magics.errors import redact
from writer_magics.transport.events import (
    Event,
    TextDelta,
    ToolCallDelta,
    ToolRunning,
    Usage,
)


class RoundsView:
    """One live view for all the rounds of a tools cell (see the module docstring).

    ``open_view`` is called by :meth:`round` with the first round's view factory;
    later rounds reuse that view. Clock: ``time.monotonic`` seconds.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.inner: LiveView | None = None
        self.acc = Accumulator()
        self.results: list[Result] = []
        self.pending: Outcome | None = None
        self.finished = False
        self.first: float | None = None
        self.round_text = False  # this round has sent text already

    def round(self, open_view: Callable[[], LiveView]) -> RoundsView:
        """The view for the next round: this one (the real view is opened only once)."""
        if self.inner is None:
            self.inner = open_view()
        self.round_text = False
        return self

    # ------------------------------------------------------------------ LiveView

    def start(self) -> None:
        if self.first is None:
            self.first = self.clock()
            assert self.inner is not None
            self.inner.start()

    def add(self, event: Event, panel: int = 0, fold: Accumulator | None = None) -> None:
        if isinstance(event, TextDelta) and event.text and not self.round_text:
            self.round_text = True
            if self.acc.choice(event.choice).text:  # an earlier round's text: a new paragraph
                self.acc.add(TextDelta("\n\n", event.choice))
        if not isinstance(event, ToolCallDelta):  # a call gets its own line when it runs
            self.acc.add(event)
        assert self.inner is not None
        self.inner.add(event, panel, self.acc)

    def tick(self) -> None:
        if self.inner is not None:
            self.inner.tick()  # every LiveView ticks (the protocol's own method)

    def finish(self, outcome: Outcome) -> None:
        """A round ended: one that asked for tools waits for the next round."""
        self.results.extend(outcome.results[:1])
        last = outcome.results[0] if outcome.results else None
        if outcome.state == "done" and last is not None and last.tool_calls:
            self.pending = outcome
            return
        self._finish(outcome)

    # ------------------------------------------------------------------ the cell

    def running(self, name: str, arguments: str) -> None:
        """A tool function starts: the live status says so until the next event, and the
        answer's later text opens below the call's line (``break_piece``, where the view
        has pieces), so the cell reads in the order things happened."""
        if self.inner is not None and not self.finished:
            self.inner.add(ToolRunning(name, arguments), 0, self.acc)
            split = getattr(self.inner, "break_piece", None)
            if callable(split):
                split()

    def close(self, interrupted: bool = False) -> None:
        """The cell is over: finish the view if a round left it open (the round limit,
        Ctrl-C in a tool function: ``interrupted``)."""
        if self.pending is not None and not self.finished:
            pending = self.pending
            if interrupted:
                pending = dataclasses.replace(pending, state="interrupted")
            self._finish(pending, unanswered=True)

    def _finish(self, outcome: Outcome, *, unanswered: bool = False) -> None:
        """Finish the real view once, with one Result for the whole cell."""
        self.finished = True
        if self.inner is None:
            return
        last = self.results[-1] if self.results else None
        if last is None:
            self.inner.finish(outcome)
            return
        combined = build_result(
            self.acc,
            endpoint=last.endpoint,
            model=last.model,
            request=last.request,
            timing=Timing(
                first_token=self.results[0].timing.first_token,
                total=None if self.first is None else self.clock() - self.first,
            ),
            status=last.status,
        )
        if unanswered:  # the round limit: the calls that were not run are shown
            first, *rest = combined.choices
            choices = (dataclasses.replace(first, tool_calls=last.tool_calls), *rest)
            combined = dataclasses.replace(combined, choices=choices)
        combined = dataclasses.replace(combined, usage=_summed(r.usage for r in self.results))
        self.inner.finish(dataclasses.replace(outcome, results=[combined]))


def _summed(usages: Iterable[Usage | None]) -> Usage | None:
    """Every round's usage added up (a count no round reported stays unknown)."""
    found = [u for u in usages if u is not None]
    if not found:
        return None

    def total(values: Sequence[int | None]) -> int | None:
        return None if any(v is None for v in values) else sum(v for v in values if v)

    return Usage(
        prompt_tokens=total([u.prompt_tokens for u in found]),
        completion_tokens=total([u.completion_tokens for u in found]),
        total_tokens=total([u.total_tokens for u in found]),
    )


class ToolLine:
    """One tool call's line: ``running name(args)…``, then ``name(args) → result``.

    The arguments and the result pass the one redaction step (``secrets``); the
    result is cut to 200 characters. A display updated in place, so a notebook keeps
    only the final line (a terminal prints both).
    """

    def __init__(self, name: str, arguments: str, secrets: Sequence[str | None] = ()) -> None:
        self.secrets = list(secrets)
        self.call = f"{name}({redact(arguments, self.secrets)})"
        self.display_id = f"writer-tool-{uuid.uuid4().hex}"
        self.shown = False

    def start(self) -> None:
        display({"text/plain": f"running {self.call}…"}, raw=True, display_id=self.display_id)
        self.shown = True

    def done(self, content: str, failed: bool) -> None:
        shown = preview(redact(content, self.secrets), 200)
        line = f"{self.call} failed → {shown}" if failed else f"{self.call} → {shown}"
        show = update_display if self.shown else display  # a declined call never ran
        show({"text/plain": line}, raw=True, display_id=self.display_id)
