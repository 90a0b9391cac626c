"""%writer log / cache as plain function calls: output, files, one-line UsageErrors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from writer_magics.answer.promptlog import PromptLog
from writer_magics.answer.result import Choice, Result
from writer_magics.commands.writer import run_writer_command
from writer_magics.errors import CacheError
from writer_magics.request import completion_request
from writer_magics.transport.cache import ResponseCache
from writer_magics.transport.events import TextDelta


@pytest.fixture
def shell() -> Iterator[InteractiveShell]:
    InteractiveShell.clear_instance()
    yield InteractiveShell.instance()
    InteractiveShell.clear_instance()


@pytest.fixture
def log(tmp_path: Path) -> PromptLog:
    log = PromptLog(tmp_path / "log.sqlite3")
    for i in range(3):
        log.append(
            Result(
                endpoint="completions",
                model="palmyra-x5",
                choices=(Choice(0, f"answer | {i}"),),
                request=completion_request(model="palmyra-x5", prompt=f"prompt {i}"),
            )
        )
    return log


@pytest.fixture
def cache(tmp_path: Path) -> ResponseCache:
    cache = ResponseCache(tmp_path / "cache.jsonl")
    cache.put("completions", {"model": "m", "prompt": "p"}, [TextDelta("A")])
    return cache


def test_log_shows_a_table(shell: InteractiveShell, log: PromptLog, cache: ResponseCache) -> None:
    with capture_output() as captured:
        run_writer_command("log -n 2", log=log, cache=cache)
    [output] = captured.outputs
    markdown = output.data["text/markdown"]
    rows = markdown.splitlines()
    assert rows[0] == "| time | model | prompt | answer | tokens | seconds | status |"
    assert len(rows) == 4 and "prompt 2" in rows[2] and "answer \\| 2" in rows[2]
    assert "prompt 2" in output.data["text/plain"]


def test_log_search_and_empty(
    shell: InteractiveShell, log: PromptLog, cache: ResponseCache
) -> None:
    with capture_output() as captured:
        run_writer_command('log --search "prompt 1"', log=log, cache=cache)
    [output] = captured.outputs
    assert len(output.data["text/markdown"].splitlines()) == 3
    with capture_output() as captured:
        run_writer_command("log --search nothing-like-this", log=log, cache=cache)
    assert captured.stdout == "No log entries.\n"


def test_log_export(
    log: PromptLog, cache: ResponseCache, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "log.jsonl"
    run_writer_command(f"log --export '{target}'", log=log, cache=cache)
    assert capsys.readouterr().out == f"Exported 3 log entries to {target}\n"
    assert [json.loads(line)["prompt"] for line in target.read_text().splitlines()] == [
        "prompt 0",
        "prompt 1",
        "prompt 2",
    ]


def test_cache_commands(
    cache: ResponseCache, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_writer_command("cache --info", log=None, cache=cache)
    assert capsys.readouterr().out.startswith(f"Cache {cache.path}: 1 answer, ")
    shipped = tmp_path / "answers.jsonl"
    run_writer_command(f"cache --export {shipped}", log=None, cache=cache)
    assert capsys.readouterr().out == f"Exported 1 cached answers to {shipped}\n"
    other = ResponseCache(tmp_path / "other.jsonl")
    run_writer_command(f"cache --import {shipped}", log=None, cache=other)
    assert "Imported 1 new or changed answers" in capsys.readouterr().out
    run_writer_command("cache --clear", log=None, cache=other)
    assert capsys.readouterr().out == f"Removed 1 cached answers from {other.path}\n"
    assert len(other) == 0
    replay = ResponseCache(shipped, read_only=True)
    run_writer_command("cache --info", log=None, cache=replay)
    assert "(replay, read-only)" in capsys.readouterr().out


def test_file_problems_are_the_modules_one_line_errors(
    cache: ResponseCache, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n")
    with pytest.raises(CacheError, match="not a writer-magics cache file"):
        run_writer_command(f"cache --import {bad}", log=None, cache=cache)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("nonsense", "invalid choice"),
        ("log -n x", "invalid int value"),
        ("log -n 0", "-n must be at least 1"),
        ("cache", "one of the arguments"),
        ("cache --clear --info", "not allowed with"),
        ("cache --export", "expected one argument"),
        ("log --frobnicate", "unrecognized arguments"),
        ('log --search "unclosed', 'unclosed " quote at column 22'),
    ],
)
def test_bad_input_is_one_usage_error_line(
    line: str, message: str, log: PromptLog, cache: ResponseCache
) -> None:
    with pytest.raises(UsageError) as info:
        run_writer_command(line, log=log, cache=cache)
    assert type(info.value) is UsageError
    assert message in str(info.value) and "\n" not in str(info.value)


def test_log_when_the_log_is_off(cache: ResponseCache) -> None:
    with pytest.raises(UsageError, match="prompt log is off"):
        run_writer_command("log", log=None, cache=cache)


def test_no_arguments_prints_usage(
    cache: ResponseCache, capsys: pytest.CaptureFixture[str]
) -> None:
    run_writer_command("", log=None, cache=cache)
    assert capsys.readouterr().out.startswith("Usage: %writer log")
