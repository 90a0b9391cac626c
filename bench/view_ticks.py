"""Diagnostic: CPU of a live view fed N tokens on a fake clock, and how much it sends.

``python bench/view_ticks.py [CHUNKS,...] [TOKENS_PER_SECOND]`` feeds the fixture's
Markdown, one token per event, to the one-answer view (``display/live.py``: head,
pieces, footer) and to the side-by-side grid (``display/grid.py``, two panels fed the
same tokens), advancing a fake clock by 1/TOKENS_PER_SECOND per event. It prints the
view's CPU seconds, the display messages it sent and their content bytes against the
answer's bytes. Not part of ``run.py``; evidence for a profile.

``python bench/view_ticks.py --shapes`` instead feeds the answers of ``bench/shapes.py``
(six shapes, 20 KB at 500 tokens/s and 200 KB at 5,000) to the one-answer view and
prints, per answer, the content bytes / answer as iopub would count them (bundle,
``metadata``, ``transient``) split into ``text/markdown``, ``text/plain``, the head and
footer HTML and the rest (the messages' fixed content), the messages, the outputs at the
end, the updates a second and the longest gap, beside the floor (``bench/shapes.py``:
the fewest bytes any view could send for that answer): the fake-clock twin of ``bench/shapes.py``,
in seconds instead of minutes, for tuning ``display/live.py``.
"""

from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fixture import answer_tokens
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from writer_magics.display import live
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


def by_shape(shape: str, size: int, rate: float) -> dict[str, float]:
    """Wire cost of one answer of ``shape`` in the one-answer view, on a fake clock."""
    import json

    from writer_magics.answer.result import Choice, Result
    from writer_magics.display.panel import Outcome

    now = [0.0]
    sent: list[tuple[float, str, dict[str, Any], int]] = []

    def recorder(kind: str) -> Any:
        def record(bundle: dict[str, Any], **kwargs: Any) -> None:
            transient = {"display_id": kwargs["display_id"]} if kwargs.get("display_id") else {}
            content = {
                "data": bundle,
                "metadata": kwargs.get("metadata") or {},
                "transient": transient,
            }
            sent.append(
                (now[0], kind, bundle, len(json.dumps(content, ensure_ascii=False).encode()))
            )

        return record

    shown, updated = live.display, live.update_display
    live.display, live.update_display = recorder("display"), recorder("update")  # type: ignore[assignment]
    try:
        tokens = answer_tokens(None, size, shape)
        view = AnswerView("palmyra-x5 · t=0.2", clock=lambda: now[0])
        view.start()
        for token in tokens:
            now[0] += 1 / rate
            view.add(TextDelta(token))
        text = "".join(tokens)
        view.finish(Outcome([Result("chat", "palmyra-x5", (Choice(0, text),), request={})]))
    finally:
        live.display, live.update_display = shown, updated  # type: ignore[assignment]
    answer = len(text.encode())
    size_of = lambda key: sum(len(b.get(key, "").encode()) for _, _, b, _ in sent) / answer  # noqa: E731
    html = size_of("text/html")
    plain = (
        sum(
            len(b["text/plain"].encode())
            for _, _, b, _ in sent
            if "text/markdown" in b and "text/plain" in b
        )
        / answer
    )
    total = sum(n for *_, n in sent) / answer
    times = sorted({at for at, _, b, _ in sent if "text/markdown" in b})
    return {
        "ratio": total,
        "markdown": size_of("text/markdown"),
        "plain": plain,
        "html": html,
        "rest": total - size_of("text/markdown") - plain - html,
        "messages": len(sent),
        "outputs": len({id(b) for _, kind, b, _ in sent if kind == "display"}),
        "updates_per_s": len(times) / now[0],
        "gap_s": max(b - a for a, b in itertools.pairwise(times)),
    }


def shapes() -> None:
    """The table of :func:`by_shape` for every shape of ``bench/shapes.py``."""
    from bench.shapes import SHAPES, SIZES, floor

    print(
        "| shape | answer | content / answer | floor | markdown | plain | head+footer HTML "
        "| rest | messages | outputs | updates/s | longest gap |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for shape in SHAPES:
        for size, rate in SIZES:
            r = by_shape(shape, size, rate)
            print(
                f"| {shape} | {size // 1000} KB at {rate:,}/s | {r['ratio']:.2f}x | "
                f"{floor(shape, size, rate):.2f}x | {r['markdown']:.2f} | {r['plain']:.2f} | "
                f"{r['html']:.2f} | {r['rest']:.2f} | "
                f"{r['messages']:.0f} | {r['outputs']:.0f} | {r['updates_per_s']:.1f} | "
                f"{r['gap_s']:.2f} s |"
            )


def main() -> None:
    if "--shapes" in sys.argv:
        InteractiveShell.instance()
        shapes()
        return
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
