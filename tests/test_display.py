"""The live views through a real (singleton) shell: what is displayed, updated, printed."""

from __future__ import annotations

import io
import itertools
import random
from collections.abc import Iterator
from typing import Any

import ipywidgets
import ipywidgets.comm
import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import CapturedIO, capture_output

from writer_magics.answer.result import Choice, Result, Status, Timing
from writer_magics.display import MarkdownView, Outcome, TextView, auto_kind, open_view
from writer_magics.display.live import AnswerView
from writer_magics.display.panel import json_size
from writer_magics.display.widget import WidgetView
from writer_magics.transport.events import DataDelta, TextDelta, ToolCallDelta, Usage


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
    # Several panels: the widget grid in a kernel, stacked Markdown in a rich shell.
    assert isinstance(open_view("auto", "h", panels=2, shell=shell), MarkdownView)
    assert isinstance(open_view("widget", "h", panels=2, shell=shell), WidgetView)
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


def test_markdown_view_one_display_several_updates_static_finish(shell: InteractiveShell) -> None:
    clock = FakeClock()
    text = answer(3000)
    with capture_output() as cap:
        view = MarkdownView("palmyra-x5 · session ideas", clock=clock)
        view.start()
        for i in range(0, len(text), 20):
            view.add(TextDelta(text[i : i + 20]))
            clock.now += 0.01
        view.finish(Outcome([result(text, usage=Usage(10, 700, 710))]))
    outs = displays(cap)
    display_ids = {o.transient.get("display_id") for o in outs[:-1]}
    assert len(display_ids) == 1 and None not in display_ids
    assert not outs[0].update and "session ideas" in outs[0].data["text/markdown"]
    updates = [o for o in outs[1:-2] if o.update]
    assert len(updates) >= 5
    assert len(outs) == len(updates) + 3
    final, usage = outs[-2], outs[-1]
    assert final.update and final.data == {"text/markdown": text, "text/plain": text}
    assert not usage.update and "710 tokens" in usage.data["text/plain"]
    sent = sum(json_size(o.data) for o in outs[:-2])
    assert sent <= 2 * len(text) + 2048 + 1000  # the byte budget (ratio 2, 2 KB slack)


def test_markdown_view_first_text_shows_at_once(shell: InteractiveShell) -> None:
    clock = FakeClock()
    with capture_output() as cap:
        view = MarkdownView(clock=clock, max_updates_per_second=1)
        view.start()
        view.add(TextDelta("first"))
        view.add(TextDelta(" second"))  # same instant: throttled
    outs = displays(cap)
    assert len(outs) == 2 and "first" in outs[1].data["text/markdown"]
    assert "second" not in outs[1].data["text/markdown"]


def test_failed_keeps_partial_text_and_shows_the_reason(shell: InteractiveShell) -> None:
    with capture_output() as cap:
        view = MarkdownView(clock=FakeClock())
        view.start()
        view.add(TextDelta("partial ans"))
        view.finish(Outcome([result("partial ans", status="failed")], "failed", "429 rate limited"))
    final, usage = displays(cap)[-2:]
    assert final.data["text/markdown"] == "partial ans"
    assert "failed" in usage.data["text/plain"] and "429 rate limited" in usage.data["text/plain"]


def test_cached_without_events_shows_the_answer(shell: InteractiveShell) -> None:
    with capture_output() as cap:
        view = open_view("markdown", "h", shell=shell)
        view.start()
        view.finish(Outcome([result("from cache", status="cached")], "cached"))
    outs = displays(cap)
    (final,) = [o for o in outs if "text/markdown" in o.data]
    usage = outs[-1]
    assert final.data["text/plain"] == "from cache" and "cached" in usage.data["text/plain"]


def test_no_answer_at_all_leaves_one_status_line(shell: InteractiveShell) -> None:
    with capture_output() as cap:
        view = MarkdownView(clock=FakeClock())
        view.start()
        view.finish(Outcome([result("", status="failed")], "failed", "401 bad key"))
    outs = displays(cap)
    assert len(outs) == 2 and outs[1].update
    assert outs[1].data == {
        "text/plain": "palmyra-x5 · failed · first token 0.25 s, 2.00 s · 401 bad key"
    }


# --------------------------------------------------------------------------- widgets


