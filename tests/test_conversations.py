"""Conversations that follow cells (issue 11 §4, §5; issue 12 §4, §5 for history files and
session names), through a real singleton shell against the bundled server on 127.0.0.1,
with cell ids passed to ``run_cell`` the way JupyterLab sends them."""

from __future__ import annotations

import json
import os
import resource
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import CapturedIO, capture_output

from tests.conftest import API_KEY, run, writer_magics
from tests.test_magics import everything
from writer_magics.server import ServerHandle, start_server


def error_lines(captured: CapturedIO) -> str:
    """What the cell printed outside its displays (where IPython shows an error)."""
    return str(captured.stdout + captured.stderr).strip()


def failed(captured: CapturedIO) -> bool:
    return captured.result.error_in_exec is not None  # type: ignore[attr-defined]


def users(body: dict[str, Any]) -> list[str]:
    return [m["content"] for m in body["messages"] if m["role"] == "user"]


def sent(server: ServerHandle) -> list[list[str]]:
    """The user messages of every chat request the server received, in order."""
    return [users(r.body) for r in server.requests]


def shown_turns(shell: InteractiveShell, session: str = "default") -> list[str]:
    """The user texts of a session, as ``%chat --show`` lists them."""
    text = everything(run(shell, f"%chat --show --session {session}"))
    return [part.split("\n\n", 1)[0] for part in text.split("**You:**\n\n")[1:]]


def magics(shell: InteractiveShell) -> Any:
    return writer_magics(shell)


# ---------------------------------------------------------------- §4 several turns per cell


