"""Sweeps and ``n`` > 1 side by side (issue 14 §2, §3, §13): the grid view through a real shell.

The finished cell is ONE display bundle: ``text/html`` with the panels in a CSS grid
(each panel's Markdown rendered to HTML by markdown-it-py, raw HTML escaped, no
math), ``text/markdown`` stacked as before, ``text/plain`` readable. The live grid is
the same HTML re-sent under a byte budget.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from html.parser import HTMLParser
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from tests.conftest import loaded_shell, run
from tests.standin import Reply, StandIn, chunk, stand_in
from writer_magics.answer.result import Choice, Result, Timing
from writer_magics.display import Outcome, TextView, open_view
from writer_magics.display.grid import BUDGET_RATIO, BUDGET_SLACK, GRID_CLASSES, GridView
from writer_magics.display.panel import json_size
from writer_magics.transport.events import TextDelta, Usage

WIDGET = "application/vnd.jupyter.widget-view+json"

#: One hostile answer per temperature of the sweep ``-t 0.2,0.8,1.2,1.6``.
LONG_NAME = "a_very_long_identifier_" * 12
HOSTILE = {
    0.2: "Use <script>alert('pwned')</script> and <b>bold</b>.\n\n"
    "Prices are $x$ and $40 vs $90.\n\nHalf **open and a lone ` tick",
    0.8: f"```python\n{LONG_NAME} = compute()\n```\n\n"
    "| name | cost |\n|---|---|\n| tea | $3 |\n| cake | $5 |\n",
    1.2: "See [the docs](https://example.com/a_b?x=1) and [bad](javascript:alert(1)) "
    "and <https://example.org/x> or https://bare.example/p_q?a=$1.",
    1.6: "Plain answer with `inline $code`.",
}


def by_temperature(answers: dict[float, str], pause: float = 0.0) -> Reply:
    """A stand-in reply: the answer for the request's temperature, in small pieces."""

    def reply(body: dict[str, Any]) -> tuple[int, Sequence[str]]:
        text = answers[float(body["temperature"])]
        pieces = [text[i : i + 7] for i in range(0, len(text), 7)]
        usage = {"prompt_tokens": 3, "completion_tokens": len(pieces)}
        usage["total_tokens"] = 3 + len(pieces)
        tail = {"id": "standin", "object": "chat.completion.chunk", "choices": [], "usage": usage}
        return 200, [
            *(chunk(p) for p in pieces),
            chunk("", "stop"),
            f"data: {json.dumps(tail)}\n\n",
        ]

    reply.pause = pause  # type: ignore[attr-defined]
    return reply


