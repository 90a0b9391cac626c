"""Diagnostic: CPU of a live view fed N tokens on a fake clock, and how much it sends.

``python bench/view_ticks.py [CHUNKS,...] [TOKENS_PER_SECOND]`` feeds the fixture's
Markdown, one token per event, to the one-answer view (``display/live.py``: head,
pieces, footer) and to the side-by-side grid (``display/grid.py``, two panels fed the
same tokens), advancing a fake clock by 1/TOKENS_PER_SECOND per event. It prints the
view's CPU seconds, the display messages it sent and their content bytes against the
answer's bytes. Not part of ``run.py``; evidence for a profile.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fixture import answer_tokens
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from writer_magics.display.grid import GridView
from writer_magics.display.live import AnswerView
from writer_magics.display.panel import json_size
from writer_magics.transport.events import TextDelta


def feed(kind: str, chunks: int, rate: float) -> dict[str, Any]:
    """CPU seconds, messages and bytes sent for one view fed ``chunks`` tokens."""
    now = [0.0]

    def clock() -> float:
        return now[0]

    tokens = answer_tokens(chunks, None)
    panels = 2 if kind == "grid" else 1
    with capture_output() as cap:
        view: Any = (
            GridView("header", panels=panels, clock=clock)
            if kind == "grid"
            else AnswerView("header", clock=clock)
        )
        view.start()
        cpu = time.process_time()
        for token in tokens:
            now[0] += 1 / rate
            for panel in range(panels):
                view.add(TextDelta(token), panel=panel)
        cpu = time.process_time() - cpu
    answer = panels * len("".join(tokens).encode())
    sent = sum(json_size(o.data) for o in cap.outputs)
    return {"cpu_s": cpu, "messages": len(cap.outputs), "ratio": sent / answer}


def main() -> None:
    sizes = [int(n) for n in (sys.argv[1] if len(sys.argv) > 1 else "5000,10000,20000").split(",")]
    rate = float(sys.argv[2]) if len(sys.argv) > 2 else 20_000
    InteractiveShell.instance()
    print(f"| view | chunks at {rate:,.0f}/s | CPU s | messages | content bytes / answer |")
    print("|---|---|---|---|---|")
    for kind in ("answer", "grid"):
        for chunks in sizes:
            r = feed(kind, chunks, rate)
            print(
                f"| {kind} | {chunks:,} | {r['cpu_s']:.2f} | {r['messages']:,} "
                f"| {r['ratio']:.2f}x |"
            )


if __name__ == "__main__":
    main()
