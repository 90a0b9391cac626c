"""Issue 14's "Done when", watched frame by frame in JupyterLab + Debian's Chromium.

A ``requestAnimationFrame`` recorder injected into the page stores, for every frame
whose layout or text changed, the top/height/left of every element of the watched
cell's output area and of the next cell (keyed by their path under the output area,
positions relative to the cell's own top so that scrolling does not count), the
output area's rendered text, the computed font of the line that counts tokens (live
status, then footer), the top of the answer's first block and where panel titles
sit. From those frames:

* a *flicker* is an element that moves more than :data:`TOLERANCE` px and moves back
  the other way (more than :data:`TOLERANCE` px) within :data:`WINDOW` frames. Growth
  is monotonic: content below a growing answer only ever moves down, so it never
  counts; A -> B -> A does, however short.
* text *vanishes* when a line of the final answer, once shown, is missing from a
  later frame, or when the answer text shown drops by more than
  :data:`VANISH_CHARS` characters from one frame to the next; it *shows twice* when
  a frame holds a line of the final answer more often than the final answer does.
* raw Markdown is ``**``, a stray ``*`` at a word, a backtick or ``](`` in the text
  a frame shows (none of the answers here has them in the rendered text).

The bundled server paces the answers (``[[tps:N]]`` markers); it answers a list or a
code request, never both, so one cell streams a list answer and the next a code
answer. Kernel websocket frames are recorded (``page.on("websocket")``) and
JupyterLab's log console (level ``info``: every message no cell took) is read for
``No such comm``; the widget manager's own probe of a fresh kernel is told apart
(:class:`Wire`). Screenshots of each phase go to test-artifacts/.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
import nbformat
import pytest

from tests.browser_env import (
    ARTIFACTS,
    Lab,
    chromium,
    has_run,
    open_notebook,
    run_cell,
    running_lab,
    wait_until_run,
)
from tests.kernel_env import PYTHON3
from writer_magics.server import ServerHandle

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page, WebSocket

#: A move of more than this many px (and one back) is a flicker; less is rounding.
TOLERANCE = 3.0
#: A move undone within this many animation frames is a flicker (~170 ms at 60 Hz).
WINDOW = 10
#: The answer text shown may shrink by this much between two frames (a held-back
#: half-written marker); more is text vanishing.
VANISH_CHARS = 20
#: Lines at least this long are compared between frames (shorter ones are too common).
LINE = 20
#: The answers (bundled server): paragraphs with bold and italics, a list with bold
#: labels, a fenced Python block and inline code. Both render without any raw markup.
LIST_PROMPT = "[[tps:30]] List five tips for keeping a notebook tidy."
CODE_PROMPT = "[[tps:30]] Write a Python function that counts notebook cells."
SWEEP = "%%chat -t 0,0.3,0.6,0.9\n[[tps:30]] Write a short note on notebooks."
SWEEP_TITLES = ("t=0", "t=0.3", "t=0.6", "t=0.9")
SLOW_PROMPT = "[[tps:5]] List five tips for keeping a notebook tidy."
#: Text a saved widget output shows instead of the answer (issue 14 §1).
WIDGET_TEXT = ("Loading widget", "Error displaying widget", "VBox(", "HTML(")
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
RAW_MARKDOWN = {
    "**": re.compile(r"\*\*"),
    "stray *": re.compile(r"(?<![\w*])\*(?=\w)|(?<=\w)\*(?![\w*])"),
    "backtick": re.compile(r"`"),
    "raw link": re.compile(r"\]\("),
}
#: Measuring needs every cell laid out (JupyterLab's default windowing skips the
#: layout of cells out of view).
SETTINGS = {"@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"}}

RECORDER = r"""
({cell, titles}) => {
  const rec = {frames: [], n: 0, running: true};
  window.__writerRecorder = rec;
  const round = (x) => Math.round(x * 10) / 10;
  const pathOf = (el, root) => {
    const parts = [];
    for (let node = el; node && node !== root; node = node.parentElement) {
      const parent = node.parentElement;
      const index = parent ? Array.prototype.indexOf.call(parent.children, node) : 0;
      parts.push(node.tagName.toLowerCase() + index);
    }
    return parts.reverse().join('/');
  };
  const deepest = (root, test) => {
    for (const el of root.querySelectorAll('*')) {
      if (test(el.textContent) && ![...el.children].some((c) => test(c.textContent))) return el;
    }
    return null;
  };
  let last = '';
  const frame = () => {
    if (!rec.running) return;
    rec.n += 1;
    const cells = document.querySelectorAll('.jp-Notebook .jp-Cell');
    const host = cells[cell];
    const next = cells[cell + 1];
    if (host) {
      const base = host.getBoundingClientRect().top;
      const area = host.querySelector('.jp-Cell-outputArea');
      const boxes = {};
      const put = (key, el) => {
        const r = el.getBoundingClientRect();
        if (r.width || r.height) boxes[key] = [round(r.top - base), round(r.height), round(r.left)];
      };
      let status = null;
      let answerTop = null;
      const placed = {};
      if (area) {
        put('area', area);
        for (const el of area.querySelectorAll('*')) put(pathOf(el, area), el);
        const counter = deepest(area, (t) => /\btokens\b/.test(t));
        if (counter) {
          const style = getComputedStyle(counter);
          status = [counter.textContent.trim(), style.fontFamily, style.fontSize];
        }
        const markdown = area.querySelector('.jp-RenderedMarkdown');
        const block = markdown && markdown.querySelector(':scope > *');
        if (block) answerTop = round(block.getBoundingClientRect().top - base);
        for (const title of titles) {
          const source = '^\\s*' + title.replace(/[.]/g, '\\.') + '(?![\\d.])';
          const pattern = new RegExp(source);
          const el = deepest(area, (t) => pattern.test(t));
          if (el) {
            const r = el.getBoundingClientRect();
            placed[title] = [round(r.top - base), round(r.left), round(r.width)];
          }
        }
      }
      if (next) put('next-cell', next);
      const text = area ? area.innerText : '';
      const state = JSON.stringify([boxes, text, status, answerTop, placed]);
      if (state !== last) {
        last = state;
        rec.frames.push({n: rec.n, t: round(performance.now()), boxes, text, status,
                         answerTop, titles: placed});
      }
    }
    requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);
}
"""
STOP_RECORDER = "() => { const r = window.__writerRecorder; r.running = false; return r.frames; }"
MARK = "() => window.__writerRecorder.n"


# ---------------------------------------------------------------------------------------
# What the recorder saw, and what counts as a fault (pure functions, tested below).


@dataclass(frozen=True)
class Frame:
    """One animation frame whose layout or text changed (``n`` counts every frame)."""

    n: int
    boxes: dict[str, tuple[float, float, float]]  # key -> (top, height, left), px from cell top
    text: str
    status: tuple[str, str, str] | None = None  # (text, font-family, font-size)
    answer_top: float | None = None
    titles: dict[str, tuple[float, float, float]] = field(default_factory=dict)  # top, left, w

    @classmethod
    def of(cls, raw: dict[str, Any]) -> Frame:
        return cls(
            n=int(raw["n"]),
            boxes={k: (v[0], v[1], v[2]) for k, v in raw["boxes"].items()},
            text=str(raw["text"]),
            status=tuple(raw["status"]) if raw.get("status") else None,
            answer_top=raw.get("answerTop"),
            titles={k: (v[0], v[1], v[2]) for k, v in raw.get("titles", {}).items()},
        )


@dataclass(frozen=True)
class Jump:
    """An element that moved by ``there`` px at frame ``frame`` and by ``back`` px
    (the other way) ``after`` frames later."""

    key: str
    frame: int
    there: float
    back: float
    after: int

    def __str__(self) -> str:
        return (
            f"{self.key} {self.there:+.0f} px at frame {self.frame},"
            f" {self.back:+.0f} px {self.after} frames later"
        )


def jumps(
    frames: Sequence[Frame], tolerance: float = TOLERANCE, window: int = WINDOW
) -> list[Jump]:
    """Elements whose top moves one way and back within ``window`` frames (flicker).

    Only frames in which the element is present in a row are compared: an element that
    disappears is text vanishing (:func:`text_faults`), not a move.
    """
    found: list[Jump] = []
    keys = {key for frame in frames for key in frame.boxes}
    for key in sorted(keys):
        runs: list[list[tuple[int, float]]] = [[]]
        for frame in frames:
            if key in frame.boxes:
                runs[-1].append((frame.n, frame.boxes[key][0]))
            elif runs[-1]:
                runs.append([])
        for run in runs:
            moves = [(b[0], b[1] - a[1]) for a, b in itertools.pairwise(run)]
            for i, (at, there) in enumerate(moves):
                if abs(there) <= tolerance:
                    continue
                for later, back in moves[i + 1 :]:
                    if later - at > window:
                        break
                    if abs(back) > tolerance and (back > 0) != (there > 0):
                        found.append(Jump(key, at, there, back, later - at))
                        break
    return found


def _norm(text: str) -> str:
    return " ".join(text.split())


def _lines(text: str, shortest: int = LINE) -> list[str]:
    return [line for line in (_norm(raw) for raw in text.splitlines()) if len(line) >= shortest]


def shown_chars(frame: Frame, final: str) -> int:
    """Characters of the final answer this frame shows (its lines that are part of it,
    Markdown markers aside: raw markup is counted by :func:`raw_markdown`)."""
    plain = _unmarked(final)
    return sum(len(line) for line in _lines(_unmarked(frame.text), 2) if line in plain)


def _unmarked(text: str) -> str:
    return re.sub(r"[*`]", "", text)


def text_faults(frames: Sequence[Frame]) -> tuple[list[str], list[str]]:
    """(vanished, doubled): answer text missing from a frame after it was shown, or shown
    twice, as readable lines. The last frame is the final answer."""
    if not frames:
        return [], []
    final = _norm(frames[-1].text)
    final_lines = set(_lines(frames[-1].text))
    vanished: list[str] = []
    doubled: list[str] = []
    since: dict[str, int] = {}
    before = 0
    for frame in frames:
        text = _norm(frame.text)
        for line in sorted(final_lines):
            if line in text:
                since.setdefault(line, frame.n)
            elif line in since:
                vanished.append(f"frame {frame.n}: {line[:50]!r} (shown since {since[line]})")
        shown = shown_chars(frame, final)
        if shown < before - VANISH_CHARS:
            vanished.append(f"frame {frame.n}: answer text shown fell from {before} to {shown}")
        before = shown
        for line in set(_lines(frame.text)):
            if line in final and text.count(line) > final.count(line):
                doubled.append(f"frame {frame.n}: {line[:50]!r} x{text.count(line)}")
    return vanished, doubled


def raw_markdown(frames: Sequence[Frame]) -> dict[str, list[str]]:
    """Per kind of raw Markdown: the frames that show it, with a little context."""
    found: dict[str, list[str]] = {}
    for frame in frames:
        for kind, pattern in RAW_MARKDOWN.items():
            match = pattern.search(frame.text)
            if match:
                context = frame.text[max(0, match.start() - 25) : match.end() + 25]
                found.setdefault(kind, []).append(f"frame {frame.n}: {context!r}")
    return found


def answer_moves(frames: Sequence[Frame]) -> list[float]:
    """The distinct tops of the answer's first block, in order (one value: it never moved)."""
    tops: list[float] = []
    for frame in frames:
        top = frame.answer_top
        if top is not None and (not tops or abs(top - tops[-1]) > TOLERANCE):
            tops.append(top)
    return tops