def test_two_calls_in_one_cell_append_and_a_rerun_replaces_both(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    cell = "%chat First question\n%chat Second question"
    run(shell, cell, cell_id="cell-a")
    assert sent(server) == [["First question"], ["First question", "Second question"]]
    assistant = server.requests[1].body["messages"][1]
    assert assistant["role"] == "assistant" and assistant["content"]

    run(shell, "%chat Another cell", cell_id="cell-b")
    server.clear()
    run(shell, cell, cell_id="cell-a")  # the re-run sees neither its old turns nor cell-b
    assert sent(server) == [["First question"], ["First question", "Second question"]]
    assert shown_turns(shell) == ["First question", "Second question", "Another cell"]


def test_a_loop_of_run_cell_magic_calls(shell: InteractiveShell, server: ServerHandle) -> None:
    loop = "for q in {questions}:\n    get_ipython().run_cell_magic('chat', '', q)"
    run(shell, loop.format(questions=["A", "B", "C"]), cell_id="loop")
    assert sent(server) == [["A"], ["A", "B"], ["A", "B", "C"]]
    run(shell, "%%chat\nD", cell_id="after")
    assert sent(server)[-1] == ["A", "B", "C", "D"]

    server.clear()
    run(shell, loop.format(questions=["X", "Y"]), cell_id="loop")  # fewer calls this time
    assert sent(server) == [["X"], ["X", "Y"]]
    assert shown_turns(shell) == ["X", "Y", "D"]
    run(shell, "%%chat\nE", cell_id="last")
    assert sent(server)[-1] == ["X", "Y", "D", "E"]


def test_rerunning_a_middle_cell_with_several_calls(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    run(shell, "%chat A", cell_id="a")
    run(shell, "%chat B1\n%chat B2", cell_id="b")
    run(shell, "%chat C", cell_id="c")
    server.clear()
    run(shell, "%chat B1 edited\n%chat B2 edited\n%chat B3 new", cell_id="b")
    assert sent(server) == [
        ["A", "B1 edited"],
        ["A", "B1 edited", "B2 edited"],
        ["A", "B1 edited", "B2 edited", "B3 new"],
    ]
    assert shown_turns(shell) == ["A", "B1 edited", "B2 edited", "B3 new", "C"]


def test_a_failed_call_does_not_split_the_group(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    run(shell, "%chat One\n%chat Two", cell_id="a")
    captured = run(shell, "%chat One again\n%chat Fails [[fault:400]]", cell_id="a")
    assert failed(captured)
    # the first call of the re-run replaced the group; the failed one added nothing
    assert shown_turns(shell) == ["One again"]


def test_terminal_cells_without_ids_keep_appending(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    run(shell, "%chat One\n%chat Two")
    run(shell, "%chat One\n%chat Two")
    assert sent(server)[-1] == ["One", "Two", "One", "Two"]
    assert len(shown_turns(shell)) == 4


# ---------------------------------------------------------------- §5 system prompt owned by a cell


def test_rerunning_without_s_removes_the_cells_system_prompt(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    run(shell, "%%chat -s 'Be terse'\nHi", cell_id="a")
    run(shell, "%%chat\nMore", cell_id="b")
    assert server.requests[-1].body["messages"][0] == {"role": "system", "content": "Be terse"}

    run(shell, "%%chat\nHi", cell_id="a")  # the same cell, -s removed
    assert server.requests[-1].body["messages"][0] == {"role": "user", "content": "Hi"}
    run(shell, "%%chat\nMore", cell_id="b")
    assert all(m["role"] != "system" for m in server.requests[-1].body["messages"])
    assert "**System:**" not in everything(run(shell, "%chat --show"))


def test_another_cells_system_prompt_stays(shell: InteractiveShell, server: ServerHandle) -> None:
    run(shell, "%%chat\nHi", cell_id="a")
    run(shell, "%%chat -s Pirate\nAhoy", cell_id="b")
    again = run(shell, "%%chat\nHi again", cell_id="a")
    # a comes before b: its re-run sends what a fresh Run All would, no system prompt
    assert [m["role"] for m in server.requests[-1].body["messages"]] == ["user"]
    assert "Pirate" not in str([o.data for o in again.outputs])  # nor shows one
    dry = run(shell, "%%chat --dry-run\nStill a", cell_id="a")
    assert "Pirate" not in str([o.data for o in dry.outputs]) + dry.stdout
    run(shell, "%%chat\nAnd now?", cell_id="c")
    assert server.requests[-1].body["messages"][0] == {"role": "system", "content": "Pirate"}


def test_the_header_shows_the_active_system_prompt(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    own = everything(run(shell, "%%chat -s 'Answer like a pirate'\nHi", cell_id="a"))
    assert "system “Answer like a pirate”" in own
    stored = everything(run(shell, "%%chat\nAnd then?", cell_id="b"))  # no -s on this cell
    assert "system “Answer like a pirate”" in stored
    long = "You are a meticulous reviewer.\nCheck every claim twice, then answer briefly."
    shell.user_ns["persona"] = long
    shortened = everything(run(shell, "%%chat -s {persona}\nReview this", cell_id="c"))
    assert "system “You are a meticulous reviewer. Check ev…”" in shortened
    assert server.requests[-1].body["messages"][0]["content"] == long  # sent in full


# ---------------------------------------------------------------- §5 read-only never creates


def test_read_only_commands_and_failed_cells_create_no_session(
    shell: InteractiveShell, server: ServerHandle, tmp_path: Path
) -> None:
    assert "No turns yet" in everything(run(shell, "%chat --show"))  # a fresh kernel
    run(shell, "%chat --dry-run --session drafts Hi")
    saved = run(shell, f"%chat --save {tmp_path / 'x.json'} --session notes")
    assert failed(saved) and "There is no chat session 'notes'" in everything(saved)
    assert not (tmp_path / "x.json").exists()
    assert failed(run(shell, "%%chat --session broken\nFails [[fault:400]]", cell_id="f"))
    assert failed(run(shell, "%%chat --new --session fresh\nFails [[fault:500]]", cell_id="g"))
    assert "No chat sessions yet" in everything(run(shell, "%chat --sessions"))
    assert list(magics(shell).sessions) == []


def test_show_of_an_unknown_session_lists_the_names(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    run(shell, "%%chat\nHi", cell_id="a")
    run(shell, "%%chat --session ideas\nHi", cell_id="b")
    captured = run(shell, "%chat --show --session nope")
    text = everything(captured)
    assert failed(captured) and "Traceback" not in text
    assert "There is no chat session 'nope'; the sessions are 'default', 'ideas'" in text
    assert len(text.strip().splitlines()) == 1
    assert "nope" not in magics(shell).sessions


# ---------------------------------------------------------------- §5 too long for the model


@pytest.fixture
def small_context(monkeypatch: pytest.MonkeyPatch) -> Iterator[ServerHandle]:
    """The bundled server with a 120-token context window for every model."""
    with start_server(context_limit=120) as handle:
        monkeypatch.setenv("WRITER_BASE_URL", handle.url)
        monkeypatch.setenv("WRITER_API_KEY", API_KEY)
        yield handle


def test_too_long_says_what_the_history_holds_and_how_to_trim_it(
    shell: InteractiveShell, small_context: ServerHandle
) -> None:
    for i in range(12):
        captured = run(shell, f"%%chat --max-tokens 8\nQuestion number {i}", cell_id=f"c{i}")
        if failed(captured):
            break
    assert failed(captured), "the context limit was never reached"
    text = error_lines(captured)
    assert "Traceback" not in everything(captured) and len(text.splitlines()) == 1
    assert text.startswith("ContextLengthError: ")
    assert "context window" in text  # Writer's (the server's) own words are kept
    assert f"The request carried {i} of the {i} turns of session 'default' (about " in text
    assert "tokens" in text and "--undo" in text and "--history N" in text and "--new" in text
    assert len(shown_turns(shell)) == i  # nothing lost, nothing added

    small_context.clear()
    ok = run(shell, f"%%chat --max-tokens 8 --history 1\nQuestion number {i}", cell_id=f"c{i}")
    assert not failed(ok)
    last_two = [f"Question number {i - 1}", f"Question number {i}"]
    assert users(small_context.requests[-1].body) == last_two
    assert len(shown_turns(shell)) == i + 1  # the earlier turns stay stored


def test_a_prompt_too_long_by_itself_says_so(
    shell: InteractiveShell, small_context: ServerHandle
) -> None:
    captured = run(shell, "%%chat\n" + "word " * 200, cell_id="big")
    text = error_lines(captured)
    assert "none of the 0 turns of session 'default', so the prompt itself is too long" in text
    assert len(text.splitlines()) == 1


def test_history_option(shell: InteractiveShell, server: ServerHandle) -> None:
    for name in ("a", "b", "c"):
        run(shell, f"%%chat\n{name.upper()}", cell_id=name)
    run(shell, "%%chat --history 2\nD", cell_id="d")
    assert users(server.requests[-1].body) == ["B", "C", "D"]
    run(shell, "%%chat --history 0\nE", cell_id="e")
    assert users(server.requests[-1].body) == ["E"]
    run(shell, "%%chat\nF", cell_id="f")
    assert users(server.requests[-1].body) == ["A", "B", "C", "D", "E", "F"]
    count = len(server.requests)
    bad = run(shell, "%%chat --history -1\nG", cell_id="g")
    assert failed(bad) and "--history expects" in everything(bad)
    assert len(server.requests) == count
    assert "--history" in run(shell, "%%chat?").stdout


# ---------------------------------------------------------------- issue 12 §5 session names


def test_session_names_with_pipes_backticks_and_newlines(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    shell.user_ns["odd"] = "a|b `c`\nd"
    run(shell, "%chat --session {odd} Hi", cell_id="a")
    run(shell, "%chat Hi", cell_id="b")
    table = [
        line for line in everything(run(shell, "%chat --sessions")).splitlines() if "|" in line
    ]
    assert table[2:] == ["| ``a\\|b `c`\\nd`` | 1 |", "| `default` | 1 |"]
    assert "a|b `c`\nd" in magics(shell).sessions


# ---------------------------------------------------------------- issue 12 §4 history files


def _turns_now(shell: InteractiveShell) -> list[str]:
    return [t.user for t in magics(shell).sessions["default"].turns]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"format": "writer-magics-history", "version": 2, \xff\xfe}', "is not UTF-8 text"),
        (b"[" * 50_000 + b"]" * 50_000 + b"\n", "nests JSON deeper than 64 levels"),
        (
            b'{"format": "writer-magics-history", "version": 2, "sessions": {"default": '
            b'{"system": 5, "turns": []}}}',
            "system must be a string or null",
        ),
    ],
    ids=["bad-utf8", "deeply-nested", "wrong-shape"],
)
def test_loading_a_damaged_file_is_one_line_and_keeps_memory(
    shell: InteractiveShell, server: ServerHandle, tmp_path: Path, raw: bytes, reason: str
) -> None:
    run(shell, "%%chat\nPrecious", cell_id="a")
    path = tmp_path / "damaged.json"
    path.write_bytes(raw)
    captured = run(shell, f"%chat --load {path}")
    text = everything(captured)
    assert failed(captured) and reason in text
    assert "Traceback" not in text and "RecursionError" not in text
    assert len(text.strip().splitlines()) == 1
    assert _turns_now(shell) == ["Precious"]
    run(shell, "%%chat\nNext", cell_id="b")
    assert users(server.requests[-1].body) == ["Precious", "Next"]


@pytest.mark.parametrize(
    ("target", "reason"),
    [("/dev/zero", "not a regular file, not read"), ("fifo", "not a regular file, not read")],
    ids=["device", "fifo"],
)
def test_loading_what_is_not_a_file_is_one_line_at_once(
    shell: InteractiveShell, server: ServerHandle, tmp_path: Path, target: str, reason: str
) -> None:
    """``--load /dev/zero`` or a FIFO would hang the kernel (or fill its memory)."""
    if target == "fifo":
        os.mkfifo(tmp_path / "fifo")
        target = str(tmp_path / "fifo")
    run(shell, "%%chat\nPrecious", cell_id="a")
    captured = run(shell, f"%chat --load {target}")
    text = everything(captured)
    assert failed(captured) and reason in text, text
    assert len(text.strip().splitlines()) == 1
    assert _turns_now(shell) == ["Precious"]


def test_loading_says_which_turns_it_replaces(
    shell: InteractiveShell, server: ServerHandle, tmp_path: Path
) -> None:
    run(shell, "%%chat\nOne", cell_id="a")
    run(shell, "%chat --save " + str(tmp_path / "one.json"))
    run(shell, "%%chat\nTwo", cell_id="b")
    run(shell, "%%chat\nThree", cell_id="c")
    text = everything(run(shell, f"%chat --load {tmp_path / 'one.json'}"))
    assert text.strip().endswith(", replacing its 3 turns."), text
    assert _turns_now(shell) == ["One"]


def test_save_redacts_the_key_from_the_turns(
    shell: InteractiveShell, server: ServerHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A prompt holding the configured key is refused, so the key reaches a turn only when it
    # became the key afterwards (pasted into a chat, then set as WRITER_API_KEY).
    later = "sk-later-KEY-0123456789abcdef"
    run(shell, f"%%chat\nRemember {later} for me", cell_id="a")
    monkeypatch.setenv("WRITER_API_KEY", later)
    path = tmp_path / "chat.json"
    assert not failed(run(shell, f"%chat --save {path}"))
    text = path.read_text(encoding="utf-8")
    assert later not in text and "Remember [REDACTED] for me" in text
    # memory keeps the exact text (the next request carries it as the user wrote it)
    run(shell, "%%chat\nWhat was it?", cell_id="b")
    assert users(server.requests[-1].body)[0] == f"Remember {later} for me"


def test_a_failed_save_leaves_the_old_file(
    shell: InteractiveShell, server: ServerHandle, tmp_path: Path
) -> None:
    run(shell, "%%chat\nFirst", cell_id="a")
    path = tmp_path / "chat.json"
    run(shell, f"%chat --save {path}")
    before = path.read_bytes()
    run(shell, "%%chat\n" + "A much longer second question. " * 200, cell_id="b")
    # A real write failure: the process may not write files larger than the old one.
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (len(before) + 10, hard))
    try:
        captured = run(shell, f"%chat --save {path}")
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    text = everything(captured)
    assert failed(captured) and "cannot write" in text and "Traceback" not in text
    assert len(text.strip().splitlines()) == 1
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["chat.json"]  # no temporary file left
    assert len(magics(shell).sessions["default"]) == 2
    assert not failed(run(shell, f"%chat --save {path}"))  # and the next save works
    assert json.loads(path.read_text())["sessions"]["default"]["turns"][1]["key"] == "b"


def test_the_header_names_an_odd_session_on_one_line(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    shell.user_ns["odd"] = "two\nlines"
    captured = run(shell, "%chat --session {odd} Hi", cell_id="a")
    head = [o.data for o in captured.outputs if "writer-magics-head" in o.data.get("text/html", "")]
    assert head and all("\n" not in h["text/plain"] for h in head)  # one line, live and final
    assert head[-1]["text/plain"] == "palmyra-x5 · session two\\nlines"


def test_the_bundled_server_refuses_a_prompt_over_its_context_window() -> None:
    import httpx

    with start_server(context_limit=10) as handle:
        body = {"model": "palmyra-x4", "messages": [{"role": "user", "content": "word " * 20}]}
        response = httpx.post(f"{handle.url}/v1/chat", json=body, timeout=10)
        assert response.status_code == 400
        error = response.json()
        assert error["tpe"] == "BadRequest"
        assert error["errors"][0]["key"] == "error.validation.context_length_exceeded"
        assert "context window of palmyra-x4" in error["errors"][0]["description"]
        short = {"model": "palmyra-x4", "prompt": "Hi", "stream": False}
        assert httpx.post(f"{handle.url}/v1/completions", json=short, timeout=10).is_success


def test_a_cell_that_runs_other_cells_keeps_its_own_group(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    cell = "%chat One\nget_ipython().run_cell('x = 1')\nget_ipython().run_cell('')\n%chat Two"
    run(shell, cell, cell_id="outer")
    assert sent(server)[-1] == ["One", "Two"]
    run(shell, cell, cell_id="outer")  # a re-run replaces both turns
    assert shown_turns(shell) == ["One", "Two"]


def test_undo_names_the_dropped_turn_by_the_one_preview(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    long_question = "Tell me   about\nthe sea " + "wave " * 20
    run(shell, f"%%chat\n{long_question}", cell_id="u1")
    line = everything(run(shell, "%chat --undo")).strip()
    flat = " ".join(long_question.split())
    assert line == f"Dropped the last turn of session 'default': {flat[:59] + '…'!r}"
    assert shown_turns(shell) == []


def test_unloading_says_that_the_history_is_dropped(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    run(shell, "%chat Hi", cell_id="a")
    with capture_output() as captured:
        shell.run_line_magic("unload_ext", "writer_magics")
    assert "drops 1 chat turn(s) in 1 session(s)" in captured.stderr
    assert "%chat --save PATH" in captured.stderr
    shell.run_line_magic("load_ext", "writer_magics")
    with capture_output() as quiet:
        shell.run_line_magic("unload_ext", "writer_magics")  # nothing to lose: no warning
    assert quiet.stderr == ""
    shell.run_line_magic("load_ext", "writer_magics")  # the fixture unloads it again


def test_reset_and_undo_of_a_misspelt_session_say_so_and_keep_the_others(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    run(shell, "%%chat --session ideas\nOne", cell_id="s1")
    for command in ("--reset", "--undo"):
        ran = run(shell, f"%chat {command} --session idea")
        # One line, and nothing claims that a session was reset or a turn undone.
        assert everything(ran).strip() == (
            "UsageError: There is no chat session 'idea'; the sessions are 'ideas' "
            "(choose with --session NAME)"
        )
    assert shown_turns(shell, "ideas") == ["One"]
