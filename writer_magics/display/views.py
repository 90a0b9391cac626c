"""The live views' protocol, the terminal and stacked-Markdown views, and the factory.

One answer in a kernel or a rich shell is shown by :class:`~writer_magics.display.live.AnswerView`
(plain display outputs, no widgets); several panels (``n`` > 1, sweeps) side by side by
:class:`~writer_magics.display.grid.GridView` (one HTML display); a terminal gets
:class:`TextView`. No view opens a comm, so a notebook saved at any moment reads well.

Every view is fed on the cell thread (``view.add(event)`` from the read loop) and
finished in the caller's ``finally``; all display calls happen on that thread.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal, Protocol, TextIO

from IPython.core import getipython

from writer_magics.answer.result import Accumulator
from writer_magics.display.finish import Stamp, in_terminal
from writer_magics.display.panel import (
    Outcome,
    PanelState,
    panel_titles,
    sections,
    status_lines,
)
from writer_magics.display.throttle import Clock
from writer_magics.errors import redact_answer, terminal_text
from writer_magics.transport.events import STATUS_EVENTS, Event

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
    is then erased in place; a retry rewrites it with the panel's status (``retrying
    in 2.0 s (429 rate limited) · attempt 2 of 3``), so a retry that succeeds leaves
    no line behind. A pipe or captured output never gets it. What the answer says goes
    through :func:`~writer_magics.errors.terminal_text`: its control characters are
    shown, never acted on.
    """

    def __init__(
        self,
        header: str = "",
        *,
        panels: Sequence[str] | int = 1,
        stream: TextIO | None = None,
        secrets: Sequence[str | None] = (),
    ) -> None:
        self.header = header
        self.titles = panel_titles(panels)
        self.stream = stream
        self.secrets = tuple(secret for secret in secrets if secret)
        self.held = ""  # streamed text not printed yet: it may be the start of a secret
        self.parts: list[str] = []
        self.waiting = False
        self.titled = False
        self.state = PanelState(self.titles[0], time.monotonic)  # the streamed panel

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
        if panel == 0:
            self.state.add(event, fold)
            if self.waiting and isinstance(event, STATUS_EVENTS):
                self.out.write(_ERASE_LINE + self.state.status())
                self.out.flush()
        text = getattr(event, "text", None)
        if panel == 0 and isinstance(text, str) and text:
            self._stop_waiting()
            self._title_first()
            self.parts.append(text)
            self.out.write(terminal_text(self._cleared(text)))
            self.out.flush()

    def _cleared(self, text: str, *, last: bool = False) -> str:
        """What of the stream may be printed now, the secrets in play redacted.

        A key can arrive cut across pieces, and printed text cannot be taken back: the
        end of the stream that could still grow into a secret is held until it cannot
        (or until ``last``)."""
        if not self.secrets:
            return text
        text = self.held + text
        keep = 0 if last else _secret_start(text, self.secrets)
        self.held = text[len(text) - keep :] if keep else ""
        return redact_answer(text[: len(text) - keep], self.secrets)

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
        body = self._cleared(body, last=True)
        status = "\n".join(status_lines(outcome, self.titles))
        self.out.write(terminal_text(body + end + status) + "\n")
        self.out.flush()


def _secret_start(text: str, secrets: Sequence[str]) -> int:
    """The length of the longest end of ``text`` that is the start of a secret (0: none).

    A whole secret at the very end counts too: what follows it may continue a longer
    match of ``redact``'s cut-short rule, so it waits for the next piece."""
    found = 0
    for secret in secrets:
        tail = text[-len(secret) :]
        start = tail.find(secret[0])
        while start >= 0 and len(tail) - start > found:  # the longest is the first found
            if secret.startswith(tail[start:]):
                found = len(tail) - start
                break
            start = tail.find(secret[0], start + 1)
    return found


def auto_kind(shell: Any) -> Literal["widget", "markdown", "text"]:
    """``widget`` in a kernel, text in terminal IPython or plain Python, Markdown otherwise.

    ``widget`` and ``markdown`` both show one answer as plain display outputs
    (:class:`~writer_magics.display.live.AnswerView`); they differ only for several panels.
    """
    if shell is None:
        return "text"
    if getattr(shell, "kernel", None) is not None:
        return "widget"
    if in_terminal(shell):
        return "text"
    return "markdown"


def open_view(
    kind: ViewKind = "auto",
    header: str = "",
    *,
    panels: Sequence[str] | int = 1,
    max_updates_per_second: float = 6.0,
    clock: Clock = time.monotonic,
    shell: Any = None,
    stamp: Stamp | None = None,
    secrets: Sequence[str | None] = (),
) -> LiveView:
    """The live view for this frontend (``auto``) or the one asked for.

    Several panels (a sweep, ``n`` > 1) get the side-by-side ``GridView`` in a notebook
    or rich shell, and the text view in a terminal. ``stamp`` builds the static
    finish's output metadata (the text view has none). ``secrets`` (the API key in
    play) never show in a notebook's outputs, even when the model or a hostile server
    writes them into the answer (``errors.redact``, without its bearer rule)."""
    if shell is None:
        shell = get_ipython()
    chosen = auto_kind(shell) if kind == "auto" else kind
    several = len(panel_titles(panels)) > 1
    if chosen in ("widget", "markdown") and several:
        from writer_magics.display.grid import GridView  # markdown-it only when needed

        return GridView(
            header,
            panels=panels,
            max_updates_per_second=max_updates_per_second,
            clock=clock,
            stamp=stamp,
            secrets=secrets,
        )
    if chosen in ("widget", "markdown"):
        from writer_magics.display.live import AnswerView

        return AnswerView(
            header,
            panels=panels,
            max_updates_per_second=max_updates_per_second,
            clock=clock,
            stamp=stamp,
            secrets=secrets,
        )
    if chosen == "text":
        return TextView(header, panels=panels, secrets=secrets)
    raise ValueError(f"unknown view kind {kind!r}; use auto, widget, markdown or text")