def outputs(frame: Frame) -> int:
    """How many outputs the cell shows (the output area's children)."""
    return sum(1 for key in frame.boxes if re.fullmatch(r"div\d+", key))


def layout_numbers(frames: Sequence[Frame]) -> dict[str, object]:
    """What the recorder saw, for the report: outputs added (seals), the next cell's
    moves (count, largest down, largest up) and the area's height at the end."""
    counts = [outputs(frame) for frame in frames]
    added = sum(1 for a, b in itertools.pairwise(counts) if b > a)
    tops = [f.boxes["next-cell"][0] for f in frames if "next-cell" in f.boxes]
    steps = [b - a for a, b in itertools.pairwise(tops) if abs(b - a) > 0.05]
    return {
        "outputs at the finish": counts[-1] if counts else 0,
        "outputs added while recording": added,
        "next cell moves": len(steps),
        "largest move down": max([0.0, *steps]),
        "largest move up": min([0.0, *steps]),
    }


def finish_frame(frames: Sequence[Frame]) -> int:
    """The first frame after the last one that says ``streaming`` (the finish)."""
    live = [i for i, frame in enumerate(frames) if "streaming" in frame.text]
    after = live[-1] + 1 if live else 0
    return frames[after].n if after < len(frames) else frames[-1].n + 1


