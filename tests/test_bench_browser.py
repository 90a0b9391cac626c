"""The browser bench (bench/browser.py, issue 19 goal 2) still runs: a smoke test.

A small answer streams in JupyterLab under Chromium and is rendered once; the script
prints its table with a streaming / once ratio for the shape, and its JSON. No
assertion on the numbers: it is a benchmark, timed on a shared machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from bench.browser import missing
from tests.kernel_env import REPO


@pytest.mark.timeout(240)
def test_browser_bench_prints_a_ratio_for_a_small_answer() -> None:
    why = missing()
    if why is not None and os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(why)  # as the browser tests: CI installs Chromium and Playwright
    if why is not None:
        pytest.skip(why)
    small = ["--bytes", "3000", "--tps", "1500", "--shapes", "paragraph"]
    done = subprocess.run(
        [sys.executable, "bench/browser.py", *small],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=220,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    (row,) = result["shapes"]
    assert row["shape"] == "paragraph" and row["ratio"] > 0
    assert row["runs"][0]["streaming_chars_shown"] >= 3000  # the answer was on screen
    assert row["runs"][0]["once_chars_shown"] >= 3000
    assert "| paragraph | 3 KB at 1,500 tok/s |" in done.stderr
    assert "x** |" in done.stderr  # the ratio column
