"""Sweeps, the prompt log, the cache and offline replay through a real shell and the
bundled server (issue 6)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell

from tests.conftest import API_KEY, run
from tests.test_magics import everything
from writer_magics.answer.sweep import Sweep
from writer_magics.server import ServerHandle, start_server


@pytest.fixture
def files(shell: InteractiveShell, tmp_path: Path) -> Iterator[dict[str, Path]]:
    paths = {"cache": tmp_path / "cache.jsonl", "log": tmp_path / "log.sqlite3"}
    shell.run_line_magic("config", f"WriterMagics.cache_path = {str(paths['cache'])!r}")
    shell.run_line_magic("config", f"WriterMagics.log_path = {str(paths['log'])!r}")
    yield paths


def test_two_by_two_sweep_runs_concurrently_into_panels(
    shell: InteractiveShell, server: ServerHandle, files: dict[str, Path]
) -> None:
    captured = run(
        shell, "%%complete -m palmyra-x5,palmyra-x4 -t 0.2,1.0 -o s\nA haiku [[latency:0.6]]"
    )
    requests = server.requests
    assert len(requests) == 4
    sent = [(r.body["model"], r.body["temperature"]) for r in requests]
    assert sorted(sent) == sorted(
        [("palmyra-x5", 0.2), ("palmyra-x5", 1.0), ("palmyra-x4", 0.2), ("palmyra-x4", 1.0)]
    )
    latest_start = max(r.started for r in requests)
    earliest_end = min(r.ended or 0 for r in requests)
    assert latest_start < earliest_end, "the four requests should overlap on the server"
    sweep = shell.user_ns["s"]
    assert isinstance(sweep, Sweep) and len(sweep) == 4
    assert all(result.text for result in sweep.results)
    final = [o.data["text/markdown"] for o in captured.outputs if "text/markdown" in o.data][-1]
    for result in sweep.results:
        assert result.text in final
    assert "t=0.2" in final and "palmyra-x4" in final
    records = sweep.to_records()
    assert {"model", "temperature", "text"} <= set(records[0])


def test_one_failed_combination_fails_only_its_panel(
    shell: InteractiveShell, server: ServerHandle, files: dict[str, Path]
) -> None:
    captured = run(shell, "%%chat -m palmyra-x5,palmyra-nope -o s\nHello")
    assert captured.result.error_in_exec is None
    sweep = shell.user_ns["s"]
    by_model = {params.model: result for params, result in sweep}
    assert by_model["palmyra-x5"].status == "done" and by_model["palmyra-x5"].text
    assert by_model["palmyra-nope"].status == "failed"
    assert "palmyra-nope" in everything(captured)
    # a sweep compares; it says so, and the history stays as it was
    assert "session default (not kept in its history)" in everything(captured)
    assert "No chat sessions yet" in everything(run(shell, "%chat --sessions"))


def test_sweep_concurrency_is_bounded(
    shell: InteractiveShell, server: ServerHandle, files: dict[str, Path]
) -> None:
    shell.run_line_magic("config", "WriterMagics.max_concurrency = 2")
    run(shell, "%%complete -t 0.1,0.2,0.3,0.4\nHi [[latency:0.4]]")
    events = sorted(
        [(r.started, 1) for r in server.requests] + [(r.ended or 0, -1) for r in server.requests]
    )
    running = peak = 0
    for _, change in events:
        running += change
        peak = max(peak, running)
    assert peak == 2


def test_log_records_each_request_without_the_key(
    shell: InteractiveShell, server: ServerHandle, files: dict[str, Path]
) -> None:
    run(shell, "%%chat -t 0.3\nLog me please")
    run(shell, "%%chat\nAnd fail [[fault:500]]")
    with sqlite3.connect(files["log"]) as db:
        dump = "\n".join(db.iterdump())
    assert API_KEY not in dump
    listing = everything(run(shell, "%writer log -n 5"))
    assert "Log me please" in listing and "failed" in listing
    assert everything(run(shell, "%writer log --search 'Log me'")).count("Log me please") >= 1
    export = files["log"].with_suffix(".jsonl")
    run(shell, f"%writer log --export {export}")
    lines = export.read_text().splitlines()
    assert len(lines) == 2 and API_KEY not in export.read_text()
    assert '"temperature": 0.3' in lines[0] or '"temperature": 0.3' in lines[1]


def test_cache_hit_sends_no_request(
    shell: InteractiveShell, server: ServerHandle, files: dict[str, Path]
) -> None:
    run(shell, "%%complete --cache --random-seed 3 -o first\nCache me")
    assert len(server.requests) == 1
    captured = run(shell, "%%complete --cache --random-seed 3 -o second\nCache me")
    assert len(server.requests) == 1, "a cache hit must not reach the server"
    assert shell.user_ns["second"].text == shell.user_ns["first"].text
    assert shell.user_ns["second"].status == "cached"
    assert "cached" in everything(captured)
    run(shell, "%%complete --cache --random-seed 4\nCache me")
    assert len(server.requests) == 2, "a different seed is a different request"


def test_replay_works_with_no_key_and_no_server(
    shell: InteractiveShell,
    server: ServerHandle,
    files: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    run(shell, "%%chat --cache -o recorded\nRecord this lesson", cell_id="lesson")
    shipped = tmp_path / "class.jsonl"
    run(shell, f"%writer cache --export {shipped}")
    with start_server() as gone:
        dead_url = gone.url
    monkeypatch.delenv("WRITER_API_KEY")
    monkeypatch.setenv("WRITER_BASE_URL", dead_url)
    monkeypatch.setenv("WRITER_MAGICS_REPLAY", str(shipped))
    monkeypatch.chdir(tmp_path)
    shell.run_line_magic("chat", "--reset")
    run(shell, "%%chat -o replayed\nRecord this lesson", cell_id="lesson")
    assert shell.user_ns["replayed"].text == shell.user_ns["recorded"].text
    captured = run(shell, "%%chat\nSomething never recorded", cell_id="other")
    text = everything(captured)
    assert "ReplayMissError" in text and "Something never recorded" in text
    assert "Traceback" not in text
