"""Class settings (issue 18): a TOML file beside the notebook pins the lesson's settings.

Through a real shell against the bundled server: what was sent, what was refused (one
line naming the file, nothing sent), the badge in the answer's header.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from tests.conftest import run
from tests.test_budget import failed, magics_of
from tests.test_magics import everything, last_body
from writer_magics.errors import ClassSettingsError
from writer_magics.line.classroom import CLASS_FILE, load
from writer_magics.server import ServerHandle

PINNED = """\
model = "palmyra-x4"
temperature = 0.2
"""


@pytest.fixture
def lesson(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The notebook's folder, as the kernel's working directory, with no class file yet."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WRITER_MAGICS_CLASS", raising=False)
    return tmp_path


def refusal(captured: object) -> str:
    """The one refusal line; nothing else, no traceback."""
    text = everything(captured)  # type: ignore[arg-type]
    assert failed(captured) and "Traceback" not in text
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    return lines[0]


# ---------------------------------------------------------------- pinned values


def test_pinned_model_and_temperature_are_sent_and_overrides_refused(
    shell: InteractiveShell, server: ServerHandle, lesson: Path
) -> None:
    (lesson / CLASS_FILE).write_text(PINNED)
    assert not failed(run(shell, "%%chat --new\nWhat is a token?"))
    assert last_body(server)["model"] == "palmyra-x4"
    assert last_body(server)["temperature"] == 0.2

    for line in ("-m palmyra-x5", "-t 0.9", "-t 0.2,0.9", "--model=palmyra-med"):
        captured = run(shell, f"%%chat --new {line}\nWhat is a token?")
        text = refusal(captured)
        assert "UsageError" in text and f"class settings in {CLASS_FILE} pin" in text
    assert len(server.requests) == 1  # nothing of the refused cells was sent

    # The pinned value itself is not an override.
    assert not failed(run(shell, "%%chat --new -t 0.2 -m palmyra-x4\nWhat is a token?"))
    assert len(server.requests) == 2


def test_config_cannot_override_the_pinned_model(
    shell: InteractiveShell,
    server: ServerHandle,
    lesson: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    (lesson / CLASS_FILE).write_text(PINNED)
    run(shell, "%config WriterMagics.model = 'palmyra-med'")
    logged = [r.getMessage() for r in caplog.records]
    assert logged == [
        "WriterMagics.model = 'palmyra-med' was refused: the class settings in "
        f"{CLASS_FILE} pin model = 'palmyra-x4'"
    ]
    assert magics_of(shell).model != "palmyra-med"
    run(shell, "%%chat\nHi")
    assert last_body(server)["model"] == "palmyra-x4"


def test_the_badge_in_the_header_and_the_provenance_of_the_class(
    shell: InteractiveShell, server: ServerHandle, lesson: Path
) -> None:
    (lesson / CLASS_FILE).write_text(PINNED)
    captured = run(shell, "%%chat\nHi")
    heads = [o.data["text/plain"] for o in captured.outputs if "writer-magics-head" in str(o.data)]
    assert heads and all(" · class settings" in line for line in heads)  # live and final
    (final,) = [o for o in captured.outputs if o.metadata]
    stamp = final.metadata["writer_magics"]["class_settings"]
    assert stamp["file"] == CLASS_FILE
    assert stamp["pins"] == {"model": "palmyra-x4", "temperature": 0.2}
    assert len(stamp["sha256"]) == 64

    (lesson / CLASS_FILE).unlink()  # no file: no badge, no pins
    captured = run(shell, "%%chat\nHi")
    assert "class settings" not in everything(captured)


def test_system_prompt_seed_and_allowed_options(
    shell: InteractiveShell, server: ServerHandle, lesson: Path
) -> None:
    (lesson / CLASS_FILE).write_text(
        'system_prompt = "You are a patient tutor."\nrandom_seed = 7\nmax_tokens = 30\n'
        'allowed_options = ["--new", "--session", "-o", "--max-tokens", "-s"]\n'
    )
    run(shell, "%%chat --new -o a\nHi")
    body = last_body(server)
    assert body["messages"][0] == {"role": "system", "content": "You are a patient tutor."}
    assert body["max_tokens"] == 30
    text = refusal(run(shell, '%%chat --new -s "You are a pirate."\nHi'))
    assert text.startswith("UsageError: --system 'You are a pirate.' was refused: the class")
    text = refusal(run(shell, "%%chat --web-search\nHi"))
    assert text == (
        f"UsageError: --web-search is not allowed by the class settings in {CLASS_FILE} "
        "(allowed: --max-tokens, --new, --out, --session, --system)"
    )
    assert len(server.requests) == 1
    shown = everything(run(shell, "%chat --show"))  # the system prompt that is sent
    assert "**System** (pinned by the class file):\n\nYou are a patient tutor." in shown
    (lesson / CLASS_FILE).write_text("random_seed = 7\n")
    run(shell, "%%complete\nOnce upon a time")
    assert last_body(server)["random_seed"] == 7
    assert "--random-seed 8 was refused" in refusal(run(shell, "%%complete --random-seed 8\nOnce"))


def test_the_class_file_named_by_the_environment(
    shell: InteractiveShell,
    server: ServerHandle,
    lesson: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    elsewhere = lesson / "course" / "week1.toml"
    elsewhere.parent.mkdir()
    elsewhere.write_text('model = "palmyra-x4"\n')
    monkeypatch.setenv("WRITER_MAGICS_CLASS", str(elsewhere))
    run(shell, "%%chat\nHi")
    assert last_body(server)["model"] == "palmyra-x4"
    assert f"class settings in {elsewhere} pin" in refusal(run(shell, "%%chat -m palmyra-x5\nHi"))
    status = magics_of(shell).teaching_status()
    assert status[1] == f"class settings: {elsewhere} · model='palmyra-x4'"


# ---------------------------------------------------------------- broken files


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("temprature = 0.2\n", "unknown key 'temprature'"),
        ("temperature = 'hot'\n", "temperature must be a number between 0 and 2, got 'hot'"),
        ("model = palmyra\n", "is not valid TOML"),
        ("max_tokens = 0\n", "max_tokens must be a whole number of at least 1"),
        ("allowed_options = ['--frobnicate']\n", "allowed_options has an unknown option"),
        ("[budget]\nrequest = 5\n", "unknown key 'budget.request'"),
        ("[budget]\nrequests = -5\n", "budget.requests must be a whole number of 0 or more"),
    ],
)
def test_a_malformed_file_is_one_line_at_load_and_every_cell_refuses(
    content: str,
    message: str,
    shell: InteractiveShell,
    server: ServerHandle,
    lesson: Path,
) -> None:
    (lesson / CLASS_FILE).write_text(content)
    with capture_output() as loading:
        shell.run_line_magic("reload_ext", "writer_magics")
    said = loading.stderr.strip()
    assert "\n" not in said and said.startswith(f"ClassSettingsError: {CLASS_FILE}")
    assert message in said
    captured = run(shell, "%%chat\nHi")
    assert refusal(captured) == said
    assert server.requests == []
    # Fixing the file is enough: no restart needed.
    (lesson / CLASS_FILE).write_text(PINNED)
    assert not failed(run(shell, "%%chat\nHi"))
    assert last_body(server)["model"] == "palmyra-x4"


def test_loading_checks_every_key(tmp_path: Path) -> None:
    path = tmp_path / CLASS_FILE
    path.write_text(
        PINNED + 'top_p = 0.9\nmax_tokens = 200\nrandom_seed = 42\nsystem_prompt = "Be kind."\n'
        'allowed_options = ["session", "-o"]\n[budget]\nrequests = 50\ntokens = 20000\n'
    )
    found = load(path, CLASS_FILE)
    assert found.pins() == {
        "model": "palmyra-x4",
        "temperature": 0.2,
        "top_p": 0.9,
        "max_tokens": 200,
        "random_seed": 42,
        "system_prompt": "Be kind.",
    }
    assert found.allowed_options == frozenset({"--session", "--out"})
    assert found.budget == (50, 20000)
    with pytest.raises(ClassSettingsError, match="does not exist"):
        load(tmp_path / "missing.toml")


def test_a_missing_file_named_by_the_environment_refuses_every_cell(
    shell: InteractiveShell,
    server: ServerHandle,
    lesson: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WRITER_MAGICS_CLASS", str(lesson / "week9.toml"))
    line = refusal(run(shell, "%%chat\nHi"))
    assert (
        line
        == f"ClassSettingsError: The class settings file {lesson / 'week9.toml'} does not exist."
    )
    assert server.requests == []
    assert magics_of(shell).teaching_status()[1] == f"class settings: {line.split(': ', 1)[1]}"


def test_writer_status_shows_the_budget_and_the_class_settings(
    shell: InteractiveShell, server: ServerHandle, lesson: Path
) -> None:
    from tests.test_status import bundle, rows

    (lesson / CLASS_FILE).write_text(PINNED + "[budget]\nrequests = 5\n")
    run(shell, "%%chat\nHi")
    server.clear()
    _, plain = bundle(run(shell, "%writer status"))
    assert server.requests == []
    found = rows(plain)
    assert found["Budget"].startswith("1 of 5 requests used (4 left) · ")
    assert found["Class settings"] == (
        f"{CLASS_FILE} · model='palmyra-x4' · temperature=0.2 · budget requests=5"
    )
    assert found["Model"] == f"palmyra-x4 (pinned by {CLASS_FILE})"
    assert found["Next cell"].endswith("/v1/chat with palmyra-x4, streaming")

    (lesson / CLASS_FILE).write_text("modle = 1\n")
    found = rows(bundle(run(shell, "%writer status"))[1])
    assert found["Class settings"].startswith(f"{CLASS_FILE}: unknown key 'modle'")
