"""Streaming CPU of several versions of the package, as ratios to the bare loop of one run.

``python bench/compare.py CHUNKS RUNS TREE [TREE ...]``: each TREE is a directory that
holds a ``writer_magics`` package (``git archive REV writer_magics | tar -x -C TREE``).
One fixture server; per round, alternating: the bare httpx + httpx-sse loop
(``bench/consume.py bare``), then for each tree ``%%chat`` in a kernel started with
``PYTHONPATH=TREE`` (kernel CPU of the cell, as in ``bench/kernel.py``) and in an IPython
shell (``bench/consume.py magics``). Prints the median CPU seconds and its ratio to the
bare loop's median for every row: before/after comparisons of a change in one run.
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import kernel as bench_kernel
from bench.common import ROOT, fixture_server, median, run_child


def main() -> None:
    chunks, runs, trees = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
    os.environ["PYTHONPATH"] = str(ROOT)  # the fixture server: this checkout's
    samples: dict[str, list[float]] = {"bare": []}
    prompt = f"Write a very long answer [[chunks:{chunks}]]"
    with fixture_server() as fixture, ExitStack() as stack:
        kernels = {}
        for tree in trees:
            os.environ["PYTHONPATH"] = tree  # inherited by the kernel
            kernels[tree] = stack.enter_context(bench_kernel.kernel(fixture))
            samples[f"kernel {tree}"] = []
            samples[f"shell {tree}"] = []
        for _ in range(runs):
            bare = run_child(["bench/consume.py", "bare", fixture.url, prompt])
            samples["bare"].append(bare["cpu"])
            for tree in trees:
                cell, _ = bench_kernel.chat(kernels[tree], fixture, f"[[chunks:{chunks}]]")
                samples[f"kernel {tree}"].append(cell.cpu)
                shell = run_child(
                    ["bench/consume.py", "magics", fixture.url, prompt], env={"PYTHONPATH": tree}
                )
                samples[f"shell {tree}"].append(shell["cpu"])
    base = median(samples["bare"])
    rows = {
        name: {"cpu_s": median(found), "ratio": median(found) / base, "runs": found}
        for name, found in samples.items()
    }
    for name, row in rows.items():
        print(f"{name:50s} {row['cpu_s']:.3f} s  {row['ratio']:.2f}x", file=sys.stderr)
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
