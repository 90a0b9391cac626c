"""PromptLog: the fields written, no key, search, export, and failures that never raise."""

from __future__ import annotations

import io
import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import API_KEY
from writer_magics.answer.promptlog import (
    SCHEMA_VERSION,
    PromptLog,
    default_log_path,
)
from writer_magics.answer.result import Choice, Result, Timing
from writer_magics.display import TextView
from writer_magics.errors import PromptLogError
from writer_magics.files import data_dir
from writer_magics.request import Request, chat_request, completion_request
from writer_magics.send import execute
from writer_magics.server import ServerHandle
from writer_magics.transport.client import ClientSettings, WriterClient
from writer_magics.transport.events import Usage
from writer_magics.transport.loop import LoopThread

KEY = "sk-test-LOGKEY-0123456789"


def chat_result(text: str = "RAG retrieves, then generates.", **kw: object) -> Result:
    request = chat_request(
        model="palmyra-x5",
        messages=[
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": "What is RAG?"},
        ],
        temperature=0.2,
    )
    return Result(
        endpoint="chat",
        model="palmyra-x5",
        choices=(Choice(0, text, "stop"),),
        request=request,
        usage=Usage(prompt_tokens=7, completion_tokens=5, total_tokens=12),
        timing=Timing(first_token=0.25, total=1.5),
        **kw,  # type: ignore[arg-type]
    )


def completion_result(prompt: str, text: str) -> Result:
    return Result(
        endpoint="completions",
        model="palmyra-x4",
        choices=(Choice(0, text),),
        request=completion_request(model="palmyra-x4", prompt=prompt, max_tokens=20),
    )


def test_nothing_is_created_until_the_first_append(tmp_path: Path) -> None:
    log = PromptLog(tmp_path / "deep" / "log.sqlite3")
    assert log.recent() == [] and len(log) == 0
    assert not log.path.parent.exists()
    assert log.append(chat_result())
    assert log.path.exists()


