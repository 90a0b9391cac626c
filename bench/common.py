"""Shared helpers: the fixture server in its own process, child runs, medians."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
API_KEY = "bench-key"


def median(values: Sequence[float]) -> float:
    """The median (of several runs)."""
    return float(statistics.median(values))


class Fixture:
    """The fixture server (``bench/fixture.py``) running in a child process."""

    def __init__(self, proc: subprocess.Popen[str], url: str) -> None:
        self.proc = proc
        self.url = url

    def log(self) -> list[dict[str, Any]]:
        """Every chat request served since the last :meth:`clear`."""
        with urllib.request.urlopen(self.url + "/bench/log") as response:
            data: list[dict[str, Any]] = json.load(response)
        return data

    def clear(self) -> None:
        with urllib.request.urlopen(self.url + "/bench/clear"):
            pass


@contextmanager
def fixture_server() -> Iterator[Fixture]:
    """Start ``bench/fixture.py`` in its own process (its CPU is never the client's)."""
    proc = subprocess.Popen(
        [sys.executable, str(BENCH / "fixture.py")],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    try:
        yield Fixture(proc, url)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def run_child(
    args: Sequence[str], env: dict[str, str] | None = None, python: str = sys.executable
) -> dict[str, Any]:
    """Run ``python ARGS`` and parse the JSON object it prints on its last line."""
    done = subprocess.run(
        [python, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result
