"""The live views' protocol, the terminal and stacked-Markdown views, and the factory.

One answer in a kernel or a rich shell is shown by :class:`~writer_magics.display.live.AnswerView`
(plain display outputs, no widgets); several panels (``n`` > 1, sweeps) by the widget
view in a kernel and :class:`MarkdownView` in a rich shell; a terminal gets :class:`TextView`.

Every view is fed on the cell thread (``view.add(event)`` from the read loop) and
finished in the caller's ``finally``; all display calls happen on that thread.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Literal, Protocol, TextIO

from IPython.core import getipython

from writer_magics.answer.markdown import escape_markdown
from writer_magics.answer.result import Accumulator
from writer_magics.display.blocks import renderable
from writer_magics.display.finish import Stamp, display, static_finish, update_display
from writer_magics.display.panel import (
    Outcome,
    PanelSet,
    json_size,
    live_placeholder,
    panel_titles,
    sections,
    status_lines,
)
from writer_magics.display.throttle import ByteBudget, Clock, Throttle
from writer_magics.transport.events import Event

ViewKind = Literal["auto", "widget", "markdown", "text"]

get_ipython: Callable[[], Any] = getipython.get_ipython


class LiveView(Protocol):
    """What the read loop needs: start, feed events to a panel, tick, finish (in ``finally``).

    ``tick`` is called by :func:`writer_magics.send.execute` about every 0.1 s while no
    event arrives, so that the status (``waiting… 1.2 s``) ticks during first-token
    latency and text held back by the byte budget is shown; a view may ignore it.

    ``add`` gets each event with ``fold``, the request's Accumulator that already holds
    it: the view reads that state and folds nothing itself (without ``fold`` a panel
    keeps its own, for views fed by hand).
    """

    def start(self) -> None: ...

    def add(self, event: Event, panel: int = 0, fold: Accumulator | None = None) -> None: ...

    def tick(self) -> None: ...

    def finish(self, outcome: Outcome) -> None: ...


#: How often an idle stacked Markdown view re-sends itself so that its status ticks.
TICK_SECONDS = 0.5
#: Shown in a terminal until the first token arrives (then erased in place).
TEXT_WAITING = "waiting for the first token…"
#: Carriage return + erase line: removes the waiting indicator on a terminal.
_ERASE_LINE = "\r\x1b[2K"


class TextView:
    """Terminal IPython / plain Python: each delta is written to stdout once, as it comes.

    Only the first panel streams (interleaved choices would be unreadable); the
    others, tool calls and sources are printed at the finish, then the usage line.
    With several panels every one has a ``--- title ---`` line, the first one too.
    On a terminal (``isatty``) a waiting indicator stands until the first token and
    is then erased in place; a pipe or captured output never gets it.
    """

    def __init__(
        self, header: str = "", *, panels: Sequence[str] | int = 1, stream: TextIO | None = None
    ) -> None:
        self.header = header
        self.titles = panel_titles(panels)
        self.stream = stream
        self.parts: list[str] = []
        self.waiting = False
        self.titled = False

    @property
    def out(self) -> TextIO:
        return self.stream if self.stream is not None else sys.stdout

    def _is_terminal(self) -> bool:
        isatty = getattr(self.out, "isatty", None)
        try:
            return bool(isatty()) if callable(isatty) else False
        except (OSError, ValueError):  # a closed or odd stream
            return False

    def _title_first(self) -> None:
        if not self.titled and len(self.titles) > 1:
            self.out.write(f"--- {self.titles[0]} ---\n")
            self.titled = True

    def _stop_waiting(self) -> None:
        if self.waiting:
            self.out.write(_ERASE_LINE)
            self.waiting = False

    def start(self) -> None:
        """The first panel's title (several panels), then the waiting indicator (terminal)."""
        self._title_first()
        if self._is_terminal():
            self.out.write(TEXT_WAITING)
            self.waiting = True
        self.out.flush()

    def add(self, event: Event, panel: int = 0, fold: Accumulator | None = None) -> None:
        text = getattr(event, "text", None)
        if panel == 0 and isinstance(text, str) and text:
            self._stop_waiting()
            self._title_first()
            self.parts.append(text)
            self.out.write(text)
            self.out.flush()

    def tick(self) -> None:
        """Nothing ticks on a terminal (the waiting indicator is one fixed line)."""

    def finish(self, outcome: Outcome) -> None:
        self._stop_waiting()
        printed = "".join(self.parts)
        found = sections(outcome, self.titles)
        chunks: list[str] = []
        for i, section in enumerate(found):
            if i == 0 and printed and section.text.startswith(printed):
                chunks.append(section.text[len(printed) :])
            elif i == 0 and printed:
                chunks.append("")  # the streamed text stands; do not print it twice
            elif i == 0:  # nothing streamed (--no-stream, a cache hit): no blank line first
                title = f"--- {section.title} ---\n" if len(found) > 1 and not self.titled else ""
                chunks.append(f"{title}{section.text}")
            else:
                title = f"--- {section.title} ---\n" if len(found) > 1 else ""
                chunks.append(f"\n{title}{section.text}" if section.text else "")
            if section.extras:
                chunks.append(f"\n{section.extras}")
        body = "".join(chunks)
        written = printed + body
        end = "" if not written or written.endswith("\n") else "\n"
        self.out.write(body + end + "\n".join(status_lines(outcome, self.titles)) + "\n")
        self.out.flush()


