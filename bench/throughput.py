"""Streaming throughput: client CPU seconds for one long chat stream, three consumers.

Every consumer runs in its own process (``bench/consume.py``) and reads the same
answer from the fixture server, which runs in yet another process; runs of the
consumers alternate so that drifting machine load hits all of them alike.
"""

from __future__ import annotations

from typing import Any

from bench.common import Fixture, median, run_child

MODES = ("bare", "sdk", "magics")


def measure(fixture: Fixture, chunks: int, runs: int) -> dict[str, Any]:
    """Median CPU and wall seconds per consumer for a ``chunks``-chunk answer."""
    prompt = f"Write a very long answer [[chunks:{chunks}]]"
    samples: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    for _ in range(runs):
        for mode in MODES:
            samples[mode].append(run_child(["bench/consume.py", mode, fixture.url, prompt]))
    chars = {s["chars"] for runs_ in samples.values() for s in runs_}
    if len(chars) != 1:
        raise RuntimeError(f"the consumers received different answers: {chars}")
    return {
        "chunks": chunks,
        "runs": runs,
        "answer_chars": chars.pop(),
        **{
            mode: {
                "cpu_s": median([s["cpu"] for s in found]),
                "wall_s": median([s["wall"] for s in found]),
                "cpu_runs": [s["cpu"] for s in found],
            }
            for mode, found in samples.items()
        },
    }