class Grid(HTMLParser):
    """The grid's structure: panels with title, answer HTML text, status; tags seen."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.panels: list[dict[str, str]] = []
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.footers: list[str] = []
        self.header = ""
        self._into: str | None = None
        self._depth = 0
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        self.tags.append((tag, found))
        classes = found.get("class", "").split()
        if "writer-magics-panel" in classes:
            self.panels.append({"title": "", "answer": "", "status": ""})
        for part in ("title", "answer", "status"):
            if f"writer-magics-{part}" in classes:
                self._into, self._depth = part, 0
        if "writer-magics-footer" in classes:
            self.footers.append("")
            self._into, self._depth = "footer", 0
        if "writer-magics-header" in classes:
            self._into, self._depth = "header", 0
        if self._into is not None:
            self._depth += 1

    def handle_endtag(self, tag: str) -> None:
        if self._into is not None:
            self._depth -= 1
            if self._depth == 0:
                self._into = None

    def handle_data(self, data: str) -> None:
        if self._into == "footer":
            self.footers[-1] += data
        elif self._into == "header":
            self.header += data
        elif self._into is not None:
            self.panels[-1][self._into] += data


def finished(outputs: Sequence[Any]) -> Any:
    """The cell's finished grid: the last update of the grid's display."""
    grids = [o for o in outputs if "text/html" in o.data and GRID_CLASSES in o.data["text/html"]]
    assert grids, [o.data for o in outputs]
    return grids[-1]


# --------------------------------------------------------------------------- the bundle


def test_a_finished_sweep_stays_side_by_side_in_one_bundle(shell: InteractiveShell) -> None:
    """Issue 14 §2: the live grid used to end as one stacked Markdown document."""
    ran = run(shell, "%%chat -t 0.2,0.8 -o r\nName three rivers", cell_id="c1")
    assert ran.result.success, ran.stderr
    sweep = shell.user_ns["r"]
    texts = [result.text for result in sweep.results]
    assert all(texts)
    final = finished(ran.outputs)
    assert final.update and set(final.data) == {"text/html", "text/markdown", "text/plain"}
    assert all(WIDGET not in o.data for o in ran.outputs)
    grid = Grid(final.data["text/html"])
    assert [p["title"] for p in grid.panels] == ["t=0.2", "t=0.8"]
    for panel, text in zip(grid.panels, texts, strict=True):
        first_line = text.split("\n", 1)[0].replace("**", "").replace("*", "")
        assert first_line[:30] in panel["answer"]  # rendered: no Markdown markers left
        assert "tokens" in panel["status"] and not panel["status"].startswith("t=")
    assert "sweep of 2 requests" in grid.header
    assert ("strong", {}) in grid.tags  # **bold** was rendered in the kernel
    # the stacked Markdown fallback, as the finish was before
    markdown = final.data["text/markdown"]
    assert markdown.index("**t=0.2**") < markdown.index("**t=0.8**")
    assert "tokens" in markdown.rsplit("---", 1)[1]
    # readable text: every panel titled, its answer as written, its usage line
    plain = final.data["text/plain"]
    assert "--- t=0.2 ---\n" + texts[0] in plain and "--- t=0.8 ---\n" + texts[1] in plain
    assert plain.count("tokens") >= 2 and "<" not in plain.replace(texts[0], "")
    # one output for the whole cell: the grid (no separate usage line any more)
    ids = {o.transient.get("display_id") for o in ran.outputs if o.data.get("text/html")}
    assert len(ids) == 1 and all("text/html" in o.data for o in ran.outputs)
    # provenance metadata on the finished bundle, one answer per panel
    stamped = final.metadata["writer_magics"]
    assert [a["status"] for a in stamped["answers"]] == ["done", "done"]


def test_choices_share_the_grid_and_the_usage_line_spans_it(shell: InteractiveShell) -> None:
    ran = run(shell, "%%chat -n 2\nTwo ideas for a name", cell_id="c2")
    assert ran.result.success, ran.stderr
    final = finished(ran.outputs)
    grid = Grid(final.data["text/html"])
    assert [p["title"] for p in grid.panels] == ["Choice 1", "Choice 2"]
    assert all(p["answer"].strip() for p in grid.panels)
    assert len(grid.footers) == 1 and "tokens" in grid.footers[0]  # one request, one line
    assert "**Choice 1**" in final.data["text/markdown"]
    assert "--- Choice 2 ---" in final.data["text/plain"]


def test_a_model_sweep_names_each_model_once(shell: InteractiveShell) -> None:
    """Issue 14 §13: ``palmyra-x5: palmyra-x5 · …`` said the model twice."""
    ran = run(shell, "%%chat --model palmyra-x5,palmyra-x4\nSay hi", cell_id="c3")
    assert ran.result.success, ran.stderr
    final = finished(ran.outputs)
    plain, markdown = final.data["text/plain"], final.data["text/markdown"]
    for model in ("palmyra-x5", "palmyra-x4"):
        assert f"{model}: {model}" not in plain + markdown
        assert f"{model}: " in markdown  # the stacked usage line is titled once
    for panel in Grid(final.data["text/html"]).panels:
        assert panel["title"] not in panel["status"] and "tokens" in panel["status"]


def test_the_terminal_view_of_a_sweep_titles_every_panel(shell: InteractiveShell) -> None:
    run(shell, "%config WriterMagics.view = 'text'")
    ran = run(shell, "%%chat -t 0.2,0.8\nSay hi", cell_id="c4")
    assert ran.result.success, ran.stderr
    assert "--- t=0.2 ---" in ran.stdout and "--- t=0.8 ---" in ran.stdout
    assert not ran.outputs  # text only: no HTML in a terminal
    assert isinstance(open_view("text", panels=["a", "b"], shell=shell), TextView)
    assert isinstance(open_view("widget", panels=2, shell=shell), GridView)
    assert isinstance(open_view("markdown", panels=["a", "b"], shell=shell), GridView)
    assert not isinstance(open_view("markdown", panels=1, shell=shell), GridView)


# --------------------------------------------------------------------------- hostile answers


@pytest.fixture
def hostile() -> Iterator[StandIn]:
    with stand_in(by_temperature(HOSTILE)) as handle:
        yield handle


@pytest.fixture
def hostile_shell(hostile: StandIn, monkeypatch: pytest.MonkeyPatch) -> Iterator[InteractiveShell]:
    monkeypatch.setenv("WRITER_BASE_URL", hostile.url)
    monkeypatch.setenv("WRITER_API_KEY", "sk-test-grid")
    with loaded_shell() as sh:
        yield sh


def _outside_code(page: str) -> str:
    return re.sub(r"<(pre|code)\b.*?</\1>", "", page, flags=re.DOTALL)


def test_hostile_answers_render_safely(hostile_shell: InteractiveShell) -> None:
    ran = run(hostile_shell, "%%chat -t 0.2,0.8,1.2,1.6\nBe hostile", cell_id="h1")
    assert ran.result.success, ran.stderr
    final = finished(ran.outputs)
    page = final.data["text/html"]
    grid = Grid(page)
    assert len(grid.panels) == 4
    tags = [tag for tag, _ in grid.tags]
    # raw HTML is text: shown, never executed or interpreted
    assert "script" not in tags and "b" not in tags
    assert "<script>alert('pwned')</script>" in grid.panels[0]["answer"]
    assert "&lt;script&gt;" in page
    # no math anywhere: ignore classes, and no $ left in text outside code
    assert {"mathjax_ignore", "tex2jax_ignore"} <= set(GRID_CLASSES.split())
    assert f'class="{GRID_CLASSES}"' in page
    assert "$" not in re.sub(r"<[^>]*>", "", _outside_code(page))  # (attributes are not text)
    assert "Prices are $x$ and $40 vs $90." in grid.panels[0]["answer"]
    assert "Half **open and a lone ` tick" in grid.panels[0]["answer"]  # half markup, literal
    # code keeps its lines and scrolls sideways, a table is a table (scrolling too)
    (pre,) = [attrs for tag, attrs in grid.tags if tag == "pre"]
    assert "overflow-x:auto" in pre["style"] and "white-space:pre" in pre["style"]
    assert f"{LONG_NAME} = compute()" in grid.panels[1]["answer"]
    assert tags.count("table") == 1 and tags.count("td") == 4
    assert "$3" in grid.panels[1]["answer"]
    # links keep working; a javascript: link is not a link
    hrefs = [attrs.get("href") for tag, attrs in grid.tags if tag == "a"]
    assert hrefs == [
        "https://example.com/a_b?x=1",
        "https://example.org/x",
        "https://bare.example/p_q?a=$1",  # a bare URL is a link too
    ]
    assert "[bad](javascript:alert(1))" in grid.panels[2]["answer"]
    assert "inline $code" in grid.panels[3]["answer"]
    # the fallbacks hold the answers as written (escaped for Markdown, raw as text)
    assert "&lt;script>" in final.data["text/markdown"]
    for text in HOSTILE.values():
        assert text in final.data["text/plain"]
    # colours only through JupyterLab's variables (dark themes)
    styles = ";".join(re.findall(r'style="([^"]*)"', page))
    colours = re.findall(r"(?:^|;)((?:[a-z-]*color|background|border)[a-z-]*):([^;]*)", styles)
    assert colours and all("var(--jp-" in value for _, value in colours), colours


# --------------------------------------------------------------------------- live frames


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def result(text: str, status: str = "done") -> Result:
    return Result(
        endpoint="chat",
        model="palmyra-x5",
        choices=(Choice(0, text, "stop"),),
        request={},
        usage=Usage(3, 9, 12),
        timing=Timing(first_token=0.25, total=2.0),
        status=status,  # type: ignore[arg-type]
    )


def answer(size: int, seed: int) -> str:
    """Markdown shaped like an answer: paragraphs, a list, code."""
    block = (
        f"Paragraph {seed} about the tides and the moon, in plain words.\n\n"
        f"- item {seed}\n- another item\n\n```python\nx_{seed} = compute({seed})\n```\n\n"
    )
    return (block * (size // len(block) + 1))[:size]


@pytest.mark.parametrize("size", [2_000, 20_000])
def test_live_frames_resend_within_a_byte_budget(shell: InteractiveShell, size: int) -> None:
    """Every frame re-sends every panel: a budget tied to the answers keeps bytes linear."""
    clock = FakeClock()
    texts = [answer(size, seed) for seed in range(4)]
    with capture_output() as cap:
        view = GridView("sweep of 4 requests", panels=["a", "b", "c", "d"], clock=clock)
        view.start()
        for i in range(0, size, 20):
            for panel, text in enumerate(texts):
                view.add(TextDelta(text[i : i + 20]), panel=panel)
            clock.now += 0.01
        frames = [o for o in cap.outputs if o.update]
        live = sum(json_size(o.data) for o in cap.outputs)
        view.finish(Outcome([result(t) for t in texts]))
    produced = sum(len(t.encode()) for t in texts)
    assert live <= BUDGET_RATIO * produced + BUDGET_SLACK + json_size(cap.outputs[0].data)
    assert live == view.live_bytes
    assert len(frames) >= 5  # still live
    last = Grid(frames[-1].data["text/html"])
    assert all(p["answer"] for p in last.panels)
    assert all("streaming" in p["status"] for p in last.panels)
    # the finish is the same structure as the last live frame, final content
    final = Grid(cap.outputs[-1].data["text/html"])
    assert [p["title"] for p in final.panels] == [p["title"] for p in last.panels]
    assert [t for t, _ in final.tags][:8] == [t for t, _ in last.tags][:8]
    print(f"{size} B x4: {len(frames)} frames, live {live / produced:.2f}x the answers")


def test_live_frames_hold_back_half_written_markdown(shell: InteractiveShell) -> None:
    """A panel's unfinished ``**``, ``*``, backtick or link never shows raw (issue 14 §8)."""
    clock = FakeClock()
    text = "Some **bold words** and *a slant* with `code` and [a link](https://x.org).\n"
    with capture_output() as cap:
        view = GridView(panels=["a", "b"], clock=clock)
        view.start()
        for ch in text:  # one character an event: every prefix is a frame
            view.add(TextDelta(ch), panel=0)
            clock.now += 0.2
    answers = [Grid(o.data["text/html"]).panels[0]["answer"] for o in cap.outputs if o.update]
    assert len(answers) > 20
    for shown in answers:
        assert "*" not in shown and "`" not in shown and "](" not in shown, shown


