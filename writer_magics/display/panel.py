"""One stream's live state (text, tool calls, sources, timing) and how it reads.

Every view (widget, Markdown, text) keeps a :class:`PanelState` per panel and asks it
for the status line and the final Markdown, so the three views agree on what is
shown. The answer itself is not folded here: a panel reads its request's
:class:`~writer_magics.answer.result.Accumulator`, the one fold, which
:func:`writer_magics.send.execute` hands over with every event. No IPython here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from writer_magics.answer.markdown import code_span
from writer_magics.answer.preview import preview
from writer_magics.answer.result import Accumulator, Choice, ChoiceState, Result, Status
from writer_magics.display.blocks import renderable
from writer_magics.display.sources import sources_markdown
from writer_magics.display.throttle import Clock
from writer_magics.transport.events import (
    STATUS_EVENTS,
    Event,
    Queued,
    Retrying,
    Started,
    TextDelta,
    ToolRunning,
)


@dataclass(frozen=True)
class Outcome:
    """How the cell ended: the (possibly partial) results, the state, one line of why.

    ``results`` has one Result per panel for a sweep, or a single Result whose choices
    are the panels (``n`` > 1). ``reason`` is the first failure's one line (the cell's);
    ``reasons`` holds each result's own (``None`` where it did not fail), so every
    panel's footer says why *it* failed.
    """

    results: Sequence[Result]
    state: Status = "done"
    reason: str | None = None
    reasons: Sequence[str | None] = ()

    def reason_of(self, index: int) -> str | None:
        """Why result ``index`` failed: its own reason, else the cell's."""
        if index < len(self.reasons):
            return self.reasons[index]
        return self.reason


#: The ``text/plain`` of a live view: what a frontend that cannot render it shows.
PLACEHOLDER = "streaming answer… (the answer appears here when it is done)"


def live_placeholder(header: str) -> str:
    """The live view's one readable line: what is being asked, and that it is streaming."""
    return f"{header} · {PLACEHOLDER}" if header else PLACEHOLDER