def test_an_entry_has_every_field(tmp_path: Path) -> None:
    log = PromptLog(tmp_path / "log.sqlite3")
    assert log.append(chat_result())
    [entry] = log.recent()
    assert entry.endpoint == "chat" and entry.model == "palmyra-x5"
    assert entry.params == {
        "temperature": 0.2,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert entry.prompt is None
    assert entry.messages is not None and entry.messages[-1]["content"] == "What is RAG?"
    assert entry.prompt_text == "What is RAG?"
    assert entry.answer == "RAG retrieves, then generates."
    assert (entry.prompt_tokens, entry.completion_tokens, entry.total_tokens) == (7, 5, 12)
    assert (entry.first_token, entry.total_time) == (0.25, 1.5)
    assert entry.status == "done" and entry.error is None
    assert entry.time.endswith("+00:00") and "T" in entry.time
    with sqlite3.connect(log.path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_status_error_and_the_key_is_never_written(tmp_path: Path) -> None:
    log = PromptLog(tmp_path / "log.sqlite3")
    leaky = completion_result(f"my key is {KEY}", f"echo {KEY}")
    assert log.append(leaky, status="failed", error=f"401: Bearer {KEY} rejected", api_key=KEY)
    [entry] = log.recent()
    assert entry.status == "failed"
    assert entry.error == "401: Bearer [REDACTED] rejected"
    assert entry.prompt == "my key is [REDACTED]" and entry.answer == "echo [REDACTED]"
    assert KEY.encode() not in log.path.read_bytes()


def test_recent_is_newest_first_limited_and_searchable(tmp_path: Path) -> None:
    log = PromptLog(tmp_path / "log.sqlite3")
    for i in range(5):
        log.append(completion_result(f"prompt {i}", f"answer {i}"))
    log.append(completion_result("100% sure_thing", "odd characters"))
    assert [e.prompt for e in log.recent(3)] == ["100% sure_thing", "prompt 4", "prompt 3"]
    assert [e.prompt for e in log.recent(search="ANSWER 2")] == ["prompt 2"]
    assert [e.prompt for e in log.recent(search="0% s")] == ["100% sure_thing"]
    assert log.recent(search="%") != [] and log.recent(search="_x") == []
    assert log.recent(search="palmyra-x4", n=2) != []
    assert log.recent(0) == []
    assert len(log) == 6


def test_export_jsonl_oldest_first(tmp_path: Path) -> None:
    log = PromptLog(tmp_path / "log.sqlite3")
    log.append(completion_result("one", "1"))
    log.append(chat_result())
    target = tmp_path / "out" / "log.jsonl"
    with pytest.raises(PromptLogError, match="No such file or directory"):
        log.export_jsonl(target)  # a user path: a mistyped folder is not made
    assert not target.parent.exists()
    target.parent.mkdir()
    assert log.export_jsonl(target) == 2
    records = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert [r["endpoint"] for r in records] == ["completions", "chat"]
    assert records[1]["messages"][1]["content"] == "What is RAG?"
    assert set(records[0]) >= {"time", "model", "params", "answer", "status", "total_tokens"}


def test_a_broken_file_never_raises_and_warns_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "log.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    log = PromptLog(path)
    assert log.append(chat_result(), api_key=KEY) is False
    assert log.append(chat_result(), api_key=KEY) is False
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "could not write the prompt log" in err
    assert KEY not in err
    with pytest.raises(PromptLogError, match="Cannot read the prompt log"):
        log.recent()


def test_an_unwritable_place_and_a_locked_file_are_swallowed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert PromptLog(blocker / "log.sqlite3").append(chat_result()) is False

    path = tmp_path / "log.sqlite3"
    log = PromptLog(path)
    assert log.append(chat_result())
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        assert log.append(chat_result()) is False  # gives up after LOCK_TIMEOUT
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert log.append(chat_result())
    assert len(log) == 2
    assert capsys.readouterr().err.count("could not write") == 2  # one per log object


def test_a_log_from_a_newer_version_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    log = PromptLog(path)
    assert log.append(chat_result()) is False
    with pytest.raises(PromptLogError, match="newer"):
        log.recent()


def test_appends_from_many_threads(tmp_path: Path) -> None:
    log = PromptLog(tmp_path / "log.sqlite3")
    threads = [
        threading.Thread(target=lambda i=i: log.append(completion_result(f"p{i}", "a")))
        for i in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(log) == 8


def test_default_path_is_in_the_user_data_directory() -> None:
    assert default_log_path() == data_dir() / "log.sqlite3"
    assert "writer-magics" in str(data_dir())


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    thread = LoopThread("test-promptlog")
    yield thread
    thread.close()


def test_logging_real_results_from_the_server(
    server: ServerHandle, loop: LoopThread, tmp_path: Path
) -> None:
    """What execute() returns, success and failure, logged with the right fields, no key."""
    client = WriterClient(ClientSettings(base_url=server.url, api_key=KEY, max_retries=0))
    requests = {
        "ok": Request(
            "chat",
            chat_request(model="palmyra-x5", messages=[{"role": "user", "content": "Hi"}]),
        ),
        "bad": Request(
            "completions", completion_request(model="palmyra-x5", prompt="[[fault:500]] x")
        ),
    }
    try:
        outcomes = execute(requests, loop=loop, client=client, view=TextView(stream=io.StringIO()))
    finally:
        loop.run(client.aclose)
    log = PromptLog(tmp_path / "log.sqlite3")
    for key, result in outcomes.results.items():
        error = outcomes.errors.get(key)
        assert log.append(result, error=None if error is None else str(error), api_key=KEY)
    bad, ok = log.recent()
    assert ok.status == "done" and ok.answer and ok.prompt_text == "Hi"
    assert ok.total_tokens is not None and ok.first_token is not None and ok.total_time
    assert bad.status == "failed" and bad.error and "500" in bad.error
    assert KEY.encode() not in log.path.read_bytes()


def test_a_damaged_row_does_not_hide_the_rest_of_the_log(tmp_path: Path) -> None:
    """Bad UTF-8 in a text column and a params column nested too deeply: read anyway."""
    path = tmp_path / "log.sqlite3"
    log = PromptLog(path)
    assert log.append(chat_result("first answer"))
    assert log.append(chat_result("second answer"))
    with sqlite3.connect(path) as db:
        db.execute("UPDATE entries SET answer = CAST(x'ff6f6b' AS TEXT) WHERE id = 1")
        db.execute("UPDATE entries SET params = ?, messages = '[1]' WHERE id = 2", ["[" * 100_000])
    entries = log.recent()
    assert [e.answer for e in entries] == ["second answer", "\ufffdok"]
    assert entries[0].params == {} and entries[0].prompt_text == ""
    assert log.export_jsonl(tmp_path / "out.jsonl") == 2


def test_a_damaged_log_never_breaks_a_cell(
    shell: Any, server: ServerHandle, tmp_path: Path
) -> None:
    """Through a real shell: the answer shows, one warning line, ``%writer log`` one line."""
    from IPython.utils.capture import capture_output

    path = tmp_path / "log.sqlite3"
    path.write_bytes(b"SQLite format 3\x00" + b"\xff" * 5000)  # a torn database
    shell.run_line_magic("config", f"WriterMagics.log_path = {str(path)!r}")
    for _ in range(2):
        with capture_output():
            result = shell.run_cell("%%chat --new -o a\nHello")
        assert result.success and shell.user_ns["a"].text
    with capture_output() as first:
        shell.run_cell("%%chat --new\nAgain")
    assert "could not write the prompt log" not in first.stderr  # warned once already
    with capture_output() as shown:
        result = shell.run_cell("%writer log")
    assert not result.success
    lines = result.error_in_exec._render_traceback_()
    assert len(lines) == 1 and lines[0].startswith("PromptLogError: Cannot read the prompt log")
    assert "Traceback" not in shown.stdout + shown.stderr
    assert API_KEY not in shown.stdout + shown.stderr + lines[0]


def test_search_finds_a_turn_once_not_in_every_later_request_that_carries_it(
    tmp_path: Path,
) -> None:
    log = PromptLog(tmp_path / "log.sqlite3")
    first = [{"role": "user", "content": "Tell me about otters."}]
    carried = [*first, {"role": "assistant", "content": "Otters swim."}]
    later = [*carried, {"role": "user", "content": "And beavers?"}]
    for messages, answer in ((first, "Otters swim."), (later, "Beavers build.")):
        request = chat_request(model="palmyra-x5", messages=messages)
        log.append(
            Result(
                endpoint="chat",
                model="palmyra-x5",
                choices=(Choice(0, answer, "stop"),),
                request=request,
            )
        )
    assert [e.answer for e in log.recent(search="otters")] == ["Otters swim."]
    assert [e.answer for e in log.recent(search="beavers")] == ["Beavers build."]
