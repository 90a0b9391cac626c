"""%%complete and %%chat end to end: a real singleton shell, the bundled server on
127.0.0.1, and assertions on the request bodies the server received."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import CapturedIO

from tests.conftest import API_KEY, run, writer_magics
from writer_magics.server import ServerHandle


def bodies(server: ServerHandle) -> list[dict[str, Any]]:
    return [r.body for r in server.requests]


def last_body(server: ServerHandle) -> dict[str, Any]:
    assert server.requests, "the server received no request"
    body: dict[str, Any] = server.requests[-1].body
    return body


def user_texts(body: dict[str, Any]) -> list[str]:
    return [m["content"] for m in body["messages"] if m["role"] == "user"]


def everything(captured: CapturedIO) -> str:
    parts = [captured.stdout, captured.stderr]
    for output in captured.outputs:
        data = dict(output.data)
        if "text/markdown" in data and "text/plain" in data:
            del data["text/markdown"]  # the same text, escaped for the renderer
        parts.extend(str(v) for v in data.values())
    return "\n".join(parts)


# ---------------------------------------------------------------- option mapping


def test_complete_maps_every_option(shell: InteractiveShell, server: ServerHandle) -> None:
    run(
        shell,
        "%%complete -m palmyra-x4 --max-tokens 12 -t 0.3 --top-p 0.8 --stop END --stop '\\n\\n' "
        "--best-of 2 --random-seed 7 --no-stream\nOnce upon a time",
    )
    assert server.requests[-1].path == "/v1/completions"
    assert last_body(server) == {
        "model": "palmyra-x4",
        "prompt": "Once upon a time",
        "max_tokens": 12,
        "temperature": 0.3,
        "top_p": 0.8,
        "stop": ["END", "\n\n"],
        "best_of": 2,
        "random_seed": 7,
        "stream": False,
    }


def test_chat_maps_every_option(shell: InteractiveShell, server: ServerHandle) -> None:
    run(
        shell,
        '%%chat -m palmyra-x5 -t 1.5 --top-p 0.5 --max-tokens 40 -s "Be terse" -n 2 '
        "--logprobs --stop STOP\nHello there",
    )
    body = last_body(server)
    assert body["messages"] == [
        {"role": "system", "content": "Be terse"},
        {"role": "user", "content": "Hello there"},
    ]
    assert (body["temperature"], body["top_p"], body["max_tokens"], body["n"]) == (1.5, 0.5, 40, 2)
    assert body["logprobs"] is True and body["stop"] == ["STOP"]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


def test_line_forms(shell: InteractiveShell, server: ServerHandle) -> None:
    run(shell, "%complete -t 0.1 Once upon a time")
    assert last_body(server)["prompt"] == "Once upon a time"
    run(shell, "%chat Define RAG.")
    assert user_texts(last_body(server)) == ["Define RAG."]


def test_config_sets_the_default_model(shell: InteractiveShell, server: ServerHandle) -> None:
    shell.run_line_magic("config", 'WriterMagics.model = "palmyra-x4"')
    run(shell, "%%chat\nHi")
    assert last_body(server)["model"] == "palmyra-x4"
    shell.run_line_magic("config", "WriterMagics.stream = False")
    run(shell, "%%complete\nHi")
    assert last_body(server)["stream"] is False


def test_system_prompt_from_a_variable_with_spaces(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    shell.user_ns["persona"] = "You are a patient teacher"
    run(shell, "%%chat -s $persona\nHi")
    assert last_body(server)["messages"][0] == {
        "role": "system",
        "content": "You are a patient teacher",
    }
    run(shell, "%%chat -s {persona}\nAgain", cell_id="other")
    assert last_body(server)["messages"][0]["content"] == "You are a patient teacher"


# ---------------------------------------------------------------- prompts


def test_interpolation_and_literal_braces(shell: InteractiveShell, server: ServerHandle) -> None:
    shell.user_ns.update(topic="tides", items=["moon", "sun"], cfg={"k": "v"})
    run(shell, "%%complete\nWrite about {topic} and {items[0]} ({cfg['k']}), {{literal}}")
    assert last_body(server)["prompt"] == "Write about tides and moon (v), {literal}"


def test_json_and_code_braces_are_left_alone(shell: InteractiveShell, server: ServerHandle) -> None:
    prompt = 'Convert {"a": 1, "b": {"c": [1, 2]}} to YAML; def f(): return {1, 2}'
    run(shell, f"%%chat\n{prompt}")
    assert user_texts(last_body(server)) == [prompt]


# ---------------------------------------------------------------- history


def test_history_across_cells_and_sessions(shell: InteractiveShell, server: ServerHandle) -> None:
    run(shell, "%%chat\nFirst question about owls", cell_id="a")
    run(shell, "%%chat\nSecond question", cell_id="b")
    body = last_body(server)
    assert user_texts(body) == ["First question about owls", "Second question"]
    assert body["messages"][1]["role"] == "assistant" and body["messages"][1]["content"]
    run(shell, "%%chat --session other\nSeparate topic", cell_id="c")
    assert user_texts(last_body(server)) == ["Separate topic"]
    run(shell, "%%chat\nThird", cell_id="d")
    assert user_texts(last_body(server)) == [
        "First question about owls",
        "Second question",
        "Third",
    ]


def test_rerunning_a_cell_replaces_its_turn(shell: InteractiveShell, server: ServerHandle) -> None:
    run(shell, "%%chat\nOne", cell_id="c1")
    run(shell, "%%chat\nTwo", cell_id="c2")
    run(shell, "%%chat\nTwo, edited", cell_id="c2")
    assert user_texts(last_body(server)) == ["One", "Two, edited"]
    run(shell, "%%chat\nOne, edited", cell_id="c1")
    assert user_texts(last_body(server)) == ["One, edited"]
    run(shell, "%%chat\nThree", cell_id="c3")
    assert user_texts(last_body(server)) == ["One, edited", "Two, edited", "Three"]
    shown = everything(run(shell, "%chat --show"))
    assert shown.count("**You:**") == 3


def test_cells_without_an_id_append(shell: InteractiveShell, server: ServerHandle) -> None:
    run(shell, "%%chat\nA")
    run(shell, "%%chat\nA")
    assert user_texts(last_body(server)) == ["A", "A"]


def test_new_starts_afresh(shell: InteractiveShell, server: ServerHandle) -> None:
    run(shell, "%%chat\nOld topic", cell_id="a")
    run(shell, "%%chat --new\nNew topic", cell_id="b")
    assert user_texts(last_body(server)) == ["New topic"]
    run(shell, "%%chat\nFollow-up", cell_id="c")
    assert user_texts(last_body(server)) == ["New topic", "Follow-up"]


def test_undo_reset_and_sessions(shell: InteractiveShell, server: ServerHandle) -> None:
    run(shell, "%%chat\nKeep me", cell_id="a")
    run(shell, "%%chat\nDrop me", cell_id="b")
    assert "Drop me" in run(shell, "%chat --undo").stdout
    run(shell, "%%chat\nNext", cell_id="c")
    assert user_texts(last_body(server)) == ["Keep me", "Next"]
    listing = everything(run(shell, "%chat --sessions"))
    assert "default" in listing and "2" in listing
    run(shell, "%chat --reset")
    run(shell, "%%chat\nAfter reset", cell_id="d")
    assert user_texts(last_body(server)) == ["After reset"]


def test_save_and_load_round_trip(
    shell: InteractiveShell, server: ServerHandle, tmp_path: Path
) -> None:
    run(shell, "%%chat -s 'Be brief'\nRemember the word pelican", cell_id="a")
    path = tmp_path / "chat.json"
    run(shell, f"%chat --save {path}")
    saved = json.loads(path.read_text())
    assert API_KEY not in path.read_text()
    run(shell, "%chat --reset")
    run(shell, f"%chat --load {path}")
    run(shell, "%%chat\nWhich word?", cell_id="b")
    body = last_body(server)
    assert body["messages"][0] == {"role": "system", "content": "Be brief"}
    assert user_texts(body) == ["Remember the word pelican", "Which word?"]
    assert saved["sessions"]["default"]["turns"][0]["user"] == "Remember the word pelican"


def test_loading_a_bad_file_keeps_the_session(
    shell: InteractiveShell, server: ServerHandle, tmp_path: Path
) -> None:
    run(shell, "%%chat\nPrecious turn", cell_id="a")
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "nope"}')
    captured = run(shell, f"%chat --load {bad}")
    assert "UsageError" in everything(captured)
    assert "Traceback" not in everything(captured)
    run(shell, "%%chat\nStill there?", cell_id="b")
    assert user_texts(last_body(server)) == ["Precious turn", "Still there?"]


def test_failed_request_leaves_history_unchanged(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    run(shell, "%%chat\nFirst", cell_id="a")
    captured = run(shell, "%%chat\nThis fails [[fault:500]]", cell_id="b")
    assert captured.result.error_in_exec is not None
    text = everything(captured)
    assert "ServerError" in text and "Traceback" not in text
    run(shell, "%%chat\nAfter the failure", cell_id="c")
    assert user_texts(last_body(server)) == ["First", "After the failure"]


# ---------------------------------------------------------------- results and output


def test_out_stores_a_result(shell: InteractiveShell, server: ServerHandle) -> None:
    run(shell, "%%chat -o answer -n 2\nGive two ideas")
    answer = shell.user_ns["answer"]
    assert str(answer) == answer.choices[0].text and len(answer.choices) == 2
    assert answer.usage.total_tokens > 0
    assert answer.finish_reason in ("stop", "length")
    assert answer.request == last_body(server)
    assert answer.raw["object"] == "chat.completion"
    assert [c["message"]["content"] for c in answer.raw["choices"]] == [
        c.text for c in answer.choices
    ]
    assert API_KEY not in json.dumps(answer.request)


def test_static_markdown_finish(shell: InteractiveShell, server: ServerHandle) -> None:
    captured = run(shell, "%%chat -o answer\nList three facts about owls")
    answer = shell.user_ns["answer"]
    finals = [o for o in captured.outputs if "text/markdown" in o.data]
    assert finals, "no Markdown output"
    assert answer.text in finals[-1].data["text/markdown"]


def test_dry_run_sends_nothing_and_redacts_the_key(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    captured = run(shell, "%%chat --dry-run -t 0.5\nWhat would be sent")
    text = everything(captured)
    assert server.requests == []
    assert '"temperature": 0.5' in text and "What would be sent" in text
    assert API_KEY not in text and "REDACTED" in text


def test_removed_model_warns_with_the_migration_hint(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    captured = run(shell, "%%chat -m palmyra-med\nHi")
    text = everything(captured)
    assert "palmyra-med" in text and "palmyra-x5" in text
    assert "Traceback" not in text
    # the hint once (the warning), not again under the server's 404
    assert text.count("use palmyra-x5 instead") == 1, text
    # set with %config: said at once, before any cell uses it
    told = run(shell, "%config WriterMagics.model = 'palmyra-fin'")
    assert "palmyra-fin was removed on 2026-07-13; use palmyra-x5 instead." in told.stderr


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("%%chat --bogus\nHi", "--bogus"),
        ("%%chat -t hot\nHi", "temperature"),
        ("%%chat -t 3\nHi", "between 0 and 2"),
        ("%%chat --top-p 1.5\nHi", "top"),
        ("%%chat --max-tokens\nHi", "max-tokens"),
        ("%%chat -n 0\nHi", "-n"),
        ("%%complete --max-tokens -5\nHi", "max-tokens"),
        ("%%chat\nTell me about {undefined_thing}", "undefined_thing"),
        ("%%chat\n   \n", "empty"),
        ("%%complete --best-of x\nHi", "best-of"),
    ],
)
def test_bad_input_is_one_line_and_sends_nothing(
    shell: InteractiveShell, server: ServerHandle, cell: str, expected: str
) -> None:
    captured = run(shell, cell)
    text = everything(captured)
    assert expected in text
    assert "Traceback" not in text
    assert server.requests == []


def test_missing_key_is_one_line_and_sends_nothing(
    shell: InteractiveShell, server: ServerHandle, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("WRITER_API_KEY")
    monkeypatch.chdir(tmp_path)  # no .env here
    captured = run(shell, "%%chat\nHi")
    text = everything(captured)
    assert "WRITER_API_KEY" in text and "Traceback" not in text
    assert server.requests == []


def test_key_from_dotenv(
    shell: InteractiveShell, server: ServerHandle, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("WRITER_API_KEY")
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("WRITER_API_KEY=from-dotenv-123\n")
    run(shell, "%%chat\nHi")
    assert server.requests[-1].headers["authorization"] == "Bearer from-dotenv-123"


def test_config_never_prints_the_key(shell: InteractiveShell, server: ServerHandle) -> None:
    shell.run_line_magic("config", 'WriterMagics.api_key = "cfg-secret-key-999"')
    captured = run(shell, "%config WriterMagics")
    assert "cfg-secret-key-999" not in everything(captured)
    assert "api_key" in everything(captured)


# ---------------------------------------------------------------- lifecycle


def test_unload_and_reload(shell: InteractiveShell, server: ServerHandle) -> None:
    magics = writer_magics(shell)
    shell.run_line_magic("unload_ext", "writer_magics")
    assert shell.magics_manager is not None
    assert "chat" not in shell.magics_manager.magics["cell"]
    assert not magics.loop._thread or not magics.loop._thread.is_alive()
    shell.run_line_magic("load_ext", "writer_magics")
    shell.run_line_magic("config", "WriterMagics.view = 'markdown'")
    run(shell, "%%chat\nBack again")
    assert user_texts(last_body(server)) == ["Back again"]


def test_help_lists_every_option(shell: InteractiveShell, server: ServerHandle) -> None:
    chat_help = run(shell, "%%chat?").stdout
    for option in (
        "--model",
        "--temperature",
        "--top-p",
        "--max-tokens",
        "--stop",
        "--no-stream",
        "--out",
        "--timeout",
        "--dry-run",
        "--system",
        "--session",
        "--new",
        "--n",
        "--logprobs",
        "--show",
        "--undo",
        "--save",
        "--load",
    ):
        assert option in chat_help, option
    complete_help = run(shell, "%%complete?").stdout
    assert "--best-of" in complete_help and "--random-seed" in complete_help
    assert server.requests == []


def test_ipython_config_sets_defaults(writer_env: ServerHandle) -> None:
    from traitlets.config import Config

    InteractiveShell.clear_instance()
    config = Config()
    config.WriterMagics.model = "palmyra-x4"
    config.WriterMagics.view = "markdown"
    config.WriterMagics.stream = False
    sh = InteractiveShell.instance(config=config)
    try:
        sh.run_line_magic("load_ext", "writer_magics")
        run(sh, "%%chat\nConfigured?")
        body = last_body(writer_env)
        assert body["model"] == "palmyra-x4" and body["stream"] is False
    finally:
        sh.run_line_magic("unload_ext", "writer_magics")
        InteractiveShell.clear_instance()


def test_text_view_streams_once_to_stdout(shell: InteractiveShell, server: ServerHandle) -> None:
    shell.run_line_magic("config", "WriterMagics.view = 'text'")
    captured = run(shell, "%%chat -o a\nExplain owls")
    answer = shell.user_ns["a"].text
    assert captured.stdout.count(answer) == 1
    assert "tokens" in captured.stdout  # the usage line


def test_bad_settings_are_refused_when_set(
    shell: InteractiveShell, caplog: pytest.LogCaptureFixture
) -> None:
    magics = writer_magics(shell)
    run(shell, "%config WriterMagics.max_concurrency = 0")
    assert "max_concurrency must be positive" in caplog.text  # %config reports via logging
    assert magics.max_concurrency == 4
    run(shell, "%config WriterMagics.read_timeout = -1")
    assert magics.read_timeout == 60.0


def test_choices_are_titled_one_way(shell: InteractiveShell, server: ServerHandle) -> None:
    """``-n 2`` panels say "Choice 1", as the finished answer does (once also "choice 1")."""
    captured = run(shell, "%%chat -n 2\nGive two ideas")
    shown = captured.stdout + "".join(
        str(value) for output in captured.outputs for value in output.data.values()
    )
    assert "Choice 1" in shown and "Choice 2" in shown
    assert "choice 1" not in shown and "choice 2" not in shown
    assert len(server.requests) == 1
