"""The live view's cost in a browser: renderer main-thread busy time, streaming / once.

Issue 19, goal 2 (measurement). JupyterLab (started as ``tests/test_browser.py``
starts it, with the app exposed to scripts) runs a kernel pointed at
``bench/fixture.py``; Playwright drives Debian's Chromium (``/usr/bin/chromium``,
never a downloaded browser). For each shape (``[[shape:paragraph]]`` and
``[[shape:code]]``, the generators of ``bench/shapes.py``), one notebook measures the
renderer's main-thread busy time with the Chrome DevTools Protocol
(``Performance.enable``, then ``Performance.getMetrics`` -> ``TaskDuration``, the
difference before/after):

* **streaming**: a ``%%chat --new -o answer`` cell while the 50 KB answer streams
  (about ten seconds, the pace of ``bench/shapes.py``) and the view finishes;
* **once**: the same final answer (``answer.text`` of that cell) rendered once by a
  second cell, ``show_markdown(answer.text)`` (``display/finish.py``: the one way
  the package shows Markdown, escaped as every view's static finish escapes it).

Two baselines are measured after each pair, the same way: a cell that only sleeps as
long as the streamed cell ran, and a ``pass`` cell. Their difference is what a cell
costs JupyterLab merely by running ten seconds longer (the kernel busy, its timers,
garbage collection), whatever it shows; the "longer cell" column takes it out of the
streaming window (``view_ratio``), leaving what the live view itself costs.

Then the **floor** (``FLOOR_CELL``): for as long as the streamed cell ran, five frames a
second (goal 1's minimum), each the cheapest visible update (one output's one-line
Markdown), then the final answer rendered once (the clean finish). No live view meeting
goal 1 can make JupyterLab do less, so ``floor_ratio`` (floor / once) is the lowest
streaming / once can go: when it is above 5x, goal 2 cannot be met for that shape.

All windows start right before the cell is run and end 1 s after its execution
finished (JupyterLab's ``notebook:run-cell`` settled), so each holds the cell's own
overhead (execute input, busy/idle, prompt number) and the same settle time. Every
output is cleared 1 s before a window opens (the clearing is not measured), so no
measurement renders into a page that holds another one's 50 KB, and nothing polls the
page during a window. The idle page's busy time a second is measured too, to show how
much of a window is background. JupyterLab's settings are its defaults, so a cell with
more than 50 outputs shows the first 50 and "Show more outputs" (``--max-outputs
10000`` shows them all; JupyterLab 4.6 reads 0 as "trim all"); the table says when
the streamed cell was trimmed.

``python bench/browser.py [--bytes N] [--tps N] [--runs N] [--shapes a,b]`` prints a
table to stderr and one JSON line; ``bench/run.py --browser`` adds it to its table.
Without Chromium, Playwright or JupyterLab it prints one line saying why and exits 0.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Fixture, fixture_server, median
from tests.browser_env import CHROMIUM, chromium

SHAPES = ("paragraph", "code")
ANSWER_BYTES = 50_000
#: Bytes / 40: about ten seconds of streaming, the pace of bench/shapes.py (20 KB at 500).
TOKENS_PER_SECOND = ANSWER_BYTES // 40
#: Seconds after a cell finished before its window closes (async Markdown rendering).
SETTLE_S = 1.0
#: Seconds any one cell may take before the run gives up.
CELL_TIMEOUT_S = 180.0
WORK = 3  # index of the streamed cell; the "once" cell follows it
SILENT = 5  # index of the cell that only sleeps as long as the streamed one ran
EMPTY = 6  # index of the ``pass`` cell
FLOOR = 7  # index of the cell that streams as cheaply as goal 1 allows (see FLOOR_CELL)
#: The floor: what any live view must at least make JupyterLab do in the streamed cell's
#: time under goal 1 and the clean finish. Five frames a second (goal 1's minimum), each
#: the cheapest visible update there is (one output's one-line Markdown), then the final
#: answer rendered once (the finish). A view that shows real text in its frames costs
#: more; so streaming / once cannot fall below floor / once.
FLOOR_CELL = """\
import time
from IPython.display import display, update_display
_id, _t0, _n = "writer-bench-floor", time.monotonic(), 0
display({{"text/markdown": "0"}}, raw=True, display_id=_id)
while time.monotonic() - _t0 < {seconds:.2f}:
    time.sleep(0.2)
    _n += 1
    update_display({{"text/markdown": str(_n)}}, raw=True, display_id=_id)
