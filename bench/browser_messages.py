"""Diagnostic: what JupyterLab spends per kernel message while an answer streams.

Issue 19, goal 2 (evidence). In the JupyterLab of ``bench/browser.py`` (the same
notebook, kernel and fixture), for each shape it runs the streamed cell, the
"rendered once" cell and the floor cell (``browser.FLOOR_CELL``: five one-line
updates a second for as long as the answer streamed, then the answer once), and
for each window prints the renderer's main-thread busy time (CDP ``TaskDuration``)
split into script, style and layout (``ScriptDuration``, ``RecalcStyleDuration``,
``LayoutDuration``; the rest is paint, compositing, HTML parsing and the
WebSocket), the WebSocket messages the page received (Playwright's
``framereceived``: every iopub, shell and status message, one frame each) and the
busy milliseconds a message.

It shows where goal 2's time goes: script (Markdown rendering and highlighting
included) is a small share of every window; most is a cost per message (the
WebSocket, the output model, style, layout and paint after each output change),
12-17 ms even for the floor's one-line updates. So the ratio is set mostly by how
many messages a stream needs (BENCHMARKS.md, "Goal 2: where the time goes").

``python bench/browser_messages.py [--shapes paragraph,code] [--bytes N]`` prints a
Markdown table to stderr and one JSON line. Without Chromium, Playwright or
JupyterLab it prints one line saying why and exits 0.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import browser
from bench.common import fixture_server


class Frames:
    """Counts the WebSocket frames a page receives (all of its sockets)."""

    def __init__(self, page: Any) -> None:
        self.count = 0
        page.on("websocket", self._socket)

    def _socket(self, socket: Any) -> None:
        socket.on("framereceived", self._frame)

    def _frame(self, _payload: Any) -> None:
        self.count += 1


def _window(page: browser.Page, frames: Frames, index: int, source: str | None) -> dict[str, float]:
    """One cell's window (``browser.Page.run``) with the messages received during it."""
    before = frames.count
    found = page.run(index, source)
    found["messages"] = frames.count - before
    return found


def measure(fixture: Any, shapes: tuple[str, ...], size: int, tps: int) -> list[dict[str, Any]]:
    """Per shape and window: busy/script/style/layout seconds, messages, ms a message."""
    rows: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="writer-bench-lab-") as home,
        browser.jupyterlab(fixture, Path(home)) as lab,
        browser.chromium() as chromium,
    ):
        raw = chromium.new_page(viewport={"width": 1200, "height": 900})
        frames = Frames(raw)  # before the page opens its kernel socket
        raw.set_default_timeout(90_000)
        raw.goto(f"{lab.url}/lab/tree/browser-bench.ipynb?reset&token={lab.token}")
        raw.wait_for_function(browser._READY, polling=300)
        page = browser.Page(raw)
        for cell in (0, 1, 2):  # load the extension; warm up both paths
            page.run(cell)
        for shape in shapes:
            prompt = f"Write something long [[shape:{shape}]] [[bytes:{size}]] [[tps:{tps}]]"
            streamed = _window(page, frames, browser.WORK, f"%%chat --new -o answer\n{prompt}")
            once = _window(page, frames, browser.WORK + 1, None)
            ran = max(streamed["wall_s"] - browser.SETTLE_S, 0.0)
            least = _window(page, frames, browser.FLOOR, browser.FLOOR_CELL.format(seconds=ran))
            for name, found in (("streaming", streamed), ("once", once), ("floor", least)):
                rows.append({"shape": shape, "window": name, **found})
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| shape | window | busy | script | style | layout | rest | messages "
        "| busy a message | outputs at the end |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        rest = r["busy_s"] - r["script_s"] - r["style_s"] - r["layout_s"]
        each = 1000 * r["busy_s"] / r["messages"] if r["messages"] else float("nan")
        lines.append(
            f"| {r['shape']} | {r['window']} | {r['busy_s']:.2f} s | {r['script_s']:.2f} s | "
            f"{r['style_s']:.2f} s | {r['layout_s']:.2f} s | {rest:.2f} s | "
            f"{r['messages']:.0f} | {each:.1f} ms | {r['outputs']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--shapes", default=",".join(browser.SHAPES))
    parser.add_argument("--bytes", type=int, default=browser.ANSWER_BYTES)
    args = parser.parse_args()
    why = browser.missing()
    if why is not None:
        print(f"browser bench skipped: {why}", file=sys.stderr)
        print(json.dumps({"skipped": why}))
        return
    with fixture_server() as fixture:
        rows = measure(fixture, tuple(args.shapes.split(",")), args.bytes, max(args.bytes // 40, 1))
    print(table(rows), file=sys.stderr)
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