def when(n: int, finish: int) -> str:
    """``streaming`` or ``at the finish`` (the finish and 10 frames before it)."""
    return "at the finish" if n >= finish - WINDOW else "streaming"


def summary(problems: Mapping[str, Sequence[object]]) -> str:
    """One paragraph per kind of fault (at most five examples each)."""
    parts = []
    for kind, items in problems.items():
        if items:
            shown = "\n    ".join(str(item) for item in items[:5])
            parts.append(f"{kind} ({len(items)}):\n    {shown}")
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------
# The recorder's rules on made-up frames (no browser).


def _frames(*tops: float, key: str = "next-cell") -> list[Frame]:
    return [Frame(n=i + 1, boxes={key: (top, 10.0, 0.0)}, text="") for i, top in enumerate(tops)]


def test_growth_is_not_a_flicker_but_a_move_undone_is() -> None:
    assert jumps(_frames(100, 120, 120, 150, 400, 401, 402)) == []  # monotonic growth
    (jump,) = jumps(_frames(100, 130, 100, 100))  # A -> B -> A
    assert (jump.frame, jump.there, jump.back, jump.after) == (2, 30, -30, 1)
    assert jumps(_frames(100, 60, 60, 60, 60, 110))[0].after == 4  # up, held, then down
    assert jumps(_frames(100, 102, 100, 101)) == []  # within the tolerance
    far = [
        Frame(n=n, boxes={"k": (top, 1.0, 0.0)}, text="") for n, top in ((1, 0), (2, 50), (30, 0))
    ]
    assert jumps(far) == []  # undone 28 frames later: a change, not a flicker
    gone = [Frame(1, {"k": (0, 1, 0)}, ""), Frame(2, {}, ""), Frame(3, {"k": (50, 1, 0)}, "")]
    assert jumps(gone) == []  # absent in between: text vanishing, checked on its own