show_markdown(answer.text)"""


@dataclass(frozen=True)
class Lab:
    """A running JupyterLab: its URL and token."""

    url: str
    token: str


def missing() -> str | None:
    """Why the browser bench cannot run here (one line), or None when it can."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} not found (apt-get install chromium)"
    for name in ("playwright", "jupyterlab"):
        try:
            __import__(name)
        except ImportError:
            return f"{name} is not installed (pip install -e '.[dev]')"
    return None


def _notebook(root: Path) -> Path:
    import nbformat

    from tests.kernel_env import PYTHON3

    cells = [
        nbformat.v4.new_code_cell(
            "%load_ext writer_magics\nfrom writer_magics.display.finish import show_markdown"
        ),
        # Warm-up: the first answer loads the view's modules (and the widget manager).
        nbformat.v4.new_code_cell(
            "%%chat --new -o answer\nWarm up [[shape:mix]] [[bytes:3000]] [[tps:3000]]"
        ),
        nbformat.v4.new_code_cell("show_markdown(answer.text)"),
        nbformat.v4.new_code_cell("%%chat --new -o answer\n(set by the bench)"),
        nbformat.v4.new_code_cell("show_markdown(answer.text)"),
        # Baselines: a cell that only runs as long as the streamed one, and one that does not.
        nbformat.v4.new_code_cell("import time; time.sleep(1)  # set by the bench"),
        nbformat.v4.new_code_cell("pass"),
        nbformat.v4.new_code_cell("# the floor: set by the bench"),
    ]
    path = root / "browser-bench.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": PYTHON3}), path)
    return path


