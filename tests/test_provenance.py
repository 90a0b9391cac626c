"""Provenance (issue 18): every static finish carries ``metadata["writer_magics"]``, and
``python -m writer_magics provenance`` reads it back from a saved notebook."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from IPython.core.interactiveshell import InteractiveShell
from nbclient import NotebookClient

from tests.conftest import API_KEY, run
from tests.kernel_env import PYTHON3, kernel_env
from tests.test_budget import failed
from writer_magics import __version__
from writer_magics.line.classroom import CLASS_FILE
from writer_magics.server import ServerHandle
from writer_magics.transport.cache import request_key


def stamps(captured: Any) -> list[dict[str, Any]]:
    return [o.metadata["writer_magics"] for o in captured.outputs if "writer_magics" in o.metadata]


def test_every_static_finish_carries_provenance_and_never_the_key(
    shell: InteractiveShell, server: ServerHandle, tmp_path: Path
) -> None:
    captured = run(shell, "%%chat --new -t 0.3 --max-tokens 40 -s 'Be brief.' --cache\nHi")
    (stamp,) = stamps(captured)
    assert stamp["package"] == "writer-magics" and stamp["version"] == __version__
    assert stamp["time"].endswith("+00:00") and stamp["class_settings"] is None
    (answer,) = stamp["answers"]
    body = server.requests[-1].body
    assert answer == {
        "endpoint": "chat",
        "model": "palmyra-x5",
        "parameters": {"max_tokens": 40, "temperature": 0.3},
        "system_prompt_sha256": answer["system_prompt_sha256"],
        "usage": answer["usage"],
        "finish_reason": "length",  # the bundled server's answer is longer than 40 tokens
        "status": "done",
        "request_hash": request_key("chat", body),
        "source": "live",
    }
    assert len(answer["system_prompt_sha256"]) == 64
    assert answer["usage"]["total_tokens"] > 0
    assert API_KEY not in json.dumps(stamp)

    again = stamps(run(shell, "%%chat --new -t 0.3 --max-tokens 40 -s 'Be brief.' --cache\nHi"))
    assert again[0]["answers"][0]["source"] == "cached"
    assert again[0]["answers"][0]["request_hash"] == answer["request_hash"]

    # A sweep: one answer per request, in panel order.
    sweep = stamps(run(shell, "%%complete -t 0.2,0.8 --max-tokens 5\nOnce"))
    assert [a["parameters"]["temperature"] for a in sweep[0]["answers"]] == [0.2, 0.8]

    # A failed answer is stamped too (status failed).
    captured = run(shell, "%%chat --new\nThis fails [[fault:500]]")
    assert failed(captured)
    assert stamps(captured)[0]["answers"][0]["status"] == "failed"


def test_replayed_answers_say_so(
    shell: InteractiveShell,
    server: ServerHandle,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shipped = tmp_path / "class.jsonl"
    run(shell, "%%chat --new --cache\nWhat is a token?")
    run(shell, f"%writer cache --export {shipped}")
    monkeypatch.setenv("WRITER_MAGICS_REPLAY", str(shipped))
    captured = run(shell, "%%chat --new\nWhat is a token?")
    assert stamps(captured)[0]["answers"][0]["source"] == "replayed"
    assert len(server.requests) == 1


LESSON = [
    "%load_ext writer_magics",
    "%%chat --new --max-tokens 30\nWhat is a token?",
    "%%complete -t 0.2,0.9 --max-tokens 10\nOnce upon a time",
]


def lesson_notebook(folder: Path, cells: list[str] = LESSON) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = PYTHON3
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    path = folder / "lesson.ipynb"
    nbformat.write(nb, path)
    return path


def execute(path: Path, env: dict[str, str]) -> None:
    """Run the notebook in a real kernel in its folder and save it, as JupyterLab would."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=60, startup_timeout=60, resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute(env=env)
    nbformat.write(nb, path)