def test_text_that_vanishes_or_shows_twice_is_found() -> None:
    para = "A finished paragraph of the answer."
    tail = "The tail keeps growing here"
    good = [
        Frame(1, {}, "palmyra-x5\n" + para[:22]),
        Frame(2, {}, f"palmyra-x5\n{para}\n{tail[:21]}"),
        Frame(3, {}, f"palmyra-x5\n{para}\n{tail}"),
    ]
    assert text_faults(good) == ([], [])
    twice = [good[0], good[1], Frame(3, {}, f"palmyra-x5\n{para}\n{para}\n{tail}"), good[2]]
    assert text_faults(twice)[1] == [f"frame 3: {para!r} x2"]
    gone = [good[0], good[1], Frame(3, {}, "palmyra-x5\n"), good[2]]
    vanished, _ = text_faults(gone)
    assert any("fell from" in v for v in vanished)
    assert raw_markdown([Frame(1, {}, "Use **bold and `x")]).keys() == {"**", "backtick"}
    assert raw_markdown([Frame(1, {}, "see [docs](http://x) *it")]).keys() == {
        "raw link",
        "stray *",
    }
    assert raw_markdown([Frame(1, {}, "x = a * b; 2*3 items")]) == {}


def test_no_such_comm_from_the_widget_probe_is_told_apart() -> None:
    wire = Wire()
    for comm, target in (("c-1", Wire.PROBE), ("c-2", "jupyter.widget")):
        content = {"comm_id": comm, "target_name": target}
        wire.sent(json.dumps({"msg_type": "comm_open", "content": content}))
    wire.received_frame(b'{"text":"No such comm: c-1\\n"}')
    wire.received_frame('{"text":"No such comm target registered: jupyter.widget.control\\n"}')
    wire.received_frame(b'{"text":"No such comm: c-2\\n"}')
    assert wire.at_connect == [
        "No such comm: c-1",
        "No such comm target registered: jupyter.widget.control",
    ]
    assert wire.no_such_comm == ["No such comm: c-2"]


# ---------------------------------------------------------------------------------------
# The browser.


@pytest.fixture(scope="module")
def view_lab(
    server_module: ServerHandle, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Lab]:
    """One JupyterLab for this module (every cell laid out: windowing off)."""
    with running_lab(server_module.url, tmp_path_factory.mktemp("lab"), SETTINGS) as lab:
        yield lab


