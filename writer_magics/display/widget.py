"""The live widget view: header, one panel per stream (text, tool calls, status), static finish.

Bytes on the wire stay linear in the answer: finished Markdown blocks are sent once,
each as a new small Output widget appended to the last group (a VBox of at most
``GROUP`` Outputs) of the panel's "sealed" box, so a seal never re-sends a long list
of children; sealing waits until it is worth its overhead (ski rental against
re-sending), and only the unfinished tail is re-sent on each tick.

Answer text travels only in widget state, never as ``display_data`` routed into an
Output by ``msg_id``: a frontend without a widget manager would show such messages
as loose outputs in the cell. That frontend sees the view's ``text/plain``
placeholder line instead, then the static finish (the one answer a saved notebook
keeps). The price is bytes: about 2.4x the answer while it streams, against 1.6x
for ``msg_id`` routing (see tests/test_display.py).

There is no Stop button: the kernel handles no widget messages while the cell runs,
so the kernel interrupt (Ctrl-C / the toolbar's stop) is the cancel.
"""

from __future__ import annotations

import html
import time
import uuid
from collections.abc import Sequence
from typing import Any

import ipywidgets as widgets

from writer_magics.answer.markdown import escape_markdown
from writer_magics.answer.result import Accumulator
from writer_magics.display.blocks import cut_long_tail, renderable, scan
from writer_magics.display.finish import Stamp, display, static_finish
from writer_magics.display.panel import Outcome, PanelSet, PanelState, json_size, live_placeholder
from writer_magics.display.throttle import ByteBudget, Clock, Throttle
from writer_magics.transport.events import Event

#: Re-sending finished blocks in the tail until they cost this much, then sealing them
#: (ski rental: never pay more than about twice the cheaper of the two).
SEAL_AFTER = 256
#: An unfinished block longer than this is cut at a line break (a long code block).
TAIL_LIMIT = 512
#: The status line changes every tick; sending it at most this often keeps it cheap.
STATUS_INTERVAL = 0.5
#: However tight the byte budget, new text is never held back longer than this: a
#: slow stream with a long unfinished block must still read as live.
MAX_QUIET = 0.15
#: Bytes of one new Output widget's state besides its outputs (comm_open), measured.
OUTPUT_STATE = 400
#: Bytes one more child adds to a box's ``children`` update.
CHILD_REF = 47
#: Sealed Outputs per group box: bounds the ``children`` list a seal re-sends.
GROUP = 8

JSONDict = dict[str, Any]


def _markdown_output(md: str) -> JSONDict:
    """An Output widget's output showing ``md`` escaped for the renderer (answer/markdown.py)."""
    data = {"text/markdown": escape_markdown(md)}
    return {"output_type": "display_data", "data": data, "metadata": {}}


def _small(text: str) -> str:
    return f'<span style="font-size:smaller;opacity:.7">{html.escape(text)}</span>'


