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

``python bench/shapes.py [RUNS]`` prints one JSON line; ``bench/run.py`` adds it to
its table.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Fixture, fixture_server, median
from bench.kernel import chat, kernel, update_rate

SHAPES = ("paragraph", "code", "table", "list", "paragraphs", "mix")
#: (answer bytes, tokens per second): about ten seconds of streaming each.
SIZES = ((20_000, 500), (200_000, 5_000))


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
            f"{r['shape']:>10} {r['answer_bytes']:>7,} B: content {r['content_ratio']:6.1f}x, "
            f"{r['updates_per_s']:5.1f} updates/s, longest gap {r['longest_gap_s']:.2f} s",
            file=sys.stderr,
        )
    print(json.dumps(found))