class Wire:
    """Kernel websocket frames of a page: ``No such comm`` warnings and comm opens.

    JupyterLab's widget manager probes every kernel it connects to with a
    ``jupyter.widget.control`` comm; a kernel that has not imported ipywidgets answers
    ``No such comm target registered`` and then ``No such comm: <that comm>``, before
    any cell ran (jupyterlab_widgets + ipykernel, not the magics). Those are kept in
    ``at_connect``; every other ``No such comm`` is a fault.
    """

    PROBE = "jupyter.widget.control"

    def __init__(self) -> None:
        self.received = 0
        self.comm_opens = 0
        self.probes: set[str] = set()
        self.at_connect: list[str] = []
        self.no_such_comm: list[str] = []

    def attach(self, page: Page) -> Wire:
        page.on("websocket", lambda socket: self._socket(socket))
        return self

    def _socket(self, socket: WebSocket) -> None:
        socket.on("framesent", self.sent)
        socket.on("framereceived", self.received_frame)

    def sent(self, payload: str | bytes) -> None:
        data = payload if isinstance(payload, bytes) else payload.encode()
        if b'"comm_open"' in data and self.PROBE.encode() in data:
            self.probes.update(m.decode() for m in re.findall(rb'"comm_id":\s*"([^"]+)"', data))

    def received_frame(self, payload: str | bytes) -> None:
        data = payload if isinstance(payload, bytes) else payload.encode()
        self.received += 1
        self.comm_opens += data.count(b'"comm_open"')
        for found in self.warnings(data.decode(errors="replace")):
            (self.no_such_comm if self.is_fault(found) else self.at_connect).append(found)

    @staticmethod
    def warnings(text: str) -> list[str]:
        return re.findall(r"No such comm[^\\\n\"]*", text)

    def is_fault(self, warning: str) -> bool:
        return self.PROBE not in warning and not any(probe in warning for probe in self.probes)


def _notebook(lab: Lab, name: str, *sources: str) -> None:
    cells = [nbformat.v4.new_code_cell(source) for source in ("%load_ext writer_magics", *sources)]
    nb = nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": PYTHON3})
    nbformat.write(nb, lab.root / name)


def _page(browser: Any, width: int = 1200, height: int = 1000) -> Page:
    page: Page = browser.new_page(viewport={"width": width, "height": height})
    page.set_default_timeout(30_000)
    return page


def _record(
    page: Page, cells: Locator, index: int, name: str, titles: Sequence[str] = ()
) -> list[Frame]:
    """Run cell ``index`` while recording every frame; stop 1.5 s after it finished.

    Screenshots: ``browser-view-NAME-streaming.png`` 1.5 s in, ``...-NAME.png`` at the end.
    """
    page.evaluate(RECORDER, {"cell": index, "titles": list(titles)})
    run_cell(page, cells.nth(index))
    page.wait_for_timeout(1500)
    page.screenshot(path=str(ARTIFACTS / f"browser-view-{name}-streaming.png"))
    wait_until_run(cells.nth(index), timeout=60)
    finished = page.evaluate(MARK)
    page.wait_for_timeout(1500)  # a static finish arriving late, a reflow after it
    frames = [Frame.of(raw) for raw in page.evaluate(STOP_RECORDER)]
    page.screenshot(path=str(ARTIFACTS / f"browser-view-{name}.png"))
    print(f"{name}: {len(frames)} changed frames of {frames[-1].n}, finished at frame {finished}")
    return frames


def _open(page: Page, lab: Lab, name: str) -> Locator:
    """Open ``name`` with its log console below it, at level ``info`` so that it keeps
    every message no cell took (kernel stderr included), cleared; load the magics."""
    cells = open_notebook(page, lab, name)
    page.evaluate(
        """async () => {
          const app = window.jupyterapp;
          await app.commands.execute('logconsole:open');
          await app.commands.execute('logconsole:set-level', {level: 'info'});
          await app.commands.execute('logconsole:clear');
        }"""
    )
    page.locator(".jp-LogConsolePanel").wait_for(timeout=10_000)
    run_cell(page, cells.nth(0))
    wait_until_run(cells.nth(0), timeout=30)
    return cells


def _log_console(page: Page) -> str:
    """The log console's text, after a moment for late kernel messages."""
    page.wait_for_timeout(1000)  # a comm message the kernel rejects comes after the cell
    return page.locator(".jp-LogConsolePanel").inner_text()


def _comm_faults(wire: Wire, console: str) -> dict[str, list[object]]:
    """``No such comm`` on the wire and in the log console (the connect probe aside)."""
    print("websocket frames", wire.received, "comm_open", wire.comm_opens)
    print("at kernel connect (jupyterlab_widgets' probe):", wire.at_connect)
    shown = [w for w in wire.warnings(console) if wire.is_fault(w)]
    return {
        "No such comm (websocket)": list(wire.no_such_comm),
        "No such comm (log console)": list(shown),
    }


