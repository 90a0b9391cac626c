"""Several panels side by side (a sweep, ``n`` > 1): one HTML display, live and finished.

The view is ONE display output whose ``text/html`` is a CSS grid of cells, one per
panel: its title, its answer (Markdown rendered to HTML here, in the kernel, by
markdown-it-py) and one quiet status line. While the answers stream the same HTML is
re-sent with ``update_display`` (rate-limited, and held to a byte budget that is a
multiple of the answers' size, so the bytes stay linear whatever their length); the
static finish is that same structure with the final text and each panel's usage line
in place of its live status, so nothing moves when the cell ends. The finish bundle
also carries ``text/markdown`` (the stacked Markdown of every panel, what a frontend
without HTML shows) and ``text/plain`` (stacked readable text, for a terminal).

What the HTML must survive, and how:

- **The model's raw HTML** (``<script>``, ``<details>``, ``x<y>``): markdown-it-py runs
  with ``html`` off, so every tag the model wrote is text, escaped; links go through
  its URL check (``javascript:`` and friends are not linked). Bare URLs are linked
  (linkify-it-py), as JupyterLab's Markdown renderer links them.
- **Math**: JupyterLab typesets HTML outputs with MathJax 3, nbconvert's export with
  MathJax 2. The grid carries both ignore classes (``mathjax_ignore`` for 3,
  ``tex2jax_ignore`` for 2), and every ``$`` in text is in its own ``<span>`` too
  (``answer.markdown.escape_html``), which no MathJax pairs across.
- **The sanitiser** of an untrusted notebook (a saved notebook opened elsewhere) keeps
  ``style`` attributes it can parse and drops ``<style>`` elements: so every style is
  inline, and the grid's columns come with a plainer fallback declaration first.
- **Dark themes**: the text keeps the theme's colour; the one colour set (the line
  between panels) is a JupyterLab CSS variable, and quiet lines are quiet by opacity.
- **Code**: fenced and indented code keeps its lines (``white-space: pre``) and
  scrolls sideways in its own box, never wrapping mid-identifier; wide tables scroll
  too, and a cell never pushes its neighbours (``min-width: 0``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.token import Token

from writer_magics.answer.markdown import escape_html, escape_markdown, markdown_bundle
from writer_magics.answer.result import Accumulator
from writer_magics.display.blocks import hold_back, renderable, split_finished
from writer_magics.display.finish import Stamp, display, update_display
from writer_magics.display.panel import (
    Outcome,
    PanelSet,
    Section,
    final_markdown,
    json_size,
    live_placeholder,
    sections,
    status_lines,
)
from writer_magics.display.throttle import ByteBudget, Clock, Throttle
from writer_magics.errors import redact_answer
from writer_magics.transport.events import Event

#: The grid: as many columns of at least 15em as fit (4 share a row at 1400 px, even with
#: JupyterLab's file browser open), one column when narrower. The first declaration is
#: for sanitisers that refuse ``min()``.
GRID_STYLE = (
    "display:grid;"
    "grid-template-columns:repeat(auto-fit,minmax(15em,1fr));"
    "grid-template-columns:repeat(auto-fit,minmax(min(100%,15em),1fr));"
    "gap:.5em 1em;align-items:start"
)
#: One panel: may shrink below its content's width (its code scrolls instead).
CELL_STYLE = "min-width:0;border-top:1px solid var(--jp-border-color2);padding-top:.25em"
#: The answer inside a cell: anything still too wide scrolls inside it.
ANSWER_STYLE = "min-width:0;overflow-x:auto"
#: Header, live status and footer: small and quiet, wrapped only between words. Quiet
#: by opacity, not a colour: the sanitiser of a reopened (untrusted) notebook drops
#: ``var(...)`` colours, and the line must look the same live, finished and reopened,
#: in light and dark themes.
QUIET_STYLE = "font-size:smaller;opacity:.75;word-break:normal;overflow-wrap:normal"
#: Code blocks keep their lines and scroll sideways (the ``code`` inside too: JupyterLab
#: gives both ``pre-wrap`` and ``break-all``).
CODE_STYLE = "white-space:pre;word-break:normal;overflow-wrap:normal"
PRE_STYLE = f"overflow-x:auto;{CODE_STYLE}"
#: What markdown-it starts a code block with, and what the grid starts it with.
PRE_OPEN = ("<pre><code", f'<pre style="{PRE_STYLE}"><code style="{CODE_STYLE}"')
#: Classes on the grid: MathJax 3 (JupyterLab) and MathJax 2 (nbconvert) skip it.
GRID_CLASSES = "writer-magics-grid mathjax_ignore tex2jax_ignore"
#: An empty line keeps its height (a panel with no status line at the finish).
BLANK = "&#160;"

#: Statuses tick (``waiting… 1.2 s``) at most this often.
STATUS_INTERVAL = 0.5
#: Live frames re-send every panel's answer: their bytes stay below this many times
#: the answers' bytes (plus ``BUDGET_SLACK``), so updates thin out as answers grow.
BUDGET_RATIO = 6.0
#: Bytes of live frames allowed on top of the ratio: short answers stream at the full
#: rate (about ten seconds of two chat answers at six frames a second). (Frames before
#: any answer text, statuses alone, are small and not counted.)
BUDGET_SLACK = 196_608


def _markdown_it() -> MarkdownIt:
    """CommonMark + GFM tables, strikethrough and bare links, raw HTML off, inline styles."""
    options = {"html": False, "linkify": True}
    md = MarkdownIt("commonmark", options).enable(["table", "strikethrough", "linkify"])
    rules: dict[str, Any] = getattr(md.renderer, "rules")  # noqa: B009 (RendererHTML's)
    fence, code_block = rules["fence"], rules["code_block"]

    def text(tokens: Sequence[Token], idx: int, *_: Any) -> str:
        return escape_html(tokens[idx].content)

    def styled_pre(render: Callable[..., str]) -> Callable[..., str]:
        def rule(tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
            return render(tokens, idx, options, env).replace(*PRE_OPEN, 1)

        return rule

    def table_open(*_: Any) -> str:
        return '<div style="overflow-x:auto"><table>\n'

    def table_close(*_: Any) -> str:
        return "</table></div>\n"

    rules["text"] = text
    rules["fence"] = styled_pre(fence)
    rules["code_block"] = styled_pre(code_block)
    rules["table_open"] = table_open
    rules["table_close"] = table_close
    return md


class MarkdownHtml:
    """Markdown to HTML for the grid (see the module docstring for what is made safe)."""

    def __init__(self) -> None:
        self.md = _markdown_it()

    def __call__(self, markdown: str) -> str:
        """``markdown`` rendered; an unclosed code fence is closed first (a live tail)."""
        if not markdown.strip():
            return ""
        return str(self.md.render(renderable(markdown)))


def _quiet(text: str, cls: str) -> str:
    shown = escape_html(text) if text else BLANK
    return f'<div class="{cls}" style="{QUIET_STYLE}">{shown}</div>'


@dataclass(frozen=True)
class Cell:
    """What one grid cell shows: title, answer (HTML) and the status or footer line."""

    title: str
    answer: str
    status: str


def grid_html(header: str, cells: Sequence[Cell], below: Sequence[str] = ()) -> str:
    """The grid: the header line, one cell per panel, then lines that span every panel."""
    parts = [f'<div class="{GRID_CLASSES}">']
    if header:
        parts.append(_quiet(header, "writer-magics-header"))
    parts.append(f'<div style="{GRID_STYLE}">')
    for cell in cells:
        title = f"<strong>{escape_html(cell.title)}</strong>" if cell.title else BLANK
        parts.append(
            f'<section class="writer-magics-panel" style="{CELL_STYLE}">'
            f'<div class="writer-magics-title">{title}</div>'
            f'<div class="writer-magics-answer" style="{ANSWER_STYLE}">{cell.answer}</div>'
            f"{_quiet(cell.status, 'writer-magics-status')}</section>"
        )
    parts.append("</div>")
    parts.extend(_quiet(line, "writer-magics-footer") for line in below)
    parts.append("</div>")
    return "".join(parts)


def stacked_plain(header: str, found: Sequence[Section], footers: Sequence[str]) -> str:
    """Readable text of every panel, one after the other (what a terminal shows)."""
    lines = [header] if header else []
    for i, section in enumerate(found):
        lines.append(f"--- {section.title} ---")
        lines.extend(part for part in (section.text, section.extras) if part)
        if i < len(footers) and footers[i]:
            lines.append(footers[i])
        lines.append("")
    return "\n".join(lines).rstrip("\n")


class GridView:
    """Panels side by side in one HTML display (sweeps and ``n`` > 1), no widgets.

    ``start`` shows every panel with its status (``queued``, ``waiting… 1.2 s``), ``add``
    and ``tick`` re-send the grid when the rate (``max_updates_per_second``; statuses at
    most every ``STATUS_INTERVAL``) and the byte budget allow, ``finish`` replaces it by
    the static bundle (``text/html`` grid, ``text/markdown`` stacked, ``text/plain``)
    with ``stamp(outcome)`` as its metadata.
    """

    def __init__(
        self,
        header: str = "",
        *,
        panels: Sequence[str] | int = 2,
        max_updates_per_second: float = 6.0,
        clock: Clock = time.monotonic,
        stamp: Stamp | None = None,
        budget_ratio: float = BUDGET_RATIO,
        secrets: Sequence[str | None] = (),
    ) -> None:
        self.header = header
        self.stamp = stamp
        self.clock = clock
        self.secrets = tuple(secrets)
        self.panels = PanelSet(panels, clock)
        self.throttle = Throttle(max_per_second=max_updates_per_second, clock=clock)
        self.budget = ByteBudget(ratio=budget_ratio, slack=BUDGET_SLACK)
        self.render = MarkdownHtml()
        self.display_id = f"writer-{uuid.uuid4().hex}"
        self.started = False
        self.frames = 0  # live frames sent after the first display
        self.live_bytes = 0  # bytes of every live frame, the first display included
        self.status_at: float | None = None
        self._cache: dict[int, tuple[str, str, str]] = {}  # panel -> (text, extras, html)
        self.changed = False  # events arrived since the last frame
        self._chrome = 0  # bytes of a frame without answers (titles, styles, statuses)
        self._last_cost = 0
        self._last_produced = 0

    # ------------------------------------------------------------------ live

    def _clean(self, text: str) -> str:
        """``text`` without the secrets in play (the answer may echo a key: shown, never)."""
        return redact_answer(text, self.secrets)

    def produced(self) -> int:
        """Bytes of answer text received so far, every panel (the budget grows with it)."""
        return sum(len(s.text.encode()) for s in self.panels.states)

    def _answer(self, index: int) -> str:
        state = self.panels.states[index]
        text, extras = state.text, state.extras()
        cached = self._cache.get(index)
        if cached is not None and cached[:2] == (text, extras):
            return cached[2]
        finished, tail = split_finished(text)  # half-written Markdown never shows raw
        shown = self.render(self._clean(finished + hold_back(tail))) + self.render(
            self._clean(extras)
        )
        self._cache[index] = (text, extras, shown)
        return shown

    def _live_bundle(self) -> dict[str, str]:
        cells = [
            Cell(state.title, self._answer(i), state.status())
            for i, state in enumerate(self.panels.states)
        ]
        return {
            "text/html": grid_html(self.header, cells),
            "text/plain": live_placeholder(self.header),
        }

    def start(self) -> None:
        """Show the grid: every panel titled, with its status and no answer yet."""
        bundle = self._live_bundle()
        display(bundle, raw=True, display_id=self.display_id)
        self.started = True
        self.status_at = self.clock()
        self.live_bytes += json_size(bundle)
        self._chrome = self._last_cost = json_size(bundle)

    def add(self, event: Event, panel: int = 0, fold: Accumulator | None = None) -> None:
        self.panels.get(panel).add(event, fold)
        self.changed = True
        self._update()

    def tick(self) -> None:
        """Re-send the statuses (ticking timers) at most every ``STATUS_INTERVAL``."""
        now = self.clock()
        if self.status_at is not None and now - self.status_at < STATUS_INTERVAL:
            return
        self._update(statuses=True)

    def _estimate(self, produced: int) -> int:
        """A frame's bytes now, from the last one: the answers' part grows in proportion."""
        if not self._last_produced:
            return self._chrome + produced
        content = self._last_cost - self._chrome
        return self._chrome + content * produced // self._last_produced

    def _update(self, statuses: bool = False) -> None:
        if not self.started or not (statuses or self.changed) or not self.throttle.due():
            return
        produced = self.produced()
        # Rendering costs time too: no render when the estimate says the budget is spent.
        if produced and not self.budget.allows(self._estimate(produced), produced):
            self.throttle.mark()
            return
        bundle = self._live_bundle()
        cost = json_size(bundle)
        if produced and not self.budget.allows(cost, produced):
            self.throttle.mark()  # decided for this tick: do not render on every event
            return
        update_display(bundle, raw=True, display_id=self.display_id)
        self.throttle.mark()
        self.status_at = self.clock()
        self.changed = False
        self.frames += 1
        self.live_bytes += cost
        if produced:  # before any text, statuses alone: small frames, twice a second
            self.budget.spend(cost)
        self._last_cost, self._last_produced = cost, produced

    # ------------------------------------------------------------------ finish

    def finish(self, outcome: Outcome) -> None:
        """Replace the live grid by the static bundle (same layout, final content)."""
        bundle = self.final_bundle(outcome)
        metadata = self.stamp(outcome) if self.stamp is not None else None
        show = update_display if self.started else display
        show(bundle, raw=True, display_id=self.display_id, metadata=metadata)

    def final_bundle(self, outcome: Outcome) -> dict[str, str]:
        """``text/html`` grid + ``text/markdown`` stacked + ``text/plain`` stacked."""
        titles = self.panels.titles
        found = [
            Section(s.title, self._clean(s.text), self._clean(s.extras))
            for s in sections(outcome, titles)
        ]
        while len(found) < len(titles):  # a panel that never answered keeps its place
            found.append(Section(titles[len(found)], "", ""))
        lines = status_lines(outcome, [s.title for s in found])
        per_panel = len(lines) == len(found)
        footers = (
            [_untitled(line, s.title) for line, s in zip(lines, found, strict=True)]
            if per_panel
            else []
        )
        below = [] if per_panel else lines
        cells = [
            Cell(
                s.title,
                self.render(s.text) + self.render(s.extras),
                footers[i] if per_panel else "",
            )
            for i, s in enumerate(found)
        ]
        markdown = markdown_bundle(final_markdown(found))["text/markdown"]
        usage = usage_markdown(lines)
        return {
            "text/html": grid_html(self.header, cells, below),
            "text/markdown": f"{markdown}\n\n---\n\n{usage}" if markdown else usage,
            "text/plain": stacked_plain(self.header, found, footers if per_panel else [])
            + ("" if per_panel else "\n" + "\n".join(lines)),
        }


def _untitled(line: str, title: str) -> str:
    """A panel's status line without the ``title: `` that the stacked text needs."""
    prefix = f"{title}: "
    return line[len(prefix) :] if line.startswith(prefix) else line


def usage_markdown(lines: Sequence[str]) -> str:
    """The status lines as small Markdown paragraphs (escaped; never read as a list)."""
    return "\n\n".join(f"<small>{escape_markdown(line)}</small>" for line in lines)
