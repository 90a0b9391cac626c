"""``--over`` at scale in a real kernel: ``python bench/batch.py [ITEMS]``.

The bundled server runs in its own process (``python -m writer_magics serve``) so its
CPU is never the kernel's. Three measurements, each a ratio against a baseline taken
in the same run:

* **throughput**: ITEMS (default 1,000) rows at 0.5 s latency per answer with
  ``max_concurrency = 8``. The ideal is ``ITEMS x 0.5 s / 8``; the measured baseline is
  ``ITEMS x (one request's time, measured here) / 8``. Target: within 1.15x.
* **memory and iopub** of that batch: kernel RSS growth (before the cell, after it,
  with the Batch kept in ``-o b``) and the bytes of every iopub message of the cell,
  each divided by the total bytes of the answers. Targets: < 5x and < 2x.
* **rate limits**: a second server answers a third of all requests with 429 and
  ``Retry-After: 1``; the same batch (at 0.05 s latency) must finish with zero failed rows.

Prints one JSON object on its last line.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, Fixture
from bench.kernel import Kernel, kernel

LATENCY = 0.5
CONCURRENCY = 8


@contextmanager
def bundled_server(*args: str) -> Iterator[Fixture]:
    """``python -m writer_magics serve --port 0 ARGS`` in a child process."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "writer_magics", "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    url = line.rsplit(" ", 1)[-1]
    try:
        yield Fixture(proc, url)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def value(k: Kernel, expression: str) -> Any:
    """A JSON value computed in the kernel."""
    cell = k.run(f"import json as _j; print(_j.dumps({expression}))")
    text = "".join(m.content.get("text", "") for m in cell.messages if m.kind == "stream")
    return json.loads(text.strip().splitlines()[-1])


def throughput(items: int) -> dict[str, Any]:
    with bundled_server("--latency", str(LATENCY)) as server, kernel(server) as k:
        k.run(f"%config WriterMagics.max_concurrency = {CONCURRENCY}")
        k.run("%config WriterMagics.log = False")
        singles = []
        for i in range(3):
            start = time.monotonic()
            k.run(f"%%chat --new --no-stream\nOne request {i}")
            singles.append(time.monotonic() - start)
        single = sorted(singles)[1]
        k.run("warm = ['a', 'b', 'c']")
        k.run("%%chat --over warm -o w --expect contains:a\n{item}")
        k.run(f"items = [f'Question number {{i}}: explain topic {{i}}' for i in range({items})]")
        k.run("import gc; gc.collect()")
        before = k.memory("VmRSS")
        start = time.monotonic()
        cell = k.run("%%chat --over items -o b\n{item}", timeout=900)
        elapsed = time.monotonic() - start
        k.run("import gc; gc.collect()")
        after = k.memory("VmRSS")
        counts = value(k, "b.counts()")
        answer_bytes = value(k, "sum(len(t.encode()) for t in b.texts)")
    ideal = items * LATENCY / CONCURRENCY
    baseline = items * single / CONCURRENCY
    return {
        "items": items,
        "latency": LATENCY,
        "concurrency": CONCURRENCY,
        "single_request_s": single,
        "elapsed_s": elapsed,
        "ideal_s": ideal,
        "ratio_to_ideal": elapsed / ideal,
        "ratio_to_measured_single": elapsed / baseline,
        "counts": counts,
        "answer_bytes": answer_bytes,
        "rss_growth_bytes": after - before,
        "memory_ratio": (after - before) / answer_bytes,
        "iopub_bytes": cell.size,
        "iopub_ratio": cell.size / answer_bytes,
        "iopub_messages": len(cell.messages),
    }


def rate_limited(items: int) -> dict[str, Any]:
    args = (
        "--latency",
        "0.05",
        "--rate-limit-fraction",
        "0.3333333",
        "--rate-limit-retry-after",
        "1",
    )
    with bundled_server(*args) as server, kernel(server) as k:
        k.run(f"%config WriterMagics.max_concurrency = {CONCURRENCY}")
        k.run("%config WriterMagics.log = False")
        k.run(f"items = [f'Limited question {{i}}' for i in range({items})]")
        start = time.monotonic()
        k.run("%%chat --over items -o b\n{item}", timeout=900)
        elapsed = time.monotonic() - start
        counts = value(k, "b.counts()")
        resent = value(k, "b.rate_limited")
    return {
        "items": items,
        "elapsed_s": elapsed,
        "counts": counts,
        "failed_rows": counts["failed"] + counts["interrupted"],
        "rate_limited_resent": resent,
    }


def main() -> None:
    items = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    print("throughput, memory, iopub ...", file=sys.stderr, flush=True)
    first = throughput(items)
    print(json.dumps(first), file=sys.stderr, flush=True)
    print("rate limits ...", file=sys.stderr, flush=True)
    second = rate_limited(items)
    print(json.dumps({"batch": first, "rate_limited": second}))


if __name__ == "__main__":
    main()
