"""Extension load time: fresh processes that start an IPython shell, with and without it.

Each run is a new ``python -c`` process that imports IPython, starts
``InteractiveShell.instance()`` and, in the measured variant, runs
``%load_ext EXT``. Wall time of the whole process is timed from outside; the time of
the ``%load_ext`` line alone is reported by the child as a cross-check. Runs of the
two variants alternate so that drifting machine load hits both alike.

:func:`in_kernel` measures the same line in a real kernel, where ipykernel has
already imported asyncio, zmq, tornado and more: a fresh ipykernel started by
jupyter_client per run; once it answers, one execute request runs ``%load_ext EXT``
and reports the line's own ``time.perf_counter()`` seconds inside the kernel; the
execute request's round trip seen from here (minus that of a ``pass`` request just
before it) is kept as a cross-check.
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


KERNEL_CODE = """
import time as _bench_time
_bench_start = _bench_time.perf_counter()
get_ipython().run_line_magic("load_ext", {ext!r})
_bench_load_s = _bench_time.perf_counter() - _bench_start
"""


def _round_trip(client: Any, code: str, expressions: dict[str, str]) -> tuple[float, Any]:
    start = time.perf_counter()
    reply = client.execute(code, user_expressions=expressions, reply=True, timeout=60)
    wall = time.perf_counter() - start
    content = reply["content"]
    if content["status"] != "ok":
        raise RuntimeError(f"{code!r} failed in the kernel: {content}")
    return wall, content.get("user_expressions", {})


def one_kernel(ext: str) -> tuple[float, float]:
    """(seconds of the ``%load_ext`` line inside a fresh kernel, its request's extra round trip)."""
    from jupyter_client.manager import KernelManager

    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(env=ENV, cwd=str(ROOT))
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        for _ in range(3):  # settle: the first requests of a kernel are slower
            _round_trip(client, "pass", {})
        base, _ = _round_trip(client, "pass", {})
        wall, found = _round_trip(client, KERNEL_CODE.format(ext=ext), {"s": "_bench_load_s"})
        inner = float(found["s"]["data"]["text/plain"])
        return inner, wall - base
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def in_kernel(ext: str, runs: int) -> dict[str, Any]:
    """Medians over ``runs`` fresh kernels of the ``%load_ext EXT`` line (see module doc)."""
    one_kernel(ext)  # write bytecode caches, warm the OS file cache
    inner: list[float] = []
    extra: list[float] = []
    for _ in range(runs):
        line, request = one_kernel(ext)
        inner.append(line)
        extra.append(request)
    return {
        "extension": ext,
        "runs": runs,
        "load_ext_line_s": median(inner),
        "request_extra_s": median(extra),
        "line_runs": inner,
        "request_runs": extra,
    }


if __name__ == "__main__":
    name = sys.argv[1] if len(sys.argv) > 1 else "writer_magics"
    print(json.dumps({"shell": compare(sys.executable, name, 5), "kernel": in_kernel(name, 5)}))
