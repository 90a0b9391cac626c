"""Where the key comes from (issue 11 §8): the nearest ``.env`` the way python-dotenv's
``find_dotenv(usecwd=True)`` finds it, named in the errors; through a real shell
against the bundled server on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import CapturedIO, capture_output

from writer_magics.server import ServerHandle, start_server

DOTENV_KEY = "wk-from-dotenv-5b1d4086aa"


def run(shell: InteractiveShell, cell: str, cell_id: str) -> tuple[str, bool]:
    """What the cell showed, and whether it failed."""
    with capture_output() as captured:
        result = shell.run_cell(cell, cell_id=cell_id)
    return shown(captured), result.error_in_exec is not None


def shown(captured: CapturedIO) -> str:
    parts = [captured.stdout, captured.stderr]
    for output in captured.outputs:
        parts.extend(str(value) for value in output.data.values())
    return "\n".join(parts)


@pytest.fixture
def project(
    shell: InteractiveShell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[InteractiveShell, Path]:
    """A project folder with a ``.env`` holding the key (none in the environment)."""
    monkeypatch.delenv("WRITER_API_KEY")
    root = tmp_path / "project"
    (root / "data" / "raw").mkdir(parents=True)
    (root / ".env").write_text(f"WRITER_API_KEY={DOTENV_KEY}\n")
    monkeypatch.chdir(root)
    return shell, root


def test_chdir_into_a_subfolder_keeps_the_key(
    project: tuple[InteractiveShell, Path], server: ServerHandle
) -> None:
    shell, _root = project
    text, failed = run(shell, "%chat Hi", "a")
    assert not failed, text
    text, failed = run(shell, "import os\nos.chdir('data/raw')", "b")
    text, failed = run(shell, "%chat Still there", "c")
    assert not failed, text
    assert [r.headers["authorization"] for r in server.requests] == [f"Bearer {DOTENV_KEY}"] * 2


def test_the_nearest_dotenv_wins_and_a_missing_key_names_it(
    project: tuple[InteractiveShell, Path], server: ServerHandle
) -> None:
    shell, root = project
    (root / "data" / ".env").write_text("OTHER=1\n")  # nearer, but without the key
    shell.run_cell("import os\nos.chdir('data/raw')")
    text, failed = run(shell, "%chat Hi", "a")
    assert failed
    assert "No Writer API key is set" in text
    assert str(root / "data" / ".env") in text
    assert "Traceback" not in text
    assert server.requests == []


def test_a_wrong_key_names_the_file_it_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with start_server(api_key="the-right-key") as server:
        monkeypatch.setenv("WRITER_BASE_URL", server.url)
        monkeypatch.delenv("WRITER_API_KEY", raising=False)
        (tmp_path / ".env").write_text(f"WRITER_API_KEY={DOTENV_KEY}\n")
        (tmp_path / "sub").mkdir()
        monkeypatch.chdir(tmp_path / "sub")
        InteractiveShell.clear_instance()
        shell = InteractiveShell.instance()
        shell.run_line_magic("load_ext", "writer_magics")
        shell.run_line_magic("config", "WriterMagics.view = 'markdown'")
        try:
            text, failed = run(shell, "%chat Hi", "a")
        finally:
            shell.run_line_magic("unload_ext", "writer_magics")
            InteractiveShell.clear_instance()
        assert failed
        assert "AuthenticationError" in text
        assert f"Check the key from {tmp_path / '.env'}" in text
        assert DOTENV_KEY not in text
        assert len(server.requests) == 1


def test_config_beats_environment_beats_dotenv(
    project: tuple[InteractiveShell, Path], server: ServerHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 14 §14: an explicit ``%config`` wins; unset, the environment, then ``.env``."""
    shell, _root = project
    run(shell, "%chat one", "a")  # only the .env has a key
    monkeypatch.setenv("WRITER_API_KEY", "wk-from-env-0002")
    run(shell, "%chat two", "b")
    shell.run_line_magic("config", "WriterMagics.api_key = 'wk-from-config-0001'")
    run(shell, "%chat three", "c")
    shell.run_line_magic("config", "WriterMagics.api_key = ''")
    monkeypatch.delenv("WRITER_API_KEY")
    run(shell, "%chat four", "d")
    assert [r.headers["authorization"] for r in server.requests] == [
        f"Bearer {DOTENV_KEY}",
        "Bearer wk-from-env-0002",
        "Bearer wk-from-config-0001",
        f"Bearer {DOTENV_KEY}",
    ]