@contextmanager
def jupyterlab(fixture: Fixture, home: Path, max_outputs: int = 50) -> Iterator[Lab]:
    """JupyterLab on a free loopback port, kernels pointed at the fixture; stopped after.

    The command and environment of the browser tests' lab (private settings and
    Jupyter folders, a random token, ``expose_app_in_browser``; the kernel environment
    from ``tests/kernel_env.py``). ``max_outputs`` is JupyterLab's ``maxNumberOutputs``
    (50 by default: a cell's outputs after the 50th wait behind "Show more outputs";
    a large number shows them all; 0 trims every output in JupyterLab 4.6). Kept here
    because the tests' helper raises pytest's skip when something is missing, where the
    bench prints one line instead.
    """
    import httpx

    from tests.kernel_env import kernel_env

    root = home / "root"
    root.mkdir()
    _notebook(root)
    settings = home / "lab-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    tracker = home / "lab-settings" / "@jupyterlab" / "notebook-extension"
    tracker.mkdir(parents=True)
    (tracker / "tracker.jupyterlab-settings").write_text(
        json.dumps({"maxNumberOutputs": max_outputs})
    )
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    lab = Lab(f"http://127.0.0.1:{port}", secrets.token_hex(16))
    env = {
        **kernel_env(fixture.url, jupyter_home=home / "jupyter"),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "lab-settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "lab-workspaces"),
    }
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root"]
    command += ["--ip=127.0.0.1", f"--port={port}", f"--IdentityProvider.token={lab.token}"]
    command += [f"--ServerApp.root_dir={root}", "--ServerApp.port_retries=0"]
    command += ["--LabApp.news_url=None", "--LabApp.expose_app_in_browser=True"]
    command += ["--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    headers = {"Authorization": f"token {lab.token}"}
    with (home / "jupyterlab.log").open("w") as log:
        process = subprocess.Popen(
            command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            deadline = time.monotonic() + 90
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{lab.url}/api/status", headers=headers, timeout=2).is_success:
                        break
                if process.poll() is not None or time.monotonic() > deadline:
                    tail = (home / "jupyterlab.log").read_text()[-2000:]
                    raise RuntimeError(f"JupyterLab did not start:\n{tail}")
                time.sleep(0.3)
            yield lab
        finally:  # shut down with its kernels; kill the process group if it hangs
            with contextlib.suppress(httpx.HTTPError, subprocess.TimeoutExpired):
                httpx.post(f"{lab.url}/api/shutdown", headers=headers, timeout=5)
                process.wait(timeout=20)
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


# _CLEAR clears every cell's outputs (before a window opens); _RUN runs cell INDEX (its
# source set first when given) through JupyterLab's own command and logs "bench:done" or
# "bench:failed ..." to the console.
_CLEAR = """() => {
  for (const cell of window.jupyterapp.shell.currentWidget.content.widgets) {
    if (cell.model.type === 'code') {
      cell.model.outputs.clear();
      cell.model.executionCount = null;
    }
  }
}"""
_RUN = """([index, source]) => {
  const nb = window.jupyterapp.shell.currentWidget.content;
  if (source !== null) nb.widgets[index].model.sharedModel.setSource(source);
  nb.activeCellIndex = index;
  nb.mode = 'command';
  window.jupyterapp.commands.execute('notebook:run-cell').then(
    () => console.log('bench:done'), (e) => console.log('bench:failed ' + String(e)));
}"""
# [characters the outputs show, outputs, 1 when JupyterLab trimmed them ("Show more outputs")]
_SHOWN = """(index) => {
  const node = window.jupyterapp.shell.currentWidget.content.widgets[index].node;
  const area = node.querySelector('.jp-Cell-outputArea');
  if (!area) return [0, 0, 0];
  const trimmed = area.querySelector('.jp-TrimmedOutputs') !== null
    || area.innerText.includes('Show more outputs');
  return [area.innerText.length, area.querySelectorAll('.jp-OutputArea-output').length,
          trimmed ? 1 : 0];
}"""
_READY = """() => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
  return !!(k && k.status === 'idle' && w.content.widgets.length >= 8);
}"""
#: CDP ``Performance.getMetrics`` name -> our key. ``TaskDuration`` is the goal's measure
#: (wall time of the main thread's tasks); ``ThreadTime`` is that thread's CPU time,
#: which other processes on a shared machine inflate less.
METRICS = {
    "TaskDuration": "busy_s",
    "ThreadTime": "cpu_s",
    "ScriptDuration": "script_s",
    "LayoutDuration": "layout_s",
    "RecalcStyleDuration": "style_s",
}


def _is_done(message: Any) -> bool:
    return str(message.text).startswith("bench:")


class Page:
    """A notebook page in Chromium with a CDP session reading its performance metrics."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.cdp = page.context.new_cdp_session(page)
        self.cdp.send("Performance.enable")

    def metrics(self) -> dict[str, float]:
        """Seconds the renderer's main thread has spent so far, by :data:`METRICS` key."""
        found = {m["name"]: m["value"] for m in self.cdp.send("Performance.getMetrics")["metrics"]}
        return {key: float(found.get(name, float("nan"))) for name, key in METRICS.items()}

    def run(self, index: int, source: str | None = None) -> dict[str, float]:
        """Run a cell; the metrics spent until it finished and settled, wall seconds, and
        the characters its output shows. Nothing polls the page meanwhile: the end of the
        run arrives as one console message."""
        self.page.evaluate(_CLEAR)  # the previous outputs go before the window opens
        time.sleep(SETTLE_S)
        before, started = self.metrics(), time.monotonic()
        with self.page.expect_console_message(_is_done, timeout=CELL_TIMEOUT_S * 1000) as msg:
            self.page.evaluate(_RUN, [index, source])
        if msg.value.text != "bench:done":
            raise RuntimeError(f"cell {index} failed in JupyterLab: {msg.value.text}")
        time.sleep(SETTLE_S)
        after, wall = self.metrics(), time.monotonic() - started
        out = {key: after[key] - before[key] for key in after}
        out["wall_s"] = wall
        shown = self.page.evaluate(_SHOWN, index)
        out["chars_shown"], out["outputs"], out["trimmed"] = map(int, shown)
        return out

    def idle_rate(self, seconds: float = 5.0) -> float:
        """``TaskDuration`` seconds a second of the idle page (nothing running)."""
        before, started = self.metrics()["busy_s"], time.monotonic()
        time.sleep(seconds)
        return (self.metrics()["busy_s"] - before) / (time.monotonic() - started)


@contextmanager
def notebook_page(lab: Lab) -> Iterator[Page]:
    """Chromium on the bench notebook, its kernel idle and the extension loaded."""
    with chromium() as browser:  # launched as the browser tests launch it
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.set_default_timeout(90_000)
        page.goto(f"{lab.url}/lab/tree/browser-bench.ipynb?reset&token={lab.token}")
        page.wait_for_function(_READY, polling=300)
        p = Page(page)
        for cell in (0, 1, 2):  # load the extension; warm up both paths
            p.run(cell)
        yield p


def measure(
    fixture: Fixture,
    *,
    size: int = ANSWER_BYTES,
    tps: int = TOKENS_PER_SECOND,
    runs: int = 1,
    shapes: tuple[str, ...] = SHAPES,
    max_outputs: int = 50,
) -> dict[str, Any]:
    """Per shape: busy seconds streaming and once (medians of ``runs``) and their ratios.

    ``ratio`` is ``TaskDuration`` streaming / once (the goal's measure); ``net_ratio``
    the same with the idle page's busy time for each window's length taken out of both;
    ``cpu_ratio`` the main thread's CPU time (``ThreadTime``) streaming / once.
    """
    rows: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="writer-bench-lab-") as home,
        jupyterlab(fixture, Path(home), max_outputs) as lab,
        notebook_page(lab) as page,
    ):
        idle = page.idle_rate()
        for shape in shapes:
            prompt = f"Write something long [[shape:{shape}]] [[bytes:{size}]] [[tps:{tps}]]"
            found = []
            for _ in range(runs):  # alternating: streaming, once, the two baselines
                streaming = page.run(WORK, f"%%chat --new -o answer\n{prompt}")
                once = page.run(WORK + 1)
                ran = max(streaming["wall_s"] - SETTLE_S, 0.0)  # the cell ran this long
                silent = page.run(SILENT, f"import time; time.sleep({ran:.2f})")
                empty = page.run(EMPTY)
                floor = page.run(FLOOR, FLOOR_CELL.format(seconds=ran))
                net_s = streaming["busy_s"] - idle * streaming["wall_s"]
                net_o = once["busy_s"] - idle * once["wall_s"]
                longer = silent["busy_s"] - empty["busy_s"]  # a cell merely running longer
                found.append(
                    {
                        **{f"streaming_{k}": v for k, v in streaming.items()},
                        **{f"once_{k}": v for k, v in once.items()},
                        **{f"silent_{k}": v for k, v in silent.items()},
                        **{f"empty_{k}": v for k, v in empty.items()},
                        **{f"floor_{k}": v for k, v in floor.items()},
                        "floor_ratio": floor["busy_s"] / once["busy_s"],
                        "ratio": streaming["busy_s"] / once["busy_s"],
                        "net_ratio": net_s / net_o if net_o > 0 else float("nan"),
                        "view_ratio": (streaming["busy_s"] - longer) / once["busy_s"],
                        "cpu_ratio": streaming["cpu_s"] / once["cpu_s"],
                    }
                )
            row: dict[str, Any] = {"shape": shape, "answer_bytes": size, "tokens_per_second": tps}
            for key in found[0]:
                row[key] = median([f[key] for f in found])
            row["runs"] = found
            rows.append(row)
    return {
        "idle_busy_per_s": idle,
        "settle_s": SETTLE_S,
        "runs": runs,
        "max_outputs": max_outputs,
        "shapes": rows,
    }