def provenance(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "writer_magics", "provenance", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.timeout(120)
def test_a_notebook_executed_with_nbclient_keeps_provenance_and_the_command_checks_it(
    server: ServerHandle, tmp_path: Path
) -> None:
    (tmp_path / CLASS_FILE).write_text('model = "palmyra-x4"\nmax_tokens = 10\n')
    path = lesson_notebook(tmp_path, [LESSON[0], "%%chat --new\nWhat is a token?", LESSON[2]])
    execute(path, kernel_env(server.url))

    nb = json.loads(path.read_text())
    found = [
        o["metadata"]["writer_magics"]
        for cell in nb["cells"]
        for o in cell["outputs"]
        if "writer_magics" in o.get("metadata", {})
    ]
    assert len(found) == 2  # one static finish per asking cell (the sweep has two answers)
    assert all(s["class_settings"]["file"] == CLASS_FILE for s in found)
    assert "test-key" not in path.read_text()

    checked = provenance(str(path), "--class", str(tmp_path / CLASS_FILE))
    assert checked.returncode == 0, checked.stderr
    rows = checked.stdout.splitlines()
    assert rows[0].split() == ["cell", "model", "params", "tokens", "source", "check"]
    cells = [r.split()[:2] for r in rows[1:4]]
    assert cells == [["2", "palmyra-x4"], ["3", "palmyra-x4"], ["3", "palmyra-x4"]]
    assert "max_tokens=10 temperature=0.2" in rows[2] and "live" in rows[2]
    assert all(r.rstrip().endswith("ok") for r in rows[1:4])
    assert rows[-1] == "3 answers with provenance in lesson.ipynb; all match"

    other = tmp_path / "stricter.toml"
    other.write_text('model = "palmyra-x5"\ntemperature = 0.2\n')
    differs = provenance(str(path), "--class", str(other))
    assert differs.returncode == 1
    assert "DIFFERS: model=palmyra-x4 (class: palmyra-x5); temperature=unset" in differs.stdout
    assert differs.stdout.splitlines()[-1].endswith(f"3 differ from {other}")

    assert provenance(str(path)).returncode == 0  # no class file: a listing only
    missing = provenance(str(tmp_path / "nope.ipynb"))
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1
    bad = tmp_path / "bad.toml"
    bad.write_text("modle = 1\n")
    broken = provenance(str(path), "--class", str(bad))
    assert broken.returncode == 2 and "unknown key 'modle'" in broken.stderr


@pytest.mark.timeout(120)
def test_batches_carry_provenance_and_stripped_answers_are_not_a_pass(
    server: ServerHandle, tmp_path: Path
) -> None:
    """A teacher's "all match" must mean every answer was checked: --over rows carry
    provenance, and a cell whose answers lost theirs is reported, not passed."""
    (tmp_path / CLASS_FILE).write_text('model = "palmyra-x5"\n')
    path = lesson_notebook(
        tmp_path,
        [LESSON[0], "items = ['a', 'b']", "%%chat --over items --max-tokens 5\nSay {item}"],
    )
    execute(path, kernel_env(server.url))
    checked = provenance(str(path), "--class", str(tmp_path / CLASS_FILE))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert [r.split()[0] for r in checked.stdout.splitlines()[1:3]] == ["3", "3"]
    assert checked.stdout.splitlines()[-1] == "2 answers with provenance in lesson.ipynb; all match"

    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            output.get("metadata", {}).pop("writer_magics", None)
    stripped = tmp_path / "stripped.ipynb"
    stripped.write_text(json.dumps(nb))
    bare = provenance(str(stripped), "--class", str(tmp_path / CLASS_FILE))
    assert bare.returncode == 1
    assert bare.stdout.splitlines()[-1] == (
        "0 answers with provenance in stripped.ipynb; 1 cell(s) show answers "
        "without provenance (3): not checked (stripped or edited)"
    )