def test_statuses_tick_at_most_twice_a_second_before_any_text(shell: InteractiveShell) -> None:
    clock = FakeClock()
    with capture_output() as cap:
        view = GridView(panels=["t=0.2", "t=0.8"], clock=clock)
        view.start()
        for _ in range(30):  # 3 s of ticks every 0.1 s: the first token is late
            clock.now += 0.1
            view.tick()
        view.add(TextDelta("Hello"), panel=0)
        view.finish(Outcome([result("Hello"), result("")]))
    frames = [o for o in cap.outputs if o.update][:-1]
    statuses = [Grid(f.data["text/html"]).panels[1]["status"] for f in frames]
    assert 5 <= len(frames) <= 8, statuses
    assert statuses[0] != statuses[-2]  # the waiting time moved on
    assert "Hello" in Grid(frames[-1].data["text/html"]).panels[0]["answer"]


def test_an_unannounced_panel_joins_the_grid_and_a_silent_one_keeps_its_place(
    shell: InteractiveShell,
) -> None:
    clock = FakeClock()
    with capture_output() as cap:
        view = GridView("h", panels=["one", "two"], clock=clock)
        view.start()
        view.add(TextDelta("first"), panel=0)
        clock.now += 1
        view.add(TextDelta("third"), panel=2)
        view.finish(Outcome([result("first"), result("", "failed"), result("third")], "done"))
    final = Grid(cap.outputs[-1].data["text/html"])
    assert [p["title"] for p in final.panels] == ["one", "two", "Choice 3"]
    assert "failed" in final.panels[1]["status"]


def test_a_tool_call_shows_in_its_panel_before_any_text(shell: InteractiveShell) -> None:
    from writer_magics.transport.events import ToolCallDelta

    clock = FakeClock()
    with capture_output() as cap:
        view = GridView(panels=["a", "b"], clock=clock)
        view.start()
        view.add(ToolCallDelta(0, id="c1", type="function", name="get_weather"), panel=1)
        view.add(ToolCallDelta(0, arguments='{"city": "Paris"}'), panel=1)  # throttled
        clock.now += 0.2
        view.add(ToolCallDelta(0, arguments=""), panel=1)
    shown = Grid(cap.outputs[-1].data["text/html"]).panels[1]["answer"]
    assert 'calling get_weather({"city": "Paris"})' in shown