#: A cell whose stderr says ``No such comm`` after it finished, as a late kernel
#: warning would (the words are joined at run time: not in the cell's source).
COMM_CHECK = (
    "import sys, threading\n"
    "threading.Timer(0.5, lambda: sys.stderr.write('No such ' + 'comm: writer-check\\n')).start()"
)


def _check_comm_detection(page: Page, wire: Wire, cell: Locator) -> None:
    """The two detectors see a ``No such comm`` warning when there is one."""
    before = len(wire.no_such_comm)
    run_cell(page, cell)
    deadline = time.monotonic() + 10
    while len(wire.no_such_comm) == before:
        assert time.monotonic() < deadline, "the websocket recorder missed a No such comm"
        page.wait_for_timeout(100)
    console = page.locator(".jp-LogConsolePanel")
    console.get_by_text("comm: writer-check").first.wait_for(timeout=10_000)


def _stream_problems(frames: list[Frame]) -> dict[str, list[object]]:
    """Every per-frame rule of one streamed answer, by kind (empty lists: all good)."""
    vanished, doubled = text_faults(frames)
    raw = raw_markdown(frames)
    live = [f for f in frames if "streaming" in f.text]
    started = next((i for i, f in enumerate(frames) if f.answer_top is not None), len(frames))
    headless = [
        f"frame {f.n}: first line {f.text.strip().splitlines()[0][:40]!r}"
        for f in frames[started:]
        if not f.text.strip().startswith("palmyra-x5")
    ]
    tops = answer_moves(frames)
    live_fonts = {(s[1], s[2]) for f in live if (s := f.status) and "streaming" in s[0]}
    footer = frames[-1].status
    fonts: list[object] = []
    if footer is None or "streaming" in footer[0]:
        fonts.append(f"no footer counting tokens at the finish: {footer}")
    elif "monospace" in footer[1] or (live_fonts and (footer[1], footer[2]) not in live_fonts):
        fonts.append(f"footer {footer[1]} {footer[2]} vs live status {sorted(live_fonts)}")
    print(
        json.dumps(
            {
                "frames": len(frames),
                "live frames": len(live),
                "answer first-block tops": tops,
                "area height last live -> final": [
                    live[-1].boxes.get("area", (0, 0, 0))[1] if live else None,
                    frames[-1].boxes.get("area", (0, 0, 0))[1],
                ],
                "live status fonts": sorted(live_fonts),
                "footer": footer,
                **layout_numbers(frames),
            },
        )
    )
    finish = finish_frame(frames)
    return {
        "flicker (moved and back)": [f"{j} ({when(j.frame, finish)})" for j in jumps(frames)],
        "text vanished": list(vanished),
        "text shown twice": list(doubled),
        **{f"raw Markdown {kind}": list(hits) for kind, hits in raw.items()},
        "header line missing": list(headless),
        "answer moved (first block tops)": [tops] if len(tops) > 1 else [],
        "footer font changed": fonts,
    }


def _report(problems: dict[str, list[object]]) -> None:
    for kind, items in problems.items():
        print(f"{kind}: {len(items)}")
        for item in items[:3]:
            print(f"    {item}")


@pytest.mark.timeout(150)
def test_streamed_answer_holds_still_while_sealing_and_at_the_finish(view_lab: Lab) -> None:
    """Issue 14 §4, §5, §7, §8: a list answer and a code answer, every frame recorded."""
    _notebook(
        view_lab,
        "stream.ipynb",
        f"%%chat\n{LIST_PROMPT}",
        "'next cell'",
        f"%%chat\n{CODE_PROMPT}",
        "'last cell'",
        COMM_CHECK,
    )
    ARTIFACTS.mkdir(exist_ok=True)
    problems: dict[str, list[object]] = {}
    with chromium() as browser:
        page = _page(browser)
        wire = Wire().attach(page)
        try:
            cells = _open(page, view_lab, "stream.ipynb")
            frames = _record(page, cells, 1, "list")
            code_frames = _record(page, cells, 3, "code")  # a fenced block and inline code
            console = _log_console(page)
            comm = _comm_faults(wire, console)
            page.screenshot(path=str(ARTIFACTS / "browser-view-log-console.png"))
            _check_comm_detection(page, wire, cells.nth(5))
        finally:
            page.screenshot(path=str(ARTIFACTS / "browser-view-stream-end.png"))
    for name, recorded in (("list", frames), ("code", code_frames)):
        print(f"--- {name} answer")
        found = _stream_problems(recorded)
        _report(found)
        for kind, items in found.items():
            problems.setdefault(kind, []).extend(f"{name}: {item}" for item in items)
    problems.update(comm)
    assert not any(problems.values()), summary(problems)