class WireLog:
    """Every widget state sent (comm open + updates) and every display, with sizes."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.widget_bytes = 0
        self.updates: list[tuple[int, dict[str, Any]]] = []
        send, create = ipywidgets.Widget._send, ipywidgets.comm.create_comm

        def logged_send(widget: Any, msg: dict[str, Any], buffers: Any = None) -> Any:
            self.widget_bytes += json_size(msg["state"])
            self.updates.append((id(widget), msg["state"]))
            return send(widget, msg, buffers)

        def logged_create(**kwargs: Any) -> Any:
            self.widget_bytes += json_size(kwargs.get("data", {}).get("state", {}))
            return create(**kwargs)

        monkeypatch.setattr(ipywidgets.Widget, "_send", logged_send)
        monkeypatch.setattr(ipywidgets.comm, "create_comm", logged_create)


def stream_into(view: WidgetView, text: str, clock: FakeClock, step: int = 20) -> None:
    for i in range(0, len(text), step):
        view.add(TextDelta(text[i : i + step]))
        clock.now += 0.005


@pytest.mark.parametrize("size", [20_000, 200_000])
def test_widget_view_bytes_stay_linear_with_several_updates_a_second(
    shell: InteractiveShell, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    """20-byte deltas every 5 ms; sealed blocks go out once, as new Output widgets."""
    wire = WireLog(monkeypatch)
    clock = FakeClock()
    text = answer(size)
    with capture_output() as cap:
        view = WidgetView("palmyra-x5", clock=clock)
        view.start()
        created = wire.widget_bytes + sum(json_size(o.data) for o in cap.outputs)
        stream_into(view, text, clock)
        live = wire.widget_bytes + sum(json_size(o.data) for o in cap.outputs)
        view.finish(Outcome([result(text)]))
    total = wire.widget_bytes + sum(json_size(o.data) for o in cap.outputs)
    ratio, final = live / len(text), (total - live) / len(text)
    print(
        f"{size} B: live {ratio:.2f}x, finish {final:.2f}x, {view.tail_updates / clock.now:.1f}/s"
    )
    assert created < 4000  # the widgets themselves, once
    # The tail's byte budget (1.6x) plus what sealing in widget state costs: each
    # finished block is a new Output widget (state ~400 B) in a group box, never a
    # display_data that a frontend without widgets would show as a loose output.
    assert live - created <= 2.5 * len(text) + 4096  # the budget (2.4x) + slack
    assert final <= 2.1  # the static bundle: text/markdown + text/plain of the whole answer
    assert view.tail_updates / clock.now >= 5
    assert len(cap.outputs) == 3  # the widget view, the static answer, the usage line
    sealed = "".join(
        o["data"]["text/markdown"]
        for w in view.created
        if isinstance(w, ipywidgets.Output)
        for o in w.outputs
    )
    assert text[:1000] in sealed  # finished blocks went out in widget state


def test_widget_view_streams_into_tail_and_seals_then_replaces_itself(
    shell: InteractiveShell, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No kernel: sealed blocks grow the sealed Output; the finish is a static bundle."""
    wire = WireLog(monkeypatch)
    clock = FakeClock()
    text = answer(6000, seed=3)
    with capture_output() as cap:
        view = WidgetView("palmyra-x5 · t=0.2", clock=clock, shell=shell)
        view.start()
        panel = view.live[0]
        tails: list[tuple[dict[str, Any], ...]] = []
        for i in range(0, len(text), 20):
            view.add(TextDelta(text[i : i + 20]))
            clock.now += 0.02
            if not tails or tails[-1] != panel.tail.outputs:
                tails.append(panel.tail.outputs)
        sealed = [o for g in panel.sealed.children for out in g.children for o in out.outputs]
        view.finish(Outcome([result(text, usage=Usage(5, 1500, 1505))]))
    assert len(tails) > 5
    assert all(o["data"]["text/markdown"] for tail in tails for o in tail)
    assert len(sealed) >= 2
    shown = "".join(o["data"]["text/markdown"] for o in sealed)
    assert text.startswith(shown.replace("\n```\n```python\n", "\n"))  # cuts reopen fences
    outs = displays(cap)
    assert "application/vnd.jupyter.widget-view+json" in outs[0].data
    display_id = outs[0].transient["display_id"]
    final, usage = outs[1], outs[2]
    assert final.update and final.transient["display_id"] == display_id
    assert final.data == {"text/markdown": text, "text/plain": text}
    assert "1505 tokens" in usage.data["text/plain"]
    assert all(w.comm is None for w in view.created)  # every widget closed
    assert wire.updates


def test_widget_first_text_shows_immediately_and_status_is_rate_limited(
    shell: InteractiveShell,
) -> None:
    clock = FakeClock()
    with capture_output():
        view = WidgetView(clock=clock, max_updates_per_second=2, shell=shell)
        view.start()
        panel = view.live[0]
        assert "waiting" in panel.status.value
        view.add(TextDelta("Hi"))
        assert panel.tail.outputs[0]["data"]["text/markdown"] == "Hi"
        view.add(TextDelta(" there"))
        assert panel.tail.outputs[0]["data"]["text/markdown"] == "Hi"  # within 0.5 s
        clock.now += 0.6
        view.add(TextDelta("!"))
        assert panel.tail.outputs[0]["data"]["text/markdown"] == "Hi there!"
        assert "streaming · ~3 tokens · 0.6 s" in panel.status.value
        view.finish(Outcome([result("Hi there!")]))