def test_an_unreadable_dotenv_is_one_line_naming_it(
    project: tuple[InteractiveShell, Path], server: ServerHandle
) -> None:
    shell, root = project
    (root / ".env").write_bytes(b"WRITER_API_KEY=\xff\xfe broken\n")
    text, failed = run(shell, "%chat Hi", "a")
    assert failed
    assert f"Could not read {root / '.env'}" in text
    assert "Traceback" not in text
    assert server.requests == []


def test_a_base_url_ending_in_v1_is_not_doubled(
    shell: InteractiveShell, writer_env: ServerHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OpenAI-style clients spell the base URL with ``/v1``; users paste it as it is."""
    monkeypatch.setenv("WRITER_BASE_URL", writer_env.url + "/v1/")
    text, failed = run(shell, "%%chat\nSay hello.", "cell-v1")
    assert not failed, text
    assert [r.path for r in writer_env.requests] == ["/v1/chat"]


def test_an_empty_model_setting_is_refused_and_the_old_one_kept(
    shell: InteractiveShell, writer_env: ServerHandle, caplog: pytest.LogCaptureFixture
) -> None:
    """``%config`` reports a refused value through IPython's log (one line), as for any trait."""
    run(shell, '%config WriterMagics.model = "  "', "cell-empty-model")
    assert [r.getMessage() for r in caplog.records] == [
        "WriterMagics.model cannot be empty; use a model name such as 'palmyra-x5'."
    ]
    assert shell.run_line_magic("config", "WriterMagics.model") == "palmyra-x5"
    text, failed = run(shell, "%%chat\nSay hello.", "cell-after")
    assert not failed, text
    assert writer_env.requests[-1].body["model"] == "palmyra-x5"


def test_a_refused_setting_does_not_break_the_next_reload(
    shell: InteractiveShell, writer_env: ServerHandle, caplog: pytest.LogCaptureFixture
) -> None:
    """IPython merges a ``%config`` line into the shell's config before the magics refuse
    it; the refused value must not stay there, or ``%reload_ext`` fails with a traitlets
    traceback and leaves no magics."""
    run(shell, "%config WriterMagics.read_timeout = 5", "cell-good")
    run(shell, "%config WriterMagics.read_timeout = -1", "cell-refused")
    assert caplog.records[-1].getMessage() == "WriterMagics.read_timeout must be positive, not -1.0"
    assert shell.config.WriterMagics.read_timeout == 5  # put back as it was
    text, failed = run(shell, "%reload_ext writer_magics", "cell-reload")
    assert not failed and "Traceback" not in text, text
    assert shell.run_line_magic("config", "WriterMagics.read_timeout") == 5.0
    text, failed = run(shell, "%%chat\nSay hello.", "cell-after")
    assert not failed, text
    assert writer_env.requests[-1].path == "/v1/chat"


def test_a_configured_value_the_magics_refuse_is_dropped_with_one_line(
    shell: InteractiveShell, writer_env: ServerHandle
) -> None:
    """A bad value in the config itself (ipython_config.py) costs one warning line at
    load, not the whole extension; the good values beside it are kept."""
    shell.config.WriterMagics.read_timeout = -3.0
    shell.config.WriterMagics.max_retries = 1
    text, failed = run(shell, "%reload_ext writer_magics", "cell-reload")
    assert not failed and "Traceback" not in text, text
    assert text.strip().splitlines()[-1] == (
        "Warning: WriterMagics.read_timeout = -3.0 is not used: "
        "WriterMagics.read_timeout must be positive, not -3.0"
    )
    assert shell.run_line_magic("config", "WriterMagics.read_timeout") == 60.0
    assert shell.run_line_magic("config", "WriterMagics.max_retries") == 1
    magics = [c for c in shell.configurables if type(c).__name__ == "WriterMagics"]
    assert len(magics) == 1  # neither the half-made nor the unloaded one stays
    text, failed = run(shell, "%%chat\nSay hello.", "cell-after")
    assert not failed, text