@pytest.mark.timeout(120)
def test_sweep_panels_share_one_row_and_the_finish_keeps_them(view_lab: Lab) -> None:
    """Issue 14 §2, §3, §7: 4 panels at 1400 px side by side, live and finished."""
    _notebook(view_lab, "sweep.ipynb", SWEEP, "'next cell'")
    ARTIFACTS.mkdir(exist_ok=True)
    with chromium() as browser:
        page = _page(browser, width=1400, height=1000)
        wire = Wire().attach(page)
        try:
            cells = _open(page, view_lab, "sweep.ipynb")
            frames = _record(page, cells, 1, "sweep", SWEEP_TITLES)
            comm = _comm_faults(wire, _log_console(page))
        finally:
            page.screenshot(path=str(ARTIFACTS / "browser-view-sweep-end.png"))
    final = frames[-1].titles
    live = [f for f in frames if "streaming" in f.text and len(f.titles) == len(SWEEP_TITLES)]
    print("titles live:", live[-1].titles if live else None, "final:", final)
    print(
        "area height last live -> final:",
        live[-1].boxes.get("area") if live else None,
        frames[-1].boxes.get("area"),
    )
    print(json.dumps(layout_numbers(frames)))
    row: list[object] = []
    if set(final) != set(SWEEP_TITLES):
        row.append(f"titles found at the finish: {sorted(final)}")
    else:
        tops = [final[t][0] for t in SWEEP_TITLES]
        lefts = [final[t][1] for t in SWEEP_TITLES]
        if max(tops) - min(tops) > TOLERANCE or lefts != sorted(lefts) or len(set(lefts)) < 4:
            row.append(f"finished panels: tops {tops}, lefts {lefts}")
    reflow: list[object] = []
    if not live:
        reflow.append("no live frame showed all four titles")
    else:
        before = live[-1].titles
        for title in SWEEP_TITLES:
            a, b = before.get(title), final.get(title)
            if a is None or b is None or abs(a[0] - b[0]) > TOLERANCE or abs(a[1] - b[1]) > 2:
                reflow.append(f"{title}: live {a} -> final {b}")
    problems: dict[str, list[object]] = {
        "panels not in one row": row,
        "finish reflowed the panels": reflow,
        "flicker (moved and back)": list(jumps(frames)),
        **{f"raw Markdown {kind}": list(hits) for kind, hits in raw_markdown(frames).items()},
        **comm,
    }
    _report(problems)
    assert not any(problems.values()), summary(problems)


def _visible(text: str) -> str:
    """Text without Markdown markers and with one space between words (to compare)."""
    return _norm(re.sub(r"[*`_]", "", text))


def _saved_texts(nb: dict[str, Any], index: int) -> tuple[list[str], list[str]]:
    """(mimetypes, texts) of a saved cell's outputs."""
    mimes: list[str] = []
    texts: list[str] = []
    for output in nb["cells"][index].get("outputs", []):
        for mime, value in output.get("data", {}).items():
            mimes.append(mime)
            if isinstance(value, (str, list)):
                texts.append(value if isinstance(value, str) else "".join(value))
        if output.get("output_type") == "stream":
            texts.append(
                "".join(output["text"]) if isinstance(output["text"], list) else output["text"]
            )
    return mimes, texts


def _settled_output(page: Page, cell: Locator, seconds: float) -> str:
    """The cell's output text once it has not changed for 1 s (at most ``seconds``)."""
    deadline = time.monotonic() + seconds
    area = cell.locator(".jp-Cell-outputArea")
    text, since = "", time.monotonic()
    while time.monotonic() < deadline:
        now = area.inner_text() if area.count() else ""
        if now != text:
            text, since = now, time.monotonic()
        elif text and time.monotonic() - since >= 1.0:
            break
        page.wait_for_timeout(200)
    return text


def _wait_for_answer(cell: Locator, timeout: float = 30) -> None:
    """Until the cell shows a line of answer text (not the header or status)."""
    deadline = time.monotonic() + timeout
    while not _answer_lines(cell.locator(".jp-Cell-outputArea").inner_text()):
        assert time.monotonic() < deadline, "no answer text appeared"
        time.sleep(0.1)


def _answer_lines(text: str) -> list[str]:
    words = ("streaming", "tokens", "waiting", "palmyra-x5")
    return [_visible(line) for line in _lines(text) if not any(w in line for w in words)]