def test_widget_panels_side_by_side_each_with_its_own_text(shell: InteractiveShell) -> None:
    clock = FakeClock()
    with capture_output() as cap:
        view = WidgetView("sweep", panels=["t=0.2", "t=0.8"], clock=clock, shell=shell)
        view.start()
        view.add(TextDelta("cold answer"), panel=0)
        view.add(TextDelta("warm answer"), panel=1)
        view.add(TextDelta("third"), panel=2)  # a panel no one announced
        texts = [p.tail.outputs[0]["data"]["text/markdown"] for p in view.live]
        assert isinstance(view.grid, ipywidgets.GridBox) and len(view.grid.children) == 3
        results = [result("cold answer"), result("warm answer", status="failed"), result("third")]
        view.finish(Outcome(results, "done", "500 boom"))
    assert texts == ["cold answer", "warm answer", "third"]
    final, usage = displays(cap)[-2:]
    md = final.data["text/markdown"]
    assert "**t=0.2**\n\ncold answer" in md and "**t=0.8**\n\nwarm answer" in md
    lines = usage.data["text/plain"].splitlines()
    assert lines[0].startswith("t=0.2: palmyra-x5")
    assert "failed" in lines[1] and "500 boom" in lines[1] and "boom" not in lines[0]


def test_widget_shows_tool_calls_and_sources_and_keeps_them(shell: InteractiveShell) -> None:
    clock = FakeClock()
    with capture_output() as cap:
        view = WidgetView(clock=clock, shell=shell)
        view.start()
        view.add(ToolCallDelta(0, id="c1", type="function", name="get_weather"))
        view.add(ToolCallDelta(0, arguments='{"city": '))
        clock.now += 1
        view.add(ToolCallDelta(0, arguments='"Paris"}'))
        shown = view.live[0].tail.outputs[-1]["data"]["text/markdown"]
        sources = {"sources": [{"url": "https://a.example"}, {"url": "https://b.example"}]}
        view.add(DataDelta("web_search_data", sources))
        call = {"id": "c1", "type": "function"}
        call["function"] = {"name": "get_weather", "arguments": '{"city": "Paris"}'}  # type: ignore[assignment]
        final = Result(
            "chat",
            "palmyra-x5",
            (Choice(0, "Sunny.", "stop", (call,), data={"web_search_data": sources}),),
            {},
        )
        view.finish(Outcome([final]))
    assert shown == 'calling `get_weather({"city": "Paris"})`'
    md = displays(cap)[-2].data["text/markdown"]
    assert md.startswith("Sunny.") and 'calling `get_weather({"city": "Paris"})`' in md
    assert "1. [a.example](https://a.example)\n2. [b.example](https://b.example)" in md


def test_interrupted_widget_keeps_partial_text(shell: InteractiveShell) -> None:
    with capture_output() as cap:
        view = WidgetView(clock=FakeClock(), shell=shell)
        view.start()
        view.add(TextDelta("half an ans"))
        view.finish(Outcome([result("half an ans", status="interrupted")], "interrupted"))
    final, usage = displays(cap)[-2:]
    assert final.data["text/markdown"] == "half an ans"
    assert "interrupted" in usage.data["text/plain"]


def test_slow_long_list_never_goes_quiet(shell: InteractiveShell) -> None:
    """A list has no blank lines, so it stays one unfinished block; at 30 tokens/s the
    byte budget alone would hold updates back for seconds. New text must still show."""
    clock = FakeClock()
    text = "Here are the steps:\n" + "\n".join(
        f"- step {i}: check the tide tables and the wind" for i in range(40)
    )
    shown_at: list[float] = []
    with capture_output():
        view = WidgetView("palmyra-x5", clock=clock)
        view.start()
        view.live[0].tail.observe(lambda _change: shown_at.append(clock.now), names="outputs")
        for i in range(0, len(text), 5):  # about 150 bytes a second
            view.add(TextDelta(text[i : i + 5]))
            clock.now += 0.033
        view.finish(Outcome([result(text)]))
    gaps = [later - earlier for earlier, later in itertools.pairwise(shown_at)]
    assert len(shown_at) >= 2 * clock.now * 0.9
    assert max(gaps) <= 0.6


def test_markdown_view_renders_at_most_once_per_tick(
    shell: InteractiveShell, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the byte budget says no, the view must not re-render on every event
    (that made long answers quadratic)."""
    clock = FakeClock()
    renders = 0
    original = MarkdownView._bundle

    def counting(self: MarkdownView) -> dict[str, Any]:
        nonlocal renders
        renders += 1
        return original(self)

    monkeypatch.setattr(MarkdownView, "_bundle", counting)
    with capture_output():
        view = MarkdownView("palmyra-x5", clock=clock)
        view.start()
        for _ in range(5000):
            view.add(TextDelta("word "))
            clock.now += 0.001
    assert renders <= 5 * 10 + 5  # 5 simulated seconds at 10 ticks a second