class _LivePanel:
    """One stream's widgets and the bookkeeping of what the frontend already has."""

    def __init__(self, state: PanelState, view: WidgetView, title: bool) -> None:
        self.state = state
        self.view = view
        self.sealed = view._own(widgets.VBox(layout=view.layout))  # groups of Outputs
        self.tail = view._own(widgets.Output(layout=view.layout))
        self.status = view.html(_small(state.status()))
        self.throttle = Throttle(view.max_updates_per_second, view.clock)
        self.parts: list[widgets.Widget] = [self.sealed, self.tail, self.status]
        if title:
            self.parts.insert(0, view.html(f"<b>{html.escape(state.title)}</b>"))
        self.box: widgets.Widget | None = None  # a VBox when panels sit side by side
        self.pos = 0  # text[:pos] is in the sealed Output
        self.carry = ""  # a reopened code fence that prefixes text[pos:]
        self.resent = 0  # bytes of finished blocks re-sent in the tail since the last seal
        self.shown: tuple[JSONDict, ...] = ()
        self.status_at: float | None = None
        self.sent_at: float | None = None  # when the frontend last got anything new

    def tick(self, force: bool = False) -> None:
        """Send what changed if the rate and the byte budget allow it (or ``force``)."""
        if not (force or self.throttle.due()):
            return
        pending = self.carry + self.state.text[self.pos :]
        end, _ = scan(pending)
        overhead = self.view.seal_overhead(self)
        limit = max(TAIL_LIMIT, 4 * overhead)  # a cut must be worth a seal too
        head, carry, consumed = cut_long_tail(pending[end:], limit)
        seal = pending[:end] + head
        sealing = bool(seal) and (
            consumed > 0 or force or self.resent + end >= max(SEAL_AFTER, overhead)
        )
        tail = carry + pending[end + consumed :] if sealing else pending
        extras = self.state.extras()
        outputs = tuple(_markdown_output(md) for md in (renderable(tail), extras) if md)
        now = self.view.clock()
        status = None
        if force or self.status_at is None or now - self.status_at >= STATUS_INTERVAL:
            status = _small(self.state.status())
        cost = (self.view.seal_cost(self, seal) if sealing else 0) + (
            json_size({"outputs": outputs}) if outputs != self.shown else 0
        )
        if status is not None and status != self.status.value:
            cost += json_size({"value": status})
        if cost == 0:
            return  # nothing new to show: do not use up this tick
        budget = self.view.budget
        first = self.sent_at is None
        quiet = not first and now - (self.sent_at or now) >= MAX_QUIET
        if not (force or first or quiet or budget.allows(cost, self.view.produced())):
            self.throttle.mark()  # decided for this tick: do not rescan on every event
            return
        if sealing:
            self.view.append_sealed(self, seal)
            self.pos += end + consumed - len(self.carry)
            self.carry = carry if consumed else ""
            self.resent = 0
        else:
            self.resent += end
        if outputs != self.shown:
            self.tail.outputs = outputs
            self.shown = outputs
            self.view.tail_updates += 1
        if status is not None and status != self.status.value:
            self.status.value = status
            self.status_at = now
        self.throttle.mark()
        self.sent_at = now
        budget.spend(cost)


