"""``python -m writer_magics record`` (issue 18): run a lesson in a real kernel against the
bundled server, write the replay file, then run the lesson offline with zero requests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from tests.kernel_env import kernel_env
from tests.test_provenance import LESSON, lesson_notebook
from writer_magics.server import ServerHandle
from writer_magics.transport.cache import parse_lines, request_key

pytestmark = pytest.mark.timeout(180)


def record(notebook: Path, out: Path, url: str) -> subprocess.CompletedProcess[str]:
    """The command as a teacher runs it: no key in the environment, just --base-url."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WRITER_")}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "writer_magics",
            "record",
            str(notebook),
            "-o",
            str(out),
            "--base-url",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=150,
        env=env,
    )


def offline_env(replay: Path, url: str) -> dict[str, str]:
    """Replay mode with no key; the URL still points at the server so a leak would show."""
    env = kernel_env(url)
    del env["WRITER_API_KEY"]
    env["WRITER_MAGICS_REPLAY"] = str(replay)
    return env


def run_notebook(path: Path, env: dict[str, str]) -> nbformat.NotebookNode:
    nb: nbformat.NotebookNode = nbformat.read(path, as_version=4)
    NotebookClient(
        nb, timeout=60, startup_timeout=60, resources={"metadata": {"path": str(path.parent)}}
    ).execute(env=env)
    return nb


def test_record_writes_exactly_the_requests_and_the_lesson_then_runs_offline(
    server: ServerHandle, tmp_path: Path
) -> None:
    cells = [*LESSON, "%%chat --new --max-tokens 30\nWhat is a token?"]  # asked twice
    path = lesson_notebook(tmp_path, cells)
    before = path.read_bytes()
    replay = tmp_path / "class.jsonl"

    done = record(path, replay, server.url)
    assert done.returncode == 0, done.stderr
    sent = [r for r in server.requests if r.path in ("/v1/chat", "/v1/completions")]
    assert len(sent) == len(server.requests)  # nothing else (no model list) was fetched
    distinct = {request_key(r.path.rsplit("/", 1)[-1], r.body) for r in sent}
    assert len(distinct) == 3  # one chat (asked twice, answered once) and a sweep of two
    assert done.stdout.splitlines()[0] == f"Recorded 3 answers from lesson.ipynb to {replay}."
    with replay.open("rb") as file:
        entries, _ = parse_lines(file, source=str(replay), strict=True)
    assert {e.key for e in entries} == distinct
    assert path.read_bytes() == before  # the lesson itself is left as it was

    server.clear()
    nb = run_notebook(path, offline_env(replay, server.url))
    assert server.requests == []  # no network
    sources = [
        a["source"]
        for cell in nb.cells
        for o in cell.get("outputs", [])
        for a in o.get("metadata", {}).get("writer_magics", {}).get("answers", [])
    ]
    assert sources == ["replayed"] * 4

    # A cell a student edited was never recorded: the usual one-line error, nothing sent.
    nb.cells[1].source = "%%chat --new --max-tokens 30\nWhat is a pirate?"
    nbformat.write(nb, path)
    with pytest.raises(CellExecutionError) as failure:
        run_notebook(path, offline_env(replay, server.url))
    assert "ReplayMissError: Replay mode has no recorded answer" in str(failure.value)
    assert server.requests == []


def test_a_failing_cell_writes_nothing(server: ServerHandle, tmp_path: Path) -> None:
    path = lesson_notebook(tmp_path, [LESSON[0], "%%chat\nThis fails [[fault:400]]"])
    replay = tmp_path / "class.jsonl"
    done = record(path, replay, server.url)
    assert done.returncode == 1
    assert done.stderr.startswith("error: Cell 2 (%%chat) failed (BadRequestError: "), (
        done.stderr
    )  # which cell, so the teacher can find it
    assert done.stderr.count("\n") == 1
    assert not replay.exists()
    missing = record(tmp_path / "nope.ipynb", replay, server.url)
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    assert json.loads(path.read_text())["cells"][1]["outputs"] == []


def test_an_unwritable_output_is_refused_before_any_request(
    server: ServerHandle, tmp_path: Path
) -> None:
    """A mistyped -o folder must not cost the whole lesson's requests first."""
    path = lesson_notebook(tmp_path, [LESSON[0]])
    done = record(path, tmp_path / "nodir" / "class.jsonl", server.url)
    assert done.returncode == 1
    assert done.stderr == (
        f"error: Cannot write {tmp_path / 'nodir' / 'class.jsonl'}: the folder "
        f"{tmp_path / 'nodir'} does not exist; nothing was run\n"
    )
    assert server.requests == []
