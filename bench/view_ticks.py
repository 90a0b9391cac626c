"""Diagnostic: CPU of a live view fed N tokens on a fake clock, and how often it re-renders.

``python bench/view_ticks.py [CHUNKS,...] [TOKENS_PER_SECOND]`` feeds the fixture's
Markdown, one token per event, to the Markdown view and to the widget view (kernel
sealed blocks sent as new Output widgets), advancing a fake clock by
1/TOKENS_PER_SECOND per event. It counts how many times the view rendered its text
(``renderable``/``scan``) against how many updates it actually sent: a render that is
not sent is work thrown away. Not part of ``run.py``; evidence for a profile.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fixture import answer_tokens
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from writer_magics.display import views
from writer_magics.display import widget as widget_module
from writer_magics.transport.events import TextDelta


def counting(fn: Callable[..., Any], counter: dict[str, int], name: str) -> Callable[..., Any]:
    def wrapped(*args: Any) -> Any:
        counter[name] += 1
        return fn(*args)

    return wrapped


def feed(kind: str, chunks: int, rate: float) -> dict[str, Any]:
    """CPU seconds, renders and updates sent for one view fed ``chunks`` tokens."""
    counter = {"renders": 0}
    views.renderable = counting(views.renderable, counter, "renders")  # type: ignore[attr-defined]
    widget_module.scan = counting(widget_module.scan, counter, "renders")  # type: ignore[attr-defined]
    now = [0.0]

    def clock() -> float:
        return now[0]

    tokens = answer_tokens(chunks, None)
    with capture_output():
        view: Any
        if kind == "widget":
            view = widget_module.WidgetView("header", clock=clock)
        else:
            view = views.MarkdownView("header", clock=clock)
        view.start()
        cpu = time.process_time()
        for token in tokens:
            now[0] += 1 / rate
            view.add(TextDelta(token))
        cpu = time.process_time() - cpu
    sent = view.updates if kind == "markdown" else view.tail_updates
    return {
        "view": kind,
        "chunks": chunks,
        "cpu_s": cpu,
        "renders": counter["renders"],
        "sent": sent,
    }


def main() -> None:
    sizes = [int(n) for n in (sys.argv[1] if len(sys.argv) > 1 else "5000,10000,20000").split(",")]
    rate = float(sys.argv[2]) if len(sys.argv) > 2 else 20_000
    InteractiveShell.instance()
    original = views.renderable, widget_module.scan
    print(f"| view | chunks at {rate:,.0f}/s | CPU s | renders | updates sent |")
    print("|---|---|---|---|---|")
    for kind in ("markdown", "widget"):
        for chunks in sizes:
            r = feed(kind, chunks, rate)
            views.renderable, widget_module.scan = original  # type: ignore[attr-defined]
            print(f"| {kind} | {chunks:,} | {r['cpu_s']:.2f} | {r['renders']:,} | {r['sent']} |")


if __name__ == "__main__":
    main()