class WidgetView:
    """Live widgets in a kernel: ``VBox[header, panels (side by side), ...]``.

    Each panel is ``VBox[title?, sealed, tail Output, status HTML]`` (``sealed`` is a
    VBox of groups of Outputs) fed by one stream (a choice of ``n``, or one request of
    a sweep). Markdown is rendered by the frontend from ``text/markdown`` outputs.
    The kernel interrupt is the cancel.
    """

    def __init__(
        self,
        header: str = "",
        *,
        panels: Sequence[str] | int = 1,
        max_updates_per_second: float = 10.0,
        clock: Clock = time.monotonic,
        shell: Any = None,
        budget_ratio: float = 2.4,
        stamp: Stamp | None = None,
    ) -> None:
        self.header = header
        self.stamp = stamp
        self.clock = clock
        self.max_updates_per_second = max_updates_per_second
        self.shell = shell
        self.budget = ByteBudget(ratio=budget_ratio, slack=1024)
        self.panels = PanelSet(panels, clock)
        self.display_id = f"writer-{uuid.uuid4().hex}"
        # Every widget brings a Layout (1 KB of state) and an HTML its Style: share one each.
        self.layout = widgets.Layout()
        self.style = widgets.widget_string.HTMLStyle()
        self.created: list[widgets.Widget] = [self.layout, self.style]
        self.live: list[_LivePanel] = []
        self.grid: widgets.GridBox | None = None
        self.started = False
        self.tail_updates = 0
        several = len(self.panels.states) > 1
        for i in range(len(self.panels.states)):
            self._panel(i)
        self.root = self._own(widgets.VBox(layout=self.layout))
        head = [self.html(_small(header))] if header else []
        self.root.children = (*head, self._grid()) if several else (*head, *self.live[0].parts)

    def _own(self, widget: Any) -> Any:
        self.created.append(widget)
        return widget

    def html(self, value: str) -> widgets.HTML:
        return self._own(widgets.HTML(value, layout=self.layout, style=self.style))

    def _grid(self) -> widgets.GridBox:
        """Panels side by side, at most three a row (a sweep wraps into a grid)."""
        if self.grid is None:
            layout = self._own(widgets.Layout(grid_gap="0 1em"))
            self.grid = self._own(widgets.GridBox(layout=layout))
        boxes = []
        for panel in self.live:
            if panel.box is None:
                panel.box = self._own(widgets.VBox(panel.parts, layout=self.layout))
            boxes.append(panel.box)
        columns = min(len(boxes), 3)
        self.grid.layout.grid_template_columns = f"repeat({columns}, minmax(0, 1fr))"
        self.grid.children = tuple(boxes)
        return self.grid

    def _panel(self, index: int) -> _LivePanel:
        self.panels.get(index)
        if len(self.live) < len(self.panels.states):
            while len(self.live) < len(self.panels.states):
                state = self.panels.states[len(self.live)]
                self.live.append(_LivePanel(state, self, title=len(self.panels.states) > 1))
            if hasattr(self, "root"):  # a panel no one announced: switch to the grid
                head = self.root.children[:1] if self.header else ()
                self.root.children = (*head, self._grid())
        return self.live[index]

    def produced(self) -> int:
        """Bytes of answer text received so far (the budget grows with it)."""
        return sum(len(s.text.encode()) for s in self.panels.states)

    def start(self) -> None:
        """Show the widgets; their ``text/plain`` is one readable placeholder line."""
        bundle = dict(self.root._repr_mimebundle_())
        bundle["text/plain"] = live_placeholder(self.header)
        display(bundle, raw=True, display_id=self.display_id)
        self.started = True

    def add(self, event: Event, panel: int = 0, fold: Accumulator | None = None) -> None:
        live = self._panel(panel)
        live.state.add(event, fold)
        live.tick()

    def tick(self) -> None:
        """No event for a while: let every panel's status tick (rate-limited per panel)."""
        if self.started:
            for live in self.live:
                live.tick()

    def seal_overhead(self, panel: _LivePanel) -> int:
        """Bytes a seal costs besides its Markdown: a new Output, one more child (and
        a new group box when the last one is full)."""
        groups = panel.sealed.children
        if groups and len(groups[-1].children) < GROUP:
            return OUTPUT_STATE + CHILD_REF * (len(groups[-1].children) + 1)
        return 2 * OUTPUT_STATE + CHILD_REF * (len(groups) + 2)

    def seal_cost(self, panel: _LivePanel, md: str) -> int:
        """Bytes an :meth:`append_sealed` of ``md`` sends (the widget states it sets)."""
        return self.seal_overhead(panel) + json_size(_markdown_output(md))

    def append_sealed(self, panel: _LivePanel, md: str) -> None:
        """Add finished Markdown to a panel as a new Output (sent once, in widget state)."""
        out = self._own(widgets.Output(layout=self.layout, outputs=(_markdown_output(md),)))
        groups = panel.sealed.children
        if groups and len(groups[-1].children) < GROUP:
            groups[-1].children = (*groups[-1].children, out)
        else:
            group = self._own(widgets.VBox((out,), layout=self.layout))
            panel.sealed.children = (*groups, group)

    def finish(self, outcome: Outcome) -> None:
        """Replace the widgets by static Markdown + usage line, then close every widget."""
        try:
            self.budget.spend(
                static_finish(
                    self.display_id, self.started, outcome, self.panels.titles, self.stamp
                )
            )
        finally:
            self.close()

    def close(self) -> None:
        """Close every widget we made, so no widget state outlives the cell."""
        for widget in reversed(self.created):
            widget.close()
