"""Extension load time: fresh processes that start an IPython shell, with and without it.

Each run is a new ``python -c`` process that imports IPython, starts
``InteractiveShell.instance()`` and, in the measured variant, runs
``%load_ext EXT``. Wall time of the whole process is timed from outside; the time of
the ``%load_ext`` line alone is reported by the child as a cross-check. Runs of the
two variants alternate so that drifting machine load hits both alike.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

from bench.common import ROOT, median

#: Bytecode caches as a user has them (pip writes them; this machine's environment
#: sets PYTHONDONTWRITEBYTECODE), kept outside the work tree.
ENV = {
    **{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
    "PYTHONPYCACHEPREFIX": "/tmp/writer-magics-bench-pycache",
}

CHILD = """
import json, sys, time
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
start = time.perf_counter()
if sys.argv[1]:
    shell.run_line_magic("load_ext", sys.argv[1])
print(json.dumps({"load_ext": time.perf_counter() - start}))
"""


def one(python: str, ext: str) -> tuple[float, float]:
    """(whole-process wall seconds, seconds of the ``%load_ext`` line) for one fresh process."""
    start = time.perf_counter()
    done = subprocess.run(
        [python, "-c", CHILD, ext],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=ENV,
        timeout=120,
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"loading {ext!r} failed:\n{done.stderr[-2000:]}")
    inner = json.loads(done.stdout.strip().splitlines()[-1])["load_ext"]
    return wall, float(inner)


def compare(python: str, ext: str, runs: int) -> dict[str, Any]:
    """Medians of ``runs`` alternating processes with and without ``%load_ext EXT``."""
    one(python, "")  # write bytecode caches, warm the OS file cache
    one(python, ext)
    base: list[float] = []
    with_ext: list[float] = []
    inner: list[float] = []
    for _ in range(runs):
        base.append(one(python, "")[0])
        wall, load = one(python, ext)
        with_ext.append(wall)
        inner.append(load)
    return {
        "extension": ext,
        "python": python,
        "runs": runs,
        "baseline_s": median(base),
        "with_extension_s": median(with_ext),
        "added_s": median(with_ext) - median(base),
        "load_ext_line_s": median(inner),
        "ratio": median(with_ext) / median(base),
    }


if __name__ == "__main__":
    print(json.dumps(compare(sys.executable, sys.argv[1] if len(sys.argv) > 1 else "", 5)))
