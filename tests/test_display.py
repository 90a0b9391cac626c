"""The live views through a real (singleton) shell: what is displayed, updated, printed."""

from __future__ import annotations

import io
import random
from collections.abc import Iterator
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import CapturedIO, capture_output

from writer_magics.answer.result import Choice, Result, Status, Timing
from writer_magics.display import Outcome, TextView, auto_kind, open_view
from writer_magics.display.grid import GridView
from writer_magics.display.live import AnswerView
from writer_magics.errors import terminal_text
from writer_magics.transport.events import TextDelta, Usage


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def shell() -> Iterator[InteractiveShell]:
    InteractiveShell.clear_instance()
    yield InteractiveShell.instance()
    InteractiveShell.clear_instance()


def result(*texts: str, status: Status = "done", usage: Usage | None = None) -> Result:
    return Result(
        endpoint="chat",
        model="palmyra-x5",
        choices=tuple(Choice(i, t) for i, t in enumerate(texts)),
        request={},
        usage=usage,
        timing=Timing(first_token=0.25, total=2.0),
        status=status,
    )


def answer(size: int, seed: int = 1) -> str:
    """Markdown shaped like a model's answer: paragraphs, lists, code, tables."""
    rnd = random.Random(seed)
    words = [
        "the",
        "model",
        "streams",
        "tokens",
        "into",
        "a",
        "live",
        "view",
        "while",
        "the",
        "kernel",
        "runs",
    ]
    parts: list[str] = []
    while sum(map(len, parts)) < size:
        kind = rnd.random()
        if kind < 0.5:
            parts.append(" ".join(rnd.choice(words) for _ in range(rnd.randint(40, 110))) + ".")
        elif kind < 0.7:
            parts.append("\n".join(f"- item {rnd.choice(words)}" for _ in range(rnd.randint(3, 7))))
        elif kind < 0.85:
            lines = (f"x{i} = compute({i}, 'v')" for i in range(rnd.randint(5, 40)))
            parts.append("```python\n" + "\n".join(lines) + "\n```")
        else:
            rows = (f"| {i} | {rnd.choice(words)} |" for i in range(rnd.randint(3, 10)))
            parts.append("| a | b |\n|---|---|\n" + "\n".join(rows))
    return "\n\n".join(parts)[:size]


def displays(cap: CapturedIO) -> list[Any]:
    return list(cap.outputs)


# --------------------------------------------------------------------------- factory


def test_auto_picks_widgets_in_a_kernel_text_in_a_terminal_markdown_otherwise(
    shell: InteractiveShell,
) -> None:
    class Kernelish:
        kernel = object()

    class TerminalInteractiveShell:
        pass

    assert auto_kind(Kernelish()) == "widget"
    assert auto_kind(TerminalInteractiveShell()) == "text"
    assert auto_kind(shell) == "markdown"
    assert auto_kind(None) == "text"
    # One answer: the display-output view, whether asked as widget or markdown (issue 14).
    assert isinstance(open_view("auto", "h", shell=shell), AnswerView)
    assert isinstance(open_view("widget", "h", shell=shell), AnswerView)
    assert isinstance(open_view("markdown", "h", shell=shell), AnswerView)
    # Several panels: the side-by-side grid, whether asked as widget or markdown.
    for kind in ("auto", "widget", "markdown"):
        assert isinstance(open_view(kind, "h", panels=2, shell=shell), GridView)
    with pytest.raises(ValueError):
        open_view("fancy", "h", shell=shell)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- text


def test_text_view_writes_each_delta_once_and_only_the_usage_line_at_the_end() -> None:
    out = io.StringIO()
    view = TextView("palmyra-x5", stream=out)
    view.start()
    for piece in ["Hel", "lo", " world"]:
        view.add(TextDelta(piece))
        assert out.getvalue().endswith(piece)
    before = out.getvalue()
    final = result("Hello world", usage=Usage(3, 2, 5))
    view.finish(Outcome([final]))
    assert before == "Hello world"
    assert out.getvalue() == "Hello world\n" + final.usage_line() + "\n"
    assert out.getvalue().count("Hello world") == 1