class PanelState:
    """Everything one panel has received, for the live display and the static finish.

    ``started`` is when this panel's request was sent (``clock()`` seconds), ``None``
    while it is queued behind ``max_concurrency``: the view is told so by a
    :class:`~writer_magics.transport.events.Queued` event and :meth:`begin` runs on the
    :class:`~writer_magics.transport.events.Started` event, so ``waiting…`` counts
    from the panel's own start, not the cell's.
    """

    def __init__(self, title: str, clock: Callable[[], float]) -> None:
        self.title = title
        self.clock = clock
        #: The request's fold this panel reads (set by the first event).
        self.acc = Accumulator()
        self.choices: set[int] = set()  # the choices of ``acc`` shown in this panel
        self.started: float | None = clock()
        self.first_text: float | None = None
        self.text_events = 0
        self.primary: int | None = None  # the choice whose text streams live
        #: The retry being waited for and when it was announced, until the next event.
        self.retry: tuple[Retrying, float] | None = None
        #: ``name(arguments)`` of the tool function running now (``--tools``).
        self.running: str | None = None

    def begin(self, at: float) -> None:
        """The request got its slot at ``at`` (``clock()`` seconds): no longer queued."""
        self.started = at

    def add(self, event: Event, fold: Accumulator | None = None) -> None:
        """Note an event for this panel. ``fold`` is its request's Accumulator, which
        already holds the event (:func:`writer_magics.send.execute`); without one (a
        view fed by hand, as in the tests and the demo) the panel keeps its own.

        Status events only change :meth:`status`: :class:`Queued`, :class:`Started`
        (:meth:`begin`), :class:`Retrying` (shown until the next event) and
        :class:`ToolRunning` (shown until the next event)."""
        if fold is None:
            self.acc.add(event)
        else:
            self.acc = fold
        if self.retry is not None or self.running is not None:
            self.retry = self.running = None  # any next event ends them
        if isinstance(event, STATUS_EVENTS):  # one check on the hot path
            self._note(event)
        choice = getattr(event, "choice", None)
        if isinstance(choice, int):
            self.choices.add(choice)
        if isinstance(event, TextDelta):
            if self.primary is None:
                self.primary = event.choice
            if self.first_text is None:
                self.first_text = self.clock()
            self.text_events += event.pieces

    def _note(self, event: Event) -> None:
        if isinstance(event, Queued):
            self.started = None
        elif isinstance(event, Started):
            self.begin(event.at)
        elif isinstance(event, Retrying):
            self.retry = (event, self.clock())
        elif isinstance(event, ToolRunning):
            self.running = f"{event.name}({event.arguments})"

    @property
    def text(self) -> str:
        """The live text: only ever grows, so finished blocks can be sent once."""
        if self.primary is None:
            return ""
        return self.acc.choice(self.primary).text

    def extras(self) -> str:
        """Tool calls and sources, as Markdown shown under the text."""
        shown = [c for c in self.acc.ordered() if c.index in self.choices]
        return "\n\n".join(filter(None, (_extras(c) for c in shown)))

    def status(self) -> str:
        """The live status line, one of: ``queued`` (behind ``max_concurrency``),
        ``waiting… 1.2 s`` (counted from this panel's start), ``retrying in 2.0 s (429
        rate limited) · attempt 2 of 3`` (then ``waiting… 2.4 s · attempt 2 of 3``),
        ``running get_weather({"city": "Paris"})…``, ``streaming · ~42 tokens · 1.3 s``."""
        if self.started is None:
            return "queued"
        now = self.clock()
        elapsed = max(0.0, now - self.started)
        if self.running is not None:
            return f"running {preview(self.running, 80)}…"
        if self.retry is not None:
            retry, since = self.retry
            attempt = f"attempt {retry.attempt} of {retry.attempts}"
            left = retry.wait - (now - since)
            if left > 0:
                return f"retrying in {left:.1f} s ({retry.reason}) · {attempt}"
            return f"waiting… {elapsed:.1f} s · {attempt}"
        if self.first_text is None and not self.extras():
            return f"waiting… {elapsed:.1f} s"
        tokens = f"~{self.text_events} token{'' if self.text_events == 1 else 's'}"
        return f"streaming · {tokens} · {elapsed:.1f} s"


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


def _extras(choice: ChoiceState) -> str:
    calls = [(c.name, c.arguments) for c in sorted(choice.tool_calls.values(), key=_index)]
    return extras_markdown(calls, choice.data)


def _index(call: Any) -> int:
    return int(call.index)


def extras_markdown(calls: Sequence[tuple[str, str]], data: dict[str, Any]) -> str:
    """Tool calls (``calling name(args)``), a refusal, and what built-in tools returned."""
    lines = [f"calling {code_span(f'{name or chr(63)}({arguments})')}" for name, arguments in calls]
    refusal = data.get("refusal")
    if isinstance(refusal, str) and refusal:
        lines.append(f"refusal: {refusal}")
    sources = sources_markdown(data)
    if sources:
        lines.append(sources)
    return "\n\n".join(lines)


def status_line(outcome: Outcome, index: int, title: str = "") -> str:
    """Result ``index``'s footer: usage, the state word, and why it failed.

    ``palmyra-x5 · 12 prompt + 80 completion = 92 tokens · first token 0.21 s, 2.40 s
    total``; the model is left out when ``title`` (the panel's) already names it. A
    failure's reason is shown only where nothing else says it: the cell's own failure
    (``outcome.reason`` when the whole cell failed) is printed once, as the cell's
    error line, so its footer keeps just the word ``failed``.
    """
    result = outcome.results[index]
    state: Status = result.status if result.status != "done" else outcome.state
    line = result.usage_line(model=not _names(title, result.model))
    if state != "done" and state not in line.split(" · "):
        line = f"{line} · {state}" if line else state
    reason = outcome.reason_of(index)
    raised = outcome.state == "failed" and reason == outcome.reason
    if state == "failed" and reason and not raised:
        line = f"{line} · {reason}"
    return line or "no answer"


