"""Wire cost of the live view by answer shape: iopub content bytes / answer bytes.

Issue 19, goal 1 (measurement). A real kernel (:func:`bench.kernel.kernel`) streams
answers of 20 KB (at 500 tokens/s) and 200 KB (at 5,000 tokens/s, both about ten
seconds) in six shapes from ``bench/fixture.py`` (``[[shape:NAME]]``): one long
paragraph, one long fenced code block (never closed: the answer is cut inside it), a
long Markdown table, a long bulleted list, many short paragraphs (the usual corpus)
and a mix of all of them. Per answer: the bytes of every iopub message's content
and buffers (the fixed envelope, which BENCHMARKS.md explains, left out) divided by
the bytes of the answer, the visible text updates a second and the longest wait for
new text (:func:`bench.kernel.update_rate`). The 200 KB / 20 KB ratio of the two
sizes shows whether the cost grows linearly (about 1) or faster.

Each row also gives the **floor** (:func:`floor`): the fewest content bytes any live
view could send for that answer under goal 1's own terms and the issue's clean finish,
computed from the answer itself. A measured ratio can only be compared with 3x once
the floor is below it.

``python bench/shapes.py [RUNS]`` prints one JSON line; ``bench/run.py`` adds it to
its table.
"""

from __future__ import annotations

import itertools
import json
import math
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Fixture, fixture_server, median
from bench.fixture import answer_tokens
from bench.kernel import chat, kernel, update_rate

SHAPES = ("paragraph", "code", "table", "list", "paragraphs", "mix")
#: (answer bytes, tokens per second): about ten seconds of streaming each.
SIZES = ((20_000, 500), (200_000, 5_000))
#: Goal 1's terms: new text shown at least this many times a second...
MIN_UPDATES_PER_SECOND = 5
#: ...and never waiting longer than this (seconds).
MAX_WAIT = 0.2


def _json_len(text: str) -> int:
    """Bytes of ``text`` inside a JSON message (escapes counted, quotes not)."""
    return len(json.dumps(text, ensure_ascii=False).encode()) - 2


def _blocks(text: str) -> list[str]:
    """The answer's top-level Markdown blocks (markdown-it-py), each with the blank lines
    after it: a clean finish never shows a seam inside one."""
    from markdown_it import MarkdownIt

    lines = text.splitlines(keepends=True)
    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    starts = sorted({t.map[0] for t in tokens if t.level == 0 and t.map and t.nesting >= 0})
    starts = [0, *starts[1:]] if starts else [0]
    bounds = [*starts, len(lines)]
    return ["".join(lines[a:b]) for a, b in itertools.pairwise(bounds)]


def floor(shape: str, size: int, tokens_per_second: float) -> float:
    """The fewest iopub content bytes / answer bytes any live view can send for this answer.

    A lower bound from the requirements alone, whatever the view does (BENCHMARKS.md,
    "The floor of goal 1"). The stream is taken as even (``B`` bytes a second) and each
    block as starting right at a frame, its best case:

    * the finished answer holds every block once as ``text/markdown`` (escaped as
      shown) beside its readable ``text/plain`` (the design's rule for every finished
      display): ``2L`` for a block of ``L`` bytes;
    * new text waits at most ``MAX_WAIT``, so a block longer than ``B * MAX_WAIT`` is
      on screen before it is finished, ``k = ceil(L / (B * MAX_WAIT))`` times. Either it
      stays in one output, whose every update re-sends the block so far (at least
      ``B * MAX_WAIT * (1 + 2 + ... + (k - 1))`` bytes more), or it is cut into several
      outputs, and the clean finish sends it whole once more after every byte but the
      last ``B * MAX_WAIT`` was shown (``L - B * MAX_WAIT`` more); the cheaper counts;
    * at least ``MIN_UPDATES_PER_SECOND`` messages a second, each at least the
      smallest display message's content (``data``, ``metadata``, ``transient``).

    Byte counts are as JSON counts them (escapes included). Returns a ratio (>= 2).
    """
    from writer_magics.answer.markdown import escape_markdown

    tokens = answer_tokens(None, size, shape)
    text = "".join(tokens)
    seconds = len(tokens) / tokens_per_second
    step = len(text) / seconds * MAX_WAIT  # characters shown in the longest allowed wait
    least = 0.0
    for block in _blocks(text):
        markdown = _json_len(escape_markdown(block))
        least += markdown + _json_len(block)
        scale = markdown / len(block)  # escaped bytes a character
        updates = math.ceil(len(block) / step)
        kept = scale * step * updates * (updates - 1) / 2
        cut = scale * max(0.0, len(block) - step)
        least += min(kept, cut)
    smallest = {"data": {"text/markdown": ""}, "metadata": {}, "transient": {"display_id": "x"}}
    frames = math.ceil(MIN_UPDATES_PER_SECOND * seconds)
    least += frames * len(json.dumps(smallest).encode())
    return least / len(text.encode())


def measure(fixture: Fixture, runs: int = 1) -> list[dict[str, Any]]:
    """One row per shape and size: content ratio, updates/s, longest gap (medians of runs)."""
    rows: list[dict[str, Any]] = []
    with kernel(fixture) as k:
        for shape in SHAPES:
            for size, tps in SIZES:
                found = []
                for _ in range(runs):
                    cell, served = chat(
                        k, fixture, f"[[shape:{shape}]] [[bytes:{size}]] [[tps:{tps}]]"
                    )
                    rate, gap = update_rate(cell, served)
                    found.append(
                        {
                            "content_bytes": cell.content_size,
                            "iopub_bytes": cell.size,
                            "answer_bytes": served["answer_bytes"],
                            "content_ratio": cell.content_size / served["answer_bytes"],
                            "updates_per_s": rate,
                            "longest_gap_s": gap,
                            "messages": len(cell.messages),
                        }
                    )
                rows.append(
                    {
                        "shape": shape,
                        "answer_bytes": size,
                        "tokens_per_second": tps,
                        "content_ratio": median([f["content_ratio"] for f in found]),
                        "floor_ratio": floor(shape, size, tps),
                        "updates_per_s": median([f["updates_per_s"] for f in found]),
                        "longest_gap_s": median([f["longest_gap_s"] for f in found]),
                        "runs": found,
                    }
                )
    return rows


def growth(rows: list[dict[str, Any]], shape: str) -> float:
    """Content ratio at the largest size over the ratio at the smallest (1 = linear)."""
    mine = sorted((r for r in rows if r["shape"] == shape), key=lambda r: r["answer_bytes"])
    return float(mine[-1]["content_ratio"] / mine[0]["content_ratio"])


if __name__ == "__main__":
    with fixture_server() as fx:
        found = measure(fx, int(sys.argv[1]) if len(sys.argv) > 1 else 1)
    for r in found:
        print(
            f"{r['shape']:>10} {r['answer_bytes']:>7,} B: content {r['content_ratio']:6.1f}x "
            f"(floor {r['floor_ratio']:.2f}x), "
            f"{r['updates_per_s']:5.1f} updates/s, longest gap {r['longest_gap_s']:.2f} s",
            file=sys.stderr,
        )
    print(json.dumps(found))
