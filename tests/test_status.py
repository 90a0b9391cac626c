"""``%writer models`` and ``%writer status`` through a real shell against the bundled
server: what they show (Markdown and its readable plain twin), and one-line errors."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import CapturedIO

from tests.conftest import API_KEY, run
from writer_magics.config import REMOVED_MODELS
from writer_magics.server import ServerHandle, start_server


def bundle(captured: CapturedIO) -> tuple[str, str]:
    """(text/markdown, text/plain) of the one display the command made."""
    [output] = captured.outputs
    return output.data["text/markdown"], output.data["text/plain"]


def error_lines(captured: CapturedIO) -> list[str]:
    assert captured.result.error_in_exec is not None  # type: ignore[attr-defined]
    text = captured.stdout + captured.stderr
    assert "Traceback" not in text and API_KEY not in text
    return [line for line in text.splitlines() if line.strip()]


# ------------------------------------------------------------------------ models


def test_models_lists_the_servers_models(shell: InteractiveShell, server: ServerHandle) -> None:
    captured = run(shell, "%writer models")
    markdown, plain = bundle(captured)
    assert [(r.method, r.path) for r in server.requests] == [("GET", "/v1/models")]
    assert server.requests[0].headers["authorization"] == f"Bearer {API_KEY}"
    assert "| `palmyra-x5` | Palmyra X5 | default, configured \\(WriterMagics\\.model\\) |" in (
        markdown
    )
    assert "| `palmyra-x4` | Palmyra X4 |" in markdown
    lines = plain.splitlines()
    assert lines[0] == f"Models (GET {server.url}/v1/models):"
    assert lines[1].split() == [
        *("palmyra-x5", "Palmyra", "X5"),
        *("default,", "configured", "(WriterMagics.model)"),
    ]
    assert lines[2].split() == ["palmyra-x4", "Palmyra", "X4"]
    assert "<IPython" not in plain and "object>" not in plain


def test_models_marks_the_configured_model_and_removed_settings(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    run(shell, "%config WriterMagics.model = 'palmyra-x4'")
    _, plain = bundle(run(shell, "%writer models"))
    assert "configured (WriterMagics.model)" in plain.splitlines()[2]
    assert "default" in plain.splitlines()[1] and "configured" not in plain.splitlines()[1]
    run(shell, "%config WriterMagics.model = 'palmyra-med'")
    markdown, plain = bundle(run(shell, "%writer models"))
    assert "WriterMagics.model = 'palmyra-med': palmyra-med" in plain
    assert "use palmyra-x5 instead" in plain and "palmyra-x5" in markdown


def test_models_terminal_style_prints_plain_text(
    writer_env: ServerHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    """A plain shell (as terminal IPython) prints the text/plain twin, never a repr."""
    InteractiveShell.clear_instance()
    sh = InteractiveShell.instance()
    sh.run_line_magic("load_ext", "writer_magics")
    try:
        sh.run_cell("%writer models")
        sh.run_cell("%writer status")
    finally:
        sh.run_line_magic("unload_ext", "writer_magics")
        InteractiveShell.clear_instance()
    out = capsys.readouterr().out
    assert "Models (GET" in out and "palmyra-x4" in out
    assert "Writer magics status" in out and "Next cell" in out
    assert "<IPython.core.display" not in out and "**" not in out


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_models_errors_are_one_line(
    shell: InteractiveShell,
    server: ServerHandle,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    closed_port: int,
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    monkeypatch.delenv("WRITER_API_KEY")
    [line] = error_lines(run(shell, "%writer models"))
    assert line.startswith("ConfigurationError: No Writer API key is set")
    assert "WRITER_API_KEY" in line
    assert server.requests == []
    monkeypatch.setenv("WRITER_API_KEY", API_KEY)
    with start_server(api_key="sk-the-right-one") as guarded:
        monkeypatch.setenv("WRITER_BASE_URL", guarded.url)
        [line] = error_lines(run(shell, "%writer models"))
        assert line.startswith("AuthenticationError: Writer rejected the API key (401)")
    monkeypatch.setenv("WRITER_BASE_URL", f"http://127.0.0.1:{closed_port}")
    [line] = error_lines(run(shell, "%writer models"))
    assert line.startswith(
        f"APIConnectionError: Could not connect to http://127.0.0.1:{closed_port}"
    )
    monkeypatch.setenv("WRITER_BASE_URL", server.url)
    assert "palmyra-x5" in bundle(run(shell, "%writer models"))[1]  # the next cell works


def test_bundled_server_lists_models_in_writers_shape(server: ServerHandle) -> None:
    import httpx

    body = httpx.get(f"{server.url}/v1/models").json()
    assert set(body) == {"models"}
    assert all(set(m) == {"id", "name"} for m in body["models"])

    assert not {m["id"] for m in body["models"]} & set(REMOVED_MODELS)
    with start_server(api_key="k") as guarded:
        assert httpx.get(f"{guarded.url}/v1/models").status_code == 401


# ------------------------------------------------------------------------ status


@pytest.fixture
def in_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    yield tmp_path


def rows(plain: str) -> dict[str, str]:
    found = {}
    for line in plain.splitlines()[1:]:
        label, _, value = line.strip().partition("  ")
        found[label] = value.strip()
    return found


def test_status_answers_what_the_next_cell_does(
    shell: InteractiveShell, server: ServerHandle, in_tmp: Path
) -> None:
    cache = in_tmp / "answers.jsonl"
    log = in_tmp / "log.sqlite3"
    run(shell, f"%config WriterMagics.cache_path = '{cache}'")
    run(shell, f"%config WriterMagics.log_path = '{log}'")
    run(shell, "%chat --cache Hello")
    long_system = "You are a careful reviewer who reads every line twice and then " * 3
    run(shell, f'%chat --session review -s "{long_system}" Check this')
    run(shell, "%chat --session review And this")
    server.clear()
    markdown, plain = bundle(run(shell, "%writer status"))
    assert server.requests == []  # status reads, it never sends
    found = rows(plain)
    assert plain.splitlines()[0] == "Writer magics status"
    assert found["Next cell"] == f"sends to {server.url}/v1/chat with palmyra-x5, streaming"
    assert found["Base URL"] == f"{server.url} (from WRITER_BASE_URL in the environment)"
    assert found["API key"] == "set, from WRITER_API_KEY in the environment"
    assert found["Model"] == "palmyra-x5 (default)"
    assert found["Changed settings"] == (
        f"cache_path = '{cache}', log_path = '{log}', max_retries = 0, view = 'markdown'"
    )
    assert found["Cache"].startswith(f"off (per cell with --cache), {cache}: 1 answers, ")
    assert found["Prompt log"].startswith(f"{log}: 3 entries, ")
    assert found["Session default"] == "1 turn"
    review = found["Session review"]
    assert review.startswith("2 turns, system: 'You are a careful reviewer")
    assert review.endswith("…'")
    assert len(review) < 100
    assert API_KEY not in markdown + plain
    assert "- **Next cell**: sends to" in markdown and "\\_" in markdown  # escaped Markdown


def test_status_names_the_key_source_never_the_key(
    shell: InteractiveShell, in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WRITER_API_KEY")
    (in_tmp / ".env").write_text("WRITER_API_KEY=sk-from-dotenv-123456\n")
    _, plain = bundle(run(shell, "%writer status"))
    assert rows(plain)["API key"] == f"set, from WRITER_API_KEY in {in_tmp / '.env'}"
    assert "sk-from-dotenv" not in plain
    (in_tmp / ".env").unlink()
    run(shell, "%config WriterMagics.api_key = 'sk-configured-7890'")
    markdown, plain = bundle(run(shell, "%writer status"))
    assert rows(plain)["API key"] == "set, from %config WriterMagics.api_key"
    assert "sk-configured" not in markdown + plain
    run(shell, "%config WriterMagics.api_key = ''")
    _, plain = bundle(run(shell, "%writer status"))
    assert rows(plain)["API key"] == "missing"
    assert rows(plain)["Next cell"].startswith("fails: no API key")


def test_status_in_replay_mode(
    shell: InteractiveShell, in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    replay = in_tmp / "shipped.jsonl"
    run(shell, f"%config WriterMagics.cache_path = '{replay}'")
    run(shell, "%chat --cache Hello")
    monkeypatch.setenv("WRITER_MAGICS_REPLAY", str(replay))
    _, plain = bundle(run(shell, "%writer status"))
    found = rows(plain)
    assert found["Next cell"] == "answers from the replay file only (no key, no network)"
    assert found["Replay"].startswith(
        f"on (WRITER_MAGICS_REPLAY in the environment), {replay}: 1 answers"
    )
    _, plain = bundle(run(shell, "%writer models"))
    assert "replay mode" in plain and "palmyra-x5" in plain
    assert json.loads(replay.read_text().splitlines()[-1])  # the file is untouched JSON


# ------------------------------------------------- %config wins over the environment


def test_config_wins_over_the_environment_and_status_says_so(
    shell: InteractiveShell, server: ServerHandle, in_tmp: Path, closed_port: int
) -> None:
    """Issue 14 §14: ``%config WriterMagics.base_url`` was ignored when WRITER_BASE_URL
    was set; now the explicit setting is used and ``%writer status`` names it."""
    dead = f"http://127.0.0.1:{closed_port}"
    with start_server(api_key="sk-configured-key-42") as configured:
        # the environment (writer_env) points at `server` with API_KEY
        run(shell, f"%config WriterMagics.base_url = '{configured.url}'")
        run(shell, "%config WriterMagics.api_key = 'sk-configured-key-42'")
        _, plain = bundle(run(shell, "%writer status"))
        found = rows(plain)
        assert found["Base URL"] == f"{configured.url} (from %config WriterMagics.base_url)"
        assert found["API key"] == "set, from %config WriterMagics.api_key"
        assert found["Next cell"].startswith(f"sends to {configured.url}/v1/chat")
        captured = run(shell, "%chat Hello")
        assert captured.result.error_in_exec is None
        assert [r.path for r in configured.requests] == ["/v1/chat"]
        assert configured.requests[0].headers["authorization"] == "Bearer sk-configured-key-42"
        assert server.requests == []
    # cleared again: the environment is in force
    run(shell, "%config WriterMagics.base_url = ''")
    run(shell, "%config WriterMagics.api_key = ''")
    _, plain = bundle(run(shell, "%writer status"))
    assert rows(plain)["Base URL"] == f"{server.url} (from WRITER_BASE_URL in the environment)"
    run(shell, "%chat Hello")
    assert [r.path for r in server.requests] == ["/v1/chat"]
    assert dead not in plain


def test_config_replay_and_fetch_models_win_over_the_environment(
    shell: InteractiveShell, server: ServerHandle, in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorded = in_tmp / "recorded.jsonl"
    run(shell, f"%config WriterMagics.cache_path = '{recorded}'")
    run(shell, "%chat --cache --session a Hello")
    monkeypatch.setenv("WRITER_MAGICS_REPLAY", str(in_tmp / "missing.jsonl"))
    run(shell, f"%config WriterMagics.replay = '{recorded}'")
    server.clear()
    _, plain = bundle(run(shell, "%writer status"))
    assert rows(plain)["Replay"].startswith(f"on (%config WriterMagics.replay), {recorded}:")
    captured = run(shell, "%chat --session b Hello")  # from recorded.jsonl, not missing.jsonl
    assert captured.result.error_in_exec is None
    assert server.requests == []
    monkeypatch.delenv("WRITER_MAGICS_REPLAY")
    run(shell, "%config WriterMagics.replay = ''")
    monkeypatch.setenv("WRITER_MAGICS_FETCH_MODELS", "0")
    _, plain = bundle(run(shell, "%writer status"))
    assert rows(plain)["Model list"] == (
        "known list (fetching off, from WRITER_MAGICS_FETCH_MODELS in the environment)"
    )
    monkeypatch.setenv("WRITER_MAGICS_FETCH_MODELS", "1")
    run(shell, "%config WriterMagics.fetch_models = False")
    _, plain = bundle(run(shell, "%writer status"))
    assert rows(plain)["Model list"] == (
        "known list (fetching off, from %config WriterMagics.fetch_models)"
    )
