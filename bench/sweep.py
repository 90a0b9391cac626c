"""Sweep concurrency in one process: ``python bench/sweep.py RUNS``.

An IPython shell with the extension loaded talks to the bundled server, where every
request waits 1 s before its first token. One request (``%%chat``) is the baseline;
the sweep is ``%%chat -t 0.1,...,0.8`` (8 requests) with ``max_concurrency`` 8, and
once more with the default limit. Prints one JSON line of wall times (seconds).
"""

from __future__ import annotations

import json
import os
import sys
import time

from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from writer_magics.server import start_server

LATENCY = 1.0
TEMPERATURES = ",".join(f"{t / 10:.1f}" for t in range(1, 9))


def timed(shell: InteractiveShell, cell: str) -> float:
    """Wall seconds of one cell (its output captured, its failure raised)."""
    with capture_output():
        start = time.perf_counter()
        result = shell.run_cell(cell)
        elapsed = time.perf_counter() - start
    result.raise_error()
    return elapsed


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    with start_server(latency=LATENCY) as server:
        os.environ.update(WRITER_BASE_URL=server.url, WRITER_API_KEY="bench-key")
        shell = InteractiveShell.instance()
        shell.run_line_magic("load_ext", "writer_magics")
        default = shell.run_line_magic("config", "WriterMagics.max_concurrency")
        timed(shell, "%%chat --new\nWarm up")
        single, sweep = [], []
        prompt = "Explain tides in two paragraphs"
        for _ in range(runs):
            shell.run_line_magic("config", "WriterMagics.max_concurrency = 8")
            single.append(timed(shell, f"%%chat --new\n{prompt}"))
            sweep.append(timed(shell, f"%%chat --new -t {TEMPERATURES}\n{prompt}"))
        shell.run_line_magic("config", f"WriterMagics.max_concurrency = {default}")
        at_default = timed(shell, f"%%chat --new -t {TEMPERATURES}\n{prompt}")
    print(
        json.dumps(
            {
                "latency": LATENCY,
                "requests": 8,
                "single": single,
                "sweep": sweep,
                "default_limit": default,
                "sweep_at_default": at_default,
            }
        )
    )


if __name__ == "__main__":
    main()