class MarkdownView:
    """Several panels in a rich shell: one stacked Markdown display, throttled updates.

    (One answer takes :class:`~writer_magics.display.live.AnswerView`.)

    Each update re-sends the text so far, so updates are also held to a byte budget
    (``budget_ratio`` x the answer) that stays linear in the answer's size.
    """

    def __init__(
        self,
        header: str = "",
        *,
        panels: Sequence[str] | int = 1,
        max_updates_per_second: float = 10.0,
        clock: Clock = time.monotonic,
        budget_ratio: float = 2.0,
        stamp: Stamp | None = None,
    ) -> None:
        self.header = header
        self.stamp = stamp
        self.panels = PanelSet(panels, clock)
        self.throttle = Throttle(max_per_second=max_updates_per_second, clock=clock)
        self.budget = ByteBudget(ratio=budget_ratio, slack=2048)
        self.display_id = f"writer-{uuid.uuid4().hex}"
        self.started = False
        self.updates = 0

    def _markdown(self) -> str:
        parts = [f"<small>{escape_markdown(self.header)}</small>"] if self.header else []
        several = len(self.panels.states) > 1
        for state in self.panels.states:
            if several:
                parts.append(f"**{escape_markdown(state.title)}**")
            parts.extend(escape_markdown(p) for p in (renderable(state.text), state.extras()) if p)
            parts.append(f"<small>{escape_markdown(state.status())}</small>")
        return "\n\n".join(parts)

    def _bundle(self) -> dict[str, Any]:
        md = self._markdown()
        return {"text/markdown": md, "text/plain": live_placeholder(self.header)}

    def start(self) -> None:
        display(self._bundle(), raw=True, display_id=self.display_id)
        self.started = True

    def add(self, event: Event, panel: int = 0, fold: Accumulator | None = None) -> None:
        self.panels.get(panel).add(event, fold)
        self._update()

    def tick(self) -> None:
        """Let the status lines tick, at most every ``TICK_SECONDS`` (the whole text is re-sent)."""
        last = self.throttle.last
        if self.started and (last is None or self.throttle.clock() - last >= TICK_SECONDS):
            self._update()

    def _update(self, force: bool = False) -> None:
        if not (force or self.throttle.due()):
            return
        bundle = self._bundle()
        cost = json_size(bundle)
        produced = sum(json_size(s.text) for s in self.panels.states)
        if not force and self.throttle.last is not None and not self.budget.allows(cost, produced):
            self.throttle.mark()  # decided for this tick: do not rebuild on every event
            return
        update_display(bundle, raw=True, display_id=self.display_id)
        self.throttle.mark()
        self.budget.spend(cost)
        self.updates += 1

    def finish(self, outcome: Outcome) -> None:
        self.budget.spend(
            static_finish(self.display_id, self.started, outcome, self.panels.titles, self.stamp)
        )


def auto_kind(shell: Any) -> Literal["widget", "markdown", "text"]:
    """``widget`` in a kernel, text in terminal IPython or plain Python, Markdown otherwise.

    ``widget`` and ``markdown`` both show one answer as plain display outputs
    (:class:`~writer_magics.display.live.AnswerView`); they differ only for several panels.
    """
    if shell is None:
        return "text"
    if getattr(shell, "kernel", None) is not None:
        return "widget"
    if any(cls.__name__ == "TerminalInteractiveShell" for cls in type(shell).__mro__):
        return "text"
    return "markdown"


def open_view(
    kind: ViewKind = "auto",
    header: str = "",
    *,
    panels: Sequence[str] | int = 1,
    max_updates_per_second: float = 10.0,
    clock: Clock = time.monotonic,
    shell: Any = None,
    stamp: Stamp | None = None,
) -> LiveView:
    """The live view for this frontend (``auto``) or the one asked for.

    ``stamp`` builds the static finish's output metadata (the text view has none)."""
    if shell is None:
        shell = get_ipython()
    chosen = auto_kind(shell) if kind == "auto" else kind
    one = len(panel_titles(panels)) == 1
    if chosen in ("widget", "markdown") and one:
        from writer_magics.display.live import AnswerView

        return AnswerView(
            header,
            panels=panels,
            max_updates_per_second=max_updates_per_second,
            clock=clock,
            stamp=stamp,
        )
    if chosen == "widget":
        from writer_magics.display.widget import WidgetView

        return WidgetView(
            header,
            panels=panels,
            max_updates_per_second=max_updates_per_second,
            clock=clock,
            shell=shell,
            stamp=stamp,
        )
    if chosen == "markdown":
        return MarkdownView(
            header,
            panels=panels,
            max_updates_per_second=max_updates_per_second,
            clock=clock,
            stamp=stamp,
        )
    if chosen == "text":
        return TextView(header, panels=panels)
    raise ValueError(f"unknown view kind {kind!r}; use auto, widget, markdown or text")