def status_lines(outcome: Outcome, titles: Sequence[str]) -> list[str]:
    """The lines that survive the cell, one per result (:func:`status_line`), each
    ``title: ...`` when there are several."""
    lines = []
    several = len(outcome.results) > 1
    for i in range(len(outcome.results)):
        title = titles[i] if several and i < len(titles) and titles[i] else ""
        line = status_line(outcome, i, title)
        if several:
            lines.append(f"{title or f'#{i + 1}'}: {line}")
        else:
            lines.append(line)
    if not lines:
        line = outcome.state if outcome.state != "done" else "no answer"
        shown = outcome.reason if outcome.state != "failed" else None  # raised: said once
        lines.append(f"{line} · {shown}" if shown else line)
    return lines


def _names(title: str, model: str) -> bool:
    """True when a panel title (``palmyra-x5``, ``palmyra-x5 · t=0.2``) names ``model``."""
    return bool(title and model) and model in title.replace(",", " ").replace("·", " ").split()


@dataclass(frozen=True)
class Section:
    """One panel's part of the static finish."""

    title: str
    text: str
    extras: str

    def markdown(self) -> str:
        return _joined([part for part in (self.text, self.extras) if part], "\n\n")


def sections(outcome: Outcome, titles: Sequence[str]) -> list[Section]:
    """The answer per panel: a result's choices (``n``) or one result per panel (sweep)."""
    results = list(outcome.results)
    if len(results) == 1 and len(results[0].choices) > 1:
        labelled = [(_title(titles, i), [c]) for i, c in enumerate(results[0].choices)]
    else:
        labelled = [(_title(titles, i), list(r.choices)) for i, r in enumerate(results)]
    found: list[Section] = []
    for title, choices in labelled:
        texts = [answer_markdown(c.text) for c in choices if c.text]
        extras = [_choice_extras(c) for c in choices]
        text = _joined(texts, "\n\n---\n\n")
        found.append(Section(title, text, "\n\n".join(filter(None, extras))))
    return found


def answer_markdown(text: str) -> str:
    """The answer as it stays in the notebook: a whole JSON document is shown pretty."""
    stripped = text.strip()
    if stripped[:1] in ("{", "[") and stripped[-1:] in ("}", "]"):
        from writer_magics.answer.parsed import pretty_markdown

        try:
            json.loads(stripped)
        except ValueError:
            return text
        return pretty_markdown(stripped)
    return text


def _title(titles: Sequence[str], i: int) -> str:
    return titles[i] if i < len(titles) and titles[i] else f"Choice {i + 1}"


def _choice_extras(choice: Choice) -> str:
    calls = [
        (
            str(c.get("function", {}).get("name", "")),
            str(c.get("function", {}).get("arguments", "")),
        )
        for c in choice.tool_calls
    ]
    return extras_markdown(calls, choice.data)


def final_markdown(found: Sequence[Section]) -> str:
    """All panels' answers: one section per panel headed by its title when several."""
    if len(found) == 1:
        return found[0].markdown()
    return _joined(
        [f"**{s.title}**\n\n{s.markdown()}" for s in found if s.markdown()], "\n\n---\n\n"
    )


def _joined(parts: Sequence[str], separator: str) -> str:
    """``parts`` joined; one that ends inside a code fence is closed first, so it cannot
    swallow what follows it (the next choice, panel title or the tool calls)."""
    return separator.join([*(renderable(p) for p in parts[:-1]), *parts[-1:]])


def json_size(value: Any) -> int:
    """Bytes a value takes as JSON on the wire (what a widget update or display costs)."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