def table(result: dict[str, Any]) -> str:
    """A readable Markdown table of :func:`measure`'s result (medians of the runs)."""
    lines = [
        "| shape | answer | streaming: busy / wall | rendered once: busy / wall "
        "| **streaming / once** | same, idle share out | same, a longer cell's own cost out "
        "| main-thread CPU, streaming / once | floor / once | streamed cell at the end |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["shapes"]:
        end = f"{r['streaming_outputs']:.0f} outputs, {r['streaming_chars_shown']:,.0f} chars"
        if r["streaming_trimmed"]:
            limit = result.get("max_outputs", 50)
            end += f" (**trimmed**: JupyterLab hides outputs after the {limit}th)"
        view = r.get("view_ratio")
        longer = "-" if view is None else f"{view:.1f}x"
        least = r.get("floor_ratio")
        floor = "-" if least is None else f"{least:.1f}x ({r['floor_busy_s']:.2f} s)"
        lines.append(
            f"| {r['shape']} | {r['answer_bytes'] // 1000} KB at {r['tokens_per_second']:,} "
            f"tok/s | {r['streaming_busy_s']:.2f} s / {r['streaming_wall_s']:.1f} s | "
            f"{r['once_busy_s']:.2f} s / {r['once_wall_s']:.1f} s | **{r['ratio']:.1f}x** | "
            f"{r['net_ratio']:.1f}x | {longer} | {r['cpu_ratio']:.1f}x | {floor} | {end} |"
        )
    limit = result.get("max_outputs", 50)
    shown = "JupyterLab's defaults" if limit == 50 else f"maxNumberOutputs = {limit:,}"
    rows = [r for r in result["shapes"] if "silent_busy_s" in r]
    silent = [r["silent_busy_s"] - r["empty_busy_s"] for r in rows]
    lines.append(
        f"\nBusy = CDP `TaskDuration`, CPU = `ThreadTime`; medians of {result['runs']} "
        f"run(s); {shown}. The idle page is busy {result['idle_busy_per_s'] * 1000:.0f} ms a "
        f"second; each window ends {result['settle_s']:.0f} s after its cell finished."
        + (
            " A cell that only sleeps as long as the streamed one costs "
            + " / ".join(f"{x:.2f} s" for x in silent)
            + ' more than `pass` (taken out in the "longer cell" column).'
            if silent
            else ""
        )
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--bytes", type=int, default=ANSWER_BYTES, help="answer size")
    parser.add_argument("--tps", type=int, default=0, help="tokens/s (default: bytes / 40)")
    parser.add_argument("--runs", type=int, default=1, help="runs of each (medians)")
    parser.add_argument("--shapes", default=",".join(SHAPES), help="comma-separated shapes")
    parser.add_argument(
        "--max-outputs",
        type=int,
        default=50,
        help="JupyterLab's maxNumberOutputs (default 50, as shipped; 10000 shows all)",
    )
    args = parser.parse_args()
    why = missing()
    if why is not None:
        print(f"browser bench skipped: {why}", file=sys.stderr)
        print(json.dumps({"skipped": why}))
        return
    with fixture_server() as fixture:
        result = measure(
            fixture,
            size=args.bytes,
            tps=args.tps or max(args.bytes // 40, 1),
            runs=args.runs,
            shapes=tuple(args.shapes.split(",")),
            max_outputs=args.max_outputs,
        )
    print(table(result), file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
