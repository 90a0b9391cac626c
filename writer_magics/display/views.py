"""The live views without widgets, the shared static finish, and the factory.

Every view is fed on the cell thread (``view.add(event)`` from the read loop) and
finished in the caller's ``finally``; all display calls happen on that thread.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Literal, Protocol, TextIO

from IPython.core import display_functions, getipython

from writer_magics.answer.result import Result
from writer_magics.display.blocks import renderable
from writer_magics.display.markup import escape_markdown, markdown_bundle
from writer_magics.display.panel import (
    Outcome,
    PanelState,
    final_markdown,
    json_size,
    sections,
    status_lines,
)
from writer_magics.display.throttle import ByteBudget, Clock, Throttle
from writer_magics.transport.events import Event

#: The ``text/plain`` of a live view: what a frontend that cannot render it shows.
PLACEHOLDER = "streaming answer… (the answer appears here when it is done)"


def live_placeholder(header: str) -> str:
    """The live view's one readable line: what is being asked, and that it is streaming."""
    return f"{header} · {PLACEHOLDER}" if header else PLACEHOLDER


ViewKind = Literal["auto", "widget", "markdown", "text"]

# IPython's display functions are untyped; these are the same functions, typed.
display: Callable[..., Any] = display_functions.display
update_display: Callable[..., Any] = display_functions.update_display
get_ipython: Callable[[], Any] = getipython.get_ipython


class LiveView(Protocol):
    """What the read loop needs: start, feed events to a panel, finish (in ``finally``).

    Every view also has ``end_panel(panel, result)`` to show one stream of a sweep as
    done while the others still run; it is left out here to keep fakes small.
    """

    def start(self) -> None: ...

    def add(self, event: Event, panel: int = 0) -> None: ...

    def finish(self, outcome: Outcome) -> None: ...


def panel_titles(panels: Sequence[str] | int) -> list[str]:
    """Titles for the panels: given (a sweep's parameters) or ``Choice i`` for ``n``."""
    if isinstance(panels, int):
        return [f"Choice {i + 1}" for i in range(panels)] if panels > 1 else [""]
    return list(panels) or [""]


class PanelSet:
    """The panels of a view; one appears on the fly if an event names a new one."""

    def __init__(self, panels: Sequence[str] | int, clock: Clock) -> None:
        self.clock = clock
        self.states = [PanelState(title, clock) for title in panel_titles(panels)]

    def get(self, index: int) -> PanelState:
        while index >= len(self.states):
            self.states.append(PanelState(f"Choice {len(self.states) + 1}", self.clock))
        return self.states[index]

    @property
    def titles(self) -> list[str]:
        return [s.title for s in self.states]


def static_finish(display_id: str, started: bool, outcome: Outcome, titles: Sequence[str]) -> int:
    """Replace the live display with static output; returns the bytes it published.

    The answer becomes one ``text/markdown`` (escaped for the renderer) + ``text/plain``
    (as received) bundle, what saved notebooks, nbconvert and GitHub show with no
    widget state, followed by the usage line as a separate ``text/plain`` output so it
    never pollutes the answer.
    """
    answer = final_markdown(sections(outcome, titles))
    usage = "\n".join(status_lines(outcome, titles))
    first = markdown_bundle(answer) if answer else {"text/plain": usage}
    show = update_display if started else display
    show(first, raw=True, display_id=display_id)
    sent = json_size(first)
    if answer:
        display({"text/plain": usage}, raw=True)
        sent += json_size(usage)
    return sent


class TextView:
    """Terminal IPython / plain Python: each delta is written to stdout once, as it comes.

    Only the first panel streams (interleaved choices would be unreadable); the
    others, tool calls and sources are printed at the finish, then the usage line.
    """

    def __init__(
        self, header: str = "", *, panels: Sequence[str] | int = 1, stream: TextIO | None = None
    ) -> None:
        self.header = header
        self.titles = panel_titles(panels)
        self.stream = stream
        self.parts: list[str] = []

    @property
    def out(self) -> TextIO:
        return self.stream if self.stream is not None else sys.stdout

    def start(self) -> None:
        """Nothing to show yet: the text itself is the progress."""

    def add(self, event: Event, panel: int = 0) -> None:
        text = getattr(event, "text", None)
        if panel == 0 and isinstance(text, str) and text:
            self.parts.append(text)
            self.out.write(text)
            self.out.flush()

    def end_panel(self, panel: int, result: Result) -> None:
        """Panels are printed at the finish; nothing to do early."""

    def finish(self, outcome: Outcome) -> None:
        printed = "".join(self.parts)
        found = sections(outcome, self.titles)
        chunks: list[str] = []
        for i, section in enumerate(found):
            if i == 0 and printed and section.text.startswith(printed):
                chunks.append(section.text[len(printed) :])
            elif i == 0 and printed:
                chunks.append("")  # the streamed text stands; do not print it twice
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
    """Rich display without widgets: one Markdown display, throttled updates, static finish.

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
    ) -> None:
        self.header = header
        self.panels = PanelSet(panels, clock)
        self.throttle = Throttle(max_per_second=max_updates_per_second, clock=clock)
        self.budget = ByteBudget(ratio=budget_ratio, slack=2048)
        self.display_id = f"writer-{uuid.uuid4().hex}"
        self.started = False
        self.updates = 0
        self.ended: dict[int, str] = {}

    def _markdown(self) -> str:
        parts = [f"<small>{escape_markdown(self.header)}</small>"] if self.header else []
        several = len(self.panels.states) > 1
        for i, state in enumerate(self.panels.states):
            if several:
                parts.append(f"**{escape_markdown(state.title)}**")
            parts.extend(escape_markdown(p) for p in (renderable(state.text), state.extras()) if p)
            parts.append(f"<small>{escape_markdown(self.ended.get(i) or state.status())}</small>")
        return "\n\n".join(parts)

    def _bundle(self) -> dict[str, Any]:
        md = self._markdown()
        return {"text/markdown": md, "text/plain": live_placeholder(self.header)}

    def start(self) -> None:
        display(self._bundle(), raw=True, display_id=self.display_id)
        self.started = True

    def add(self, event: Event, panel: int = 0) -> None:
        self.panels.get(panel).add(event)
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

    def end_panel(self, panel: int, result: Result) -> None:
        self.panels.get(panel)
        self.ended[panel] = result.usage_line()
        self._update(force=True)

    def finish(self, outcome: Outcome) -> None:
        self.budget.spend(static_finish(self.display_id, self.started, outcome, self.panels.titles))


def auto_kind(shell: Any) -> Literal["widget", "markdown", "text"]:
    """Widgets in a kernel, text in terminal IPython or plain Python, Markdown otherwise."""
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
) -> LiveView:
    """The live view for this frontend (``auto``) or the one asked for."""
    if shell is None:
        shell = get_ipython()
    chosen = auto_kind(shell) if kind == "auto" else kind
    if chosen == "widget":
        from writer_magics.display.widget import WidgetView

        return WidgetView(
            header,
            panels=panels,
            max_updates_per_second=max_updates_per_second,
            clock=clock,
            shell=shell,
        )
    if chosen == "markdown":
        return MarkdownView(
            header, panels=panels, max_updates_per_second=max_updates_per_second, clock=clock
        )
    if chosen == "text":
        return TextView(header, panels=panels)
    raise ValueError(f"unknown view kind {kind!r}; use auto, widget, markdown or text")