def test_text_view_prints_other_choices_and_interrupted_state_at_the_end() -> None:
    out = io.StringIO()
    view = TextView(panels=2, stream=out)
    view.add(TextDelta("one", 0), panel=0)
    view.add(TextDelta("two", 1), panel=1)
    assert out.getvalue() == "--- Choice 1 ---\none"  # every panel titled (issue 14 §16)
    view.finish(Outcome([result("one", "two", status="interrupted")], state="interrupted"))
    text = out.getvalue()
    assert text.count("one") == 1 and text.count("two") == 1
    assert "--- Choice 2 ---" in text and "interrupted" in text.splitlines()[-1]


class Terminal(io.StringIO):
    """A stream that says it is a terminal, as terminal IPython's stdout does."""

    def isatty(self) -> bool:
        return True


def test_text_view_waits_visibly_on_a_terminal_and_titles_every_panel() -> None:
    """Issue 14 §16: nothing showed before the first token, and a sweep's first panel
    had no title."""
    out = Terminal()
    view = TextView(panels=["t=0", "t=1"], stream=out)
    view.start()
    assert out.getvalue() == "--- t=0 ---\nwaiting for the first token…"
    view.add(TextDelta("one", 0), panel=0)
    assert out.getvalue().endswith("waiting for the first token…\r\x1b[2Kone")
    view.finish(Outcome([result("one"), result("two")]))
    text = out.getvalue()
    assert "--- t=0 ---\n" in text and "--- t=1 ---\ntwo" in text
    # a pipe (or captured output) never gets the indicator
    piped = io.StringIO()
    view = TextView(stream=piped)
    view.start()
    view.finish(Outcome([result("Hello")]))
    assert "waiting" not in piped.getvalue() and "\x1b" not in piped.getvalue()
    # an answer that never streamed (--no-stream) still erases the indicator
    out = Terminal()
    view = TextView(stream=out)
    view.start()
    view.finish(Outcome([result("Hello")]))
    assert out.getvalue().startswith("waiting for the first token…\r\x1b[2KHello\n")


# --------------------------------------------------------------------------- markdown


def test_cached_without_events_shows_the_answer(shell: InteractiveShell) -> None:
    with capture_output() as cap:
        view = open_view("markdown", "h", shell=shell)
        view.start()
        view.finish(Outcome([result("from cache", status="cached")], "cached"))
    outs = displays(cap)
    (final,) = [o for o in outs if "text/markdown" in o.data]
    usage = outs[-1]
    assert final.data["text/plain"] == "from cache" and "cached" in usage.data["text/plain"]


def test_text_view_shows_control_characters_instead_of_acting_on_them() -> None:
    """An answer cannot retitle, clear or rewrite the terminal: ESC, BEL, a lone CR, DEL
    and C1 are printed as pictures; tabs, newlines and CR LF stay."""
    out = io.StringIO()
    view = TextView("palmyra-x5", stream=out)
    view.start()
    hostile = "a\x1b]0;pwned\x07 b\x1b[2J c\rd\te\r\nf\x7f\x9b"
    view.add(TextDelta(hostile))
    view.finish(Outcome([result(hostile, usage=Usage(3, 2, 5))]))
    shown = out.getvalue()
    assert shown.startswith("a␛]0;pwned␇ b␛[2J c␍d\te\r\nf␡\ufffd\n")
    assert not any(c in shown for c in "\x1b\x07\x7f\x9b"), repr(shown)
    assert terminal_text("plain\ttext\n") == "plain\ttext\n"
    assert terminal_text("rtl\u202egnp.exe \u2066x\u2069") == "rtl\ufffdgnp.exe \ufffdx\ufffd"
