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
from writer_magics.answer.result import Accumulator, Choice, ChoiceState, Result, Status
from writer_magics.display.blocks import renderable
from writer_magics.display.sources import sources_markdown
from writer_magics.display.throttle import Clock
from writer_magics.transport.events import Event, TextDelta


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
    """Everything one panel has received, for the live display and the static finish."""

    def __init__(self, title: str, clock: Callable[[], float]) -> None:
        self.title = title
        self.clock = clock
        #: The request's fold this panel reads (set by the first event).
        self.acc = Accumulator()
        self.choices: set[int] = set()  # the choices of ``acc`` shown in this panel
        self.started = clock()
        self.first_text: float | None = None
        self.text_events = 0
        self.primary: int | None = None  # the choice whose text streams live

    def add(self, event: Event, fold: Accumulator | None = None) -> None:
        """Note an event for this panel. ``fold`` is its request's Accumulator, which
        already holds the event (:func:`writer_magics.send.execute`); without one (a
        view fed by hand, as in the tests and the demo) the panel keeps its own."""
        if fold is None:
            self.acc.add(event)
        else:
            self.acc = fold
        choice = getattr(event, "choice", None)
        if isinstance(choice, int):
            self.choices.add(choice)
        if isinstance(event, TextDelta):
            if self.primary is None:
                self.primary = event.choice
            if self.first_text is None:
                self.first_text = self.clock()
            self.text_events += 1

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
        """``waiting…`` or ``streaming · ~42 tokens · 1.3 s``."""
        elapsed = self.clock() - self.started
        if self.first_text is None and not self.extras():
            return f"waiting… {elapsed:.1f} s"
        return f"streaming · ~{self.text_events} tokens · {elapsed:.1f} s"


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


def status_lines(outcome: Outcome, titles: Sequence[str]) -> list[str]:
    """The lines that survive the cell: usage, state and reason, one per result."""
    lines = []
    several = len(outcome.results) > 1
    for i, result in enumerate(outcome.results):
        state: Status = result.status if result.status != "done" else outcome.state
        line = result.usage_line()
        if state != "done" and state not in line.split(" · "):
            line = f"{line} · {state}"
        reason = outcome.reason_of(i)
        if state == "failed" and reason:
            line = f"{line} · {reason}"
        if several:
            title = titles[i] if i < len(titles) and titles[i] else f"#{i + 1}"
            if result.model in title.split(" · ") and line.startswith(f"{result.model} · "):
                line = line[len(result.model) + 3 :]  # the title names the model already
            line = f"{title}: {line}"
        lines.append(line)
    if not lines:
        line = outcome.state if outcome.state != "done" else "no answer"
        lines.append(f"{line} · {outcome.reason}" if outcome.reason else line)
    return lines


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
