"""``--over`` batches, ``--expect`` checks and ``--diff`` through a real IPython shell
against the bundled server (requests counted at the server)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import CapturedIO

from tests.conftest import Ran, run
from writer_magics.answer.batch import Batch
from writer_magics.server import ServerHandle, start_server


def everything(captured: CapturedIO) -> str:
    parts = [captured.stdout, captured.stderr]
    for output in captured.outputs:
        parts.extend(str(v) for v in output.data.values())
    return "\n".join(parts)


def failed(captured: Ran) -> bool:
    return captured.result.error_in_exec is not None


def users(server: ServerHandle) -> list[str]:
    return [
        m["content"] for r in server.requests for m in r.body["messages"] if m["role"] == "user"
    ]


def one_line_error(captured: Ran, kind: str = "UsageError") -> str:
    text = everything(captured)
    assert failed(captured), text
    assert "Traceback" not in text, text
    lines = [line for line in text.splitlines() if kind in line]
    assert len(lines) == 1, text
    return lines[0]


# ---------------------------------------------------------------- inputs


def test_over_a_list_sends_one_stateless_request_per_item(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    run(shell, "%%chat\nAn earlier turn that must not be sent", cell_id="x")
    server.clear()
    shell.user_ns["countries"] = ["France", "Spain", "Peru"]
    captured = run(
        shell, "%%chat --over countries -s 'Be brief' -o b\nCapital of {item}?", cell_id="c"
    )
    assert not failed(captured), everything(captured)
    assert sorted(users(server)) == ["Capital of France?", "Capital of Peru?", "Capital of Spain?"]
    for request in server.requests:
        assert request.body["messages"][0] == {"role": "system", "content": "Be brief"}
        assert len(request.body["messages"]) == 2  # no session history
    batch = shell.user_ns["b"]
    assert isinstance(batch, Batch) and len(batch) == 3
    assert [r.status for r in batch] == ["done"] * 3
    assert all(r.text for r in batch) and not batch.failed
    assert batch.to_records()[0]["item"] == "France"
    # the session is untouched: the next plain cell sends only its own history
    server.clear()
    run(shell, "%%chat\nNext", cell_id="y")
    assert users(server) == ["An earlier turn that must not be sent", "Next"]
    # one compact view: a summary table, not one panel per row
    text = everything(captured)
    assert "3 rows" in text and "3 done" in text


def test_over_a_dataframe_with_row_fields_and_to_pandas(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    shell.user_ns["df"] = pd.DataFrame(
        {"country": ["France", "Spain"], "capital": ["Paris", "Madrid"]}, index=["fr", "es"]
    )
    captured = run(
        shell,
        "%%complete --over df -o b --expect max-chars:100000\n"
        "Country: {row.country} / {row['capital']}",
    )
    assert not failed(captured), everything(captured)
    prompts = sorted(r.body["prompt"] for r in server.requests)
    assert prompts == ["Country: France / Paris", "Country: Spain / Madrid"]
    frame = shell.user_ns["b"].to_pandas()
    assert list(frame.index) == ["fr", "es"]
    for column in (
        "country",
        "capital",
        "answer",
        "status",
        "error",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "latency_s",
        "max-chars:100000",
    ):
        assert column in frame.columns
    assert list(frame["status"]) == ["done", "done"]
    assert frame["max-chars:100000"].all()


def test_over_a_series(shell: InteractiveShell, server: ServerHandle) -> None:
    shell.user_ns["s"] = pd.Series(["a", "b"], name="letter")
    run(shell, "%%chat --over s -o b\nLetter {item} and {row.letter}")
    assert sorted(users(server)) == ["Letter a and a", "Letter b and b"]
    assert list(shell.user_ns["b"].to_pandas()["letter"]) == ["a", "b"]


def test_over_csv_and_jsonl_files(
    shell: InteractiveShell, server: ServerHandle, tmp_path: Path
) -> None:
    csv_path = tmp_path / "cities.csv"
    csv_path.write_text("city,country\nParis,France\nLima,Peru\n", encoding="utf-8")
    run(shell, f"%%chat --over {csv_path} -o c\nWhere is {{row.city}}?")
    assert sorted(users(server)) == ["Where is Lima?", "Where is Paris?"]
    assert [r["country"] for r in shell.user_ns["c"].to_records()] == ["France", "Peru"]
    server.clear()
    jsonl = tmp_path / "items.jsonl"
    jsonl.write_text('{"q": "one"}\n\n{"q": "two"}\n', encoding="utf-8")
    run(shell, f"%%chat --over {jsonl} -o j\nSay {{row['q']}}")
    assert sorted(users(server)) == ["Say one", "Say two"]
    assert len(shell.user_ns["j"]) == 2


def test_a_failing_row_fails_alone(shell: InteractiveShell, server: ServerHandle) -> None:
    shell.user_ns["items"] = ["good one", "bad [[fault:400]]", "good two"]
    captured = run(shell, "%%chat --over items -o b\n{item}")
    assert not failed(captured), everything(captured)
    batch = shell.user_ns["b"]
    assert [r.status for r in batch] == ["done", "failed", "done"]
    assert batch.errors[1] is not None and "400" in batch.errors[1]
    assert len(batch.failed) == 1 and batch.failed.rows[0].fields == {"item": items_1()}
    assert "1 failed" in everything(captured)


def items_1() -> str:
    return "bad [[fault:400]]"


def test_every_row_failing_fails_the_cell_in_one_line(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    shell.user_ns["items"] = ["a [[fault:400]]", "b [[fault:400]]"]
    line = one_line_error(run(shell, "%%chat --over items -o b\n{item}"), "WriterError")
    assert "All 2 rows failed" in line
    assert len(shell.user_ns["b"]) == 2


# ---------------------------------------------------------------- rate limits and cache


@pytest.fixture
def limited(monkeypatch: pytest.MonkeyPatch) -> Iterator[ServerHandle]:
    with start_server(rate_limit_fraction=1 / 3, rate_limit_retry_after=0.05) as handle:
        monkeypatch.setenv("WRITER_BASE_URL", handle.url)
        yield handle


def test_rate_limits_slow_the_batch_down_instead_of_failing_rows(
    shell: InteractiveShell, limited: ServerHandle
) -> None:
    shell.user_ns["items"] = [f"q{i}" for i in range(12)]
    shell.run_line_magic("config", "WriterMagics.max_concurrency = 4")
    captured = run(shell, "%%chat --over items -o b\n{item}")
    assert not failed(captured), everything(captured)
    batch = shell.user_ns["b"]
    assert batch.counts()["done"] == 12 and not batch.failed
    assert limited.rate_limited >= 4  # a third of the requests were refused, then resent
    assert "rate-limited" in everything(captured)


def test_resume_through_the_cache_sends_only_unanswered_rows(
    shell: InteractiveShell, server: ServerHandle, tmp_path: Path
) -> None:
    shell.run_line_magic("config", f"WriterMagics.cache_path = '{tmp_path / 'c.jsonl'}'")
    shell.user_ns["items"] = ["one", "two", "three [[fault:503]]"]
    run(shell, "%%chat --over items --cache -o b\n{item}")
    assert shell.user_ns["b"].counts() == {"done": 2, "cached": 0, "failed": 1, "interrupted": 0}
    server.clear()
    shell.user_ns["items"] = ["one", "two", "three"]
    captured = run(shell, "%%chat --over items --cache -o b\n{item}")
    assert users(server) == ["three"]
    assert [r.status for r in shell.user_ns["b"]] == ["cached", "cached", "done"]
    assert "2 cached" in everything(captured)


def test_terminal_view_is_one_progress_line(shell: InteractiveShell, server: ServerHandle) -> None:
    shell.run_line_magic("config", "WriterMagics.view = 'text'")
    shell.user_ns["items"] = ["a", "b", "c", "d"]
    captured = run(shell, "%%chat --over items\n{item}")
    assert "\r" in captured.stdout and "4/4" in captured.stdout
    assert "remaining" in captured.stdout and "4 rows" in captured.stdout


# ---------------------------------------------------------------- bad input: nothing sent


def test_a_batch_file_that_is_a_device_is_one_line_at_once(
    shell: InteractiveShell, server: ServerHandle, tmp_path: Path
) -> None:
    """A .csv that is really /dev/zero (or a FIFO) would never end: refused unread."""
    (tmp_path / "zero.csv").symlink_to("/dev/zero")
    message = one_line_error(run(shell, f"%%chat --over {tmp_path / 'zero.csv'}\nTell me {{item}}"))
    assert "not a regular file, not read" in message
    assert server.requests == []


@pytest.mark.parametrize(
    ("setup", "line", "expected"),
    [
        ({}, "--over missing", "'missing' is not defined"),
        ({"items": []}, "--over items", "is empty"),
        ({"items": 42}, "--over items", "int, not a list"),
        ({"items": "abc"}, "--over items", "is a str"),
        ({"items": iter([1])}, "--over items", "iterator"),
        ({"items": {"a": 1}}, "--over items", "is a dict"),
        ({}, "--over /no/such/file.csv", "no such file"),
        ({}, "--over /dev/zero", "not a variable name, and not a .csv"),
        ({"items": [{"a": 1}]}, "--over items", "column 'nope'"),
        ({"items": [1, 2, 3]}, "--over items --expect equals:{row.gone}", "column 'gone'"),
        ({"items": [1]}, "--over items -t 0.1,0.5", "cannot be combined"),
        ({"items": [1]}, "--over items --session s", "no effect with --over"),
        ({"items": [1]}, "--over items --diff", "--diff works"),
        ({"items": [1]}, "--over items --raw", "--raw sends one prompt"),
        ({"items": [1]}, "--over items --image photo.png", "--image cannot be combined"),
    ],
)
def test_bad_batch_input_is_one_line_and_sends_nothing(
    shell: InteractiveShell,
    server: ServerHandle,
    setup: dict[str, Any],
    line: str,
    expected: str,
) -> None:
    shell.user_ns.update(setup)
    body = "Tell me about {row.nope}" if "column 'nope'" in expected else "Tell me {item}"
    message = one_line_error(run(shell, f"%%chat {line}\n{body}"))
    assert expected in message
    assert server.requests == []


def test_an_unreadable_file_is_one_line(
    shell: InteractiveShell, server: ServerHandle, tmp_path: Path
) -> None:
    folder = tmp_path / "data.csv"
    folder.mkdir()
    assert "cannot read it" in one_line_error(run(shell, f"%%chat --over {folder}\n{{item}}"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": 1}\nnot json\n')
    assert "line 2 is not JSON" in one_line_error(run(shell, f"%%chat --over {bad}\n{{item}}"))
    assert server.requests == []


def test_a_batch_over_max_batch_needs_allow_large(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    shell.run_line_magic("config", "WriterMagics.max_batch = 2")
    shell.user_ns["items"] = ["a", "b", "c"]
    message = one_line_error(run(shell, "%%complete --over items\n{item}"))
    assert "more than WriterMagics.max_batch (2)" in message and "--allow-large" in message
    assert server.requests == []
    run(shell, "%%complete --over items --allow-large -o b\n{item}")
    assert len(server.requests) == 3


def test_dry_run_over_items_shows_the_first_request(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    shell.user_ns["items"] = ["a", "b", "c"]
    text = everything(run(shell, "%%chat --over items --dry-run\nSay {item}"))
    assert "Say a" in text and "2 more requests" in text
    assert server.requests == []


# ---------------------------------------------------------------- checks


def test_every_check_kind_on_a_batch(shell: InteractiveShell, server: ServerHandle) -> None:
    shell.run_cell("from pydantic import BaseModel\nclass Answer(BaseModel):\n    city: str")
    shell.user_ns["rows"] = [
        {"q": 'Reply {"city": "Paris"}', "want": "x"},
        {"q": "Say hello", "want": "y"},
    ]
    checks = [
        "contains:the",
        "not-contains:zzz",
        "'regex:^[A-Z]'",
        "json",
        "schema:Answer",
        "max-words:1000",
        "max-chars:5",
        "equals:{row.want}",
    ]
    line = " ".join(f"--expect {c}" for c in checks)
    captured = run(shell, f"%%chat --over rows -o b {line}\n{{row.q}}")
    assert not failed(captured), everything(captured)
    batch = shell.user_ns["b"]
    frame = batch.to_pandas()
    specs = [c.strip("'") for c in checks]
    assert batch.checks == tuple(specs)
    for spec in specs:
        assert spec in frame.columns
    assert frame["not-contains:zzz"].all() and frame["max-words:1000"].all()
    assert not frame["max-chars:5"].any() and not frame["equals:{row.want}"].any()
    assert not frame["json"].any()  # the bundled server answers in prose
    reasons = {c.spec: c.reason for c in batch[0].checks}
    assert reasons["max-chars:5"].endswith("characters")
    assert reasons["json"].startswith("not JSON")
    assert (
        "does not match" in reasons["schema:Answer"] or "not valid JSON" in reasons["schema:Answer"]
    )
    assert "checks passed: 0 of 2" in everything(captured)


def test_checks_on_a_single_cell_show_ticks_and_reasons(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    shell.user_ns["expected"] = "hello"
    captured = run(
        shell,
        "%%chat -o r --expect contains:Hello --expect max-words:3 --expect equals:{expected}\n"
        "Say hello",
    )
    assert not failed(captured)
    text = everything(captured)
    assert "✓ contains:Hello" in text and "✗ max-words:3 (" in text and "words)" in text
    assert "✗ equals:{expected} (expected 'hello'" in text
    checks = shell.user_ns["r"].checks
    assert [c.passed for c in checks] == [True, False, False]


def test_strict_fails_the_cell_in_one_line_and_keeps_the_answer(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    captured = run(shell, "%%chat -o r --expect max-chars:5 --strict\nSay hello")
    line = one_line_error(captured, "CheckFailedError")
    assert "max-chars:5" in line
    assert shell.user_ns["r"].text  # the answer is kept and shown
    assert run(shell, "%%chat --expect max-chars:100000 --strict\nSay hi").result.success
    shell.user_ns["items"] = ["a", "b"]
    line = one_line_error(
        run(shell, "%%chat --over items --expect max-chars:5 --strict\n{item}"), "CheckFailedError"
    )
    assert "2 of 2 answers failed" in line


def test_checks_on_a_sweep_show_the_pass_rate(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    captured = run(shell, "%%chat -t 0.1,0.9 -o s --expect max-chars:100000\nSay hi")
    text = everything(captured)
    assert "checks passed: 2 of 2 answers (100%)" in text
    assert all(r.checks[0].passed for r in shell.user_ns["s"].results)
    assert shell.user_ns["s"].to_records()[0]["max-chars:100000"] is True


@pytest.mark.parametrize(
    ("check", "expected"),
    [
        ("nope:1", "unknown check 'nope'"),
        ("regex:(", "not a valid pattern"),
        ("max-words:many", "whole number"),
        ("contains:", "needs a value"),
        ("json:x", "takes no value"),
        ("schema:Missing", "'Missing' is not defined"),
        ("equals:{undefined_name}", "'undefined_name' is not defined"),
    ],
)
def test_a_malformed_check_is_one_line_before_sending(
    shell: InteractiveShell, server: ServerHandle, check: str, expected: str
) -> None:
    assert expected in one_line_error(run(shell, f"%%chat --expect '{check}'\nSay hi"))
    shell.user_ns["items"] = ["a"]
    assert expected in one_line_error(run(shell, f"%%chat --over items --expect '{check}'\nhi"))
    assert server.requests == []


def test_strict_without_expect_is_refused(shell: InteractiveShell, server: ServerHandle) -> None:
    assert "--expect" in one_line_error(run(shell, "%%chat --strict\nSay hi"))
    assert server.requests == []


# ---------------------------------------------------------------- diff


def test_diff_against_the_previous_answer_of_the_same_cell(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    first = everything(run(shell, "%%chat --new --diff\nTell me about tides", cell_id="d1"))
    assert "no previous answer of this cell" in first
    captured = run(shell, "%%chat --new --diff -t 1.5\nTell me about tides", cell_id="d1")
    markdown = [o.data.get("text/markdown", "") for o in captured.outputs]
    plain = [o.data.get("text/plain", "") for o in captured.outputs]
    assert any("diff since the previous answer" in m and "<ins" in m for m in markdown)
    assert any(p.startswith("diff (+") and "{+" in p and "[-" in p for p in plain)
    # another cell id has its own history
    other = everything(run(shell, "%%chat --new --diff\nTell me about tides", cell_id="d2"))
    assert "no previous answer of this cell" in other


def test_diff_on_a_sweep_compares_each_panel_with_the_first(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    captured = run(shell, "%%chat --diff -t 0.1,0.9,1.5\nTell me about tides")
    plain = "\n".join(o.data.get("text/plain", "") for o in captured.outputs)
    assert "t=0.9 vs t=0.1" in plain and "t=1.5 vs t=0.1" in plain
    markdown = "\n".join(o.data.get("text/markdown", "") for o in captured.outputs)
    assert "<del" in markdown or "no changes" in markdown


def test_json_check_passes_on_json_answers(shell: InteractiveShell, server: ServerHandle) -> None:
    shell.run_cell("schema = {'type': 'object', 'properties': {'a': {'type': 'string'}}}")
    captured = run(
        shell, "%%chat --schema schema -o r --expect json --expect schema:schema\nGive JSON"
    )
    assert not failed(captured), everything(captured)
    assert [c.passed for c in shell.user_ns["r"].checks] == [True, True]


def test_records_are_json_serialisable(shell: InteractiveShell, server: ServerHandle) -> None:
    shell.user_ns["items"] = ["a"]
    run(shell, "%%chat --over items -o b --expect contains:a\n{item}")
    json.dumps(shell.user_ns["b"].to_records())
    assert os.environ["WRITER_BASE_URL"] == server.url


def test_a_template_without_a_placeholder_is_sent_with_a_warning(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    shell.user_ns["items"] = ["a", "b"]
    captured = run(shell, "%%chat --over items\nNo placeholder at all")
    assert "Warning: every item of items gives the same prompt" in captured.stderr
    assert len(server.requests) == 2  # sent as asked: sampling twice may be the point