def _readable(label: str, text: str, line: str) -> list[str]:
    faults = [f"{label}: shows {w!r}" for w in WIDGET_TEXT if w in text]
    if "streaming" not in text.lower():
        faults.append(f"{label}: nothing says the answer was still streaming: {text[:120]!r}")
    if line and line not in _visible(text):
        faults.append(f"{label}: the answer shown before saving is missing ({line!r})")
    return faults


@pytest.mark.timeout(150)
def test_notebook_saved_mid_stream_reopens_readable(view_lab: Lab) -> None:
    """Issue 14 §1: saved while streaming, the file, a reload, a reopen with a fresh
    kernel and nbconvert's HTML all show a readable line, never widget text."""
    from nbconvert import HTMLExporter

    _notebook(view_lab, "saved.ipynb", f"%%chat\n{SLOW_PROMPT}")
    path = view_lab.root / "saved.ipynb"
    ARTIFACTS.mkdir(exist_ok=True)
    problems: dict[str, list[object]] = {}
    with chromium() as browser:
        page = _page(browser)
        page.on("dialog", lambda dialog: dialog.accept())  # "leave the page?" on reload
        cells = _open(page, view_lab, "saved.ipynb")
        run_cell(page, cells.nth(1))
        _wait_for_answer(cells.nth(1))
        shown = _answer_lines(cells.nth(1).locator(".jp-Cell-outputArea").inner_text())
        line = shown[0] if shown else ""
        with page.expect_response(
            lambda r: r.request.method == "PUT" and "/api/contents/saved.ipynb" in r.url
        ) as response:
            page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
        assert response.value.ok, "the notebook was not saved"
        assert not has_run(cells.nth(1)), "the answer finished before the save: too fast"
        page.screenshot(path=str(ARTIFACTS / "browser-view-saving.png"))
        saved_bytes = path.read_bytes()
        nb = json.loads(saved_bytes)
        mimes, texts = _saved_texts(nb, 1)
        print("saved mimetypes:", mimes, "texts:", [t[:80] for t in texts])
        on_disk: list[object] = []
        if WIDGET_MIME in mimes:
            on_disk.append(f"an output has {WIDGET_MIME}")
        on_disk += [f"an output says {w!r}" for t in texts for w in ("VBox(", "HTML(") if w in t]
        if not any("streaming" in t.lower() for t in texts):
            on_disk.append("no output says the answer is still streaming")
        if line and not any(line in _visible(t) for t in texts):
            on_disk.append(f"the answer shown before saving is not in the file ({line!r})")
        problems["saved file"] = on_disk

        # (b) a reload (the kernel still streams), then a reopen with a fresh kernel.
        page.reload()
        cells = page.locator(".jp-Notebook .jp-Cell")
        cells.nth(1).wait_for()
        reloaded = _settled_output(page, cells.nth(1), 10)
        page.screenshot(path=str(ARTIFACTS / "browser-view-saved-reloaded.png"))
        problems["reloaded"] = list(_readable("reloaded", reloaded, line))
        page.close()
        for session in httpx.get(
            f"{view_lab.url}/api/sessions", headers=view_lab.headers, timeout=5
        ).json():
            httpx.delete(
                f"{view_lab.url}/api/sessions/{session['id']}", headers=view_lab.headers, timeout=10
            )
        path.write_bytes(saved_bytes)  # what was saved mid-stream, whatever came after
        page = _page(browser)
        cells = open_notebook(page, view_lab, "saved.ipynb")
        reopened = _settled_output(page, cells.nth(1), 10)
        page.screenshot(path=str(ARTIFACTS / "browser-view-saved-reopened.png"))
        problems["reopened, fresh kernel"] = list(_readable("reopened", reopened, line))

        # (c) nbconvert's HTML export of the saved file, shown by Chromium offline.
        html, _ = HTMLExporter().from_filename(str(path))  # type: ignore[no-untyped-call]
        export = ARTIFACTS / "browser-view-saved.html"
        export.write_text(html, encoding="utf-8")
        page.route("http*://**", lambda route: route.abort())
        page.goto(export.as_uri(), wait_until="domcontentloaded")
        converted = page.locator("body").inner_text()
        page.screenshot(path=str(ARTIFACTS / "browser-view-saved-nbconvert.png"), full_page=True)
        problems["nbconvert HTML"] = list(_readable("nbconvert", converted, line))
    _report(problems)
    assert not any(problems.values()), summary(problems)
