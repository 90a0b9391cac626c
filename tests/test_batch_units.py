"""The pure pieces of batches: the pacer, word diffs, checks, rows, the 429 knob, exports."""

from __future__ import annotations

import subprocess
import sys

import pytest
from IPython.core.error import UsageError

from writer_magics.answer.checks import evaluate, parse_checks
from writer_magics.display.diff import diff_markdown, diff_text, word_diff
from writer_magics.line.items import Row, from_object
from writer_magics.server.faults import RateLimiter
from writer_magics.transport.pacing import DEFAULT_WAIT, MAX_WAIT, Pacer


def test_pacer_halves_once_per_round_and_grows_back() -> None:
    pacer = Pacer(8)
    assert pacer.allowed == 8
    assert pacer.rate_limited(started=1.0, retry_after=0.5, now=2.0) == 0.5
    assert pacer.allowed == 4
    # an answer to a request sent before the cut does not cut again
    assert pacer.rate_limited(started=1.5, retry_after=None, now=2.1) == DEFAULT_WAIT
    assert pacer.allowed == 4
    pacer.rate_limited(started=2.2, retry_after=10_000, now=3.0)
    assert pacer.allowed == 2
    for _ in range(100):
        pacer.succeeded()
    assert pacer.allowed == 8
    assert pacer.rate_limited(started=4.0, retry_after=10_000, now=5.0) == MAX_WAIT
    assert Pacer(1).rate_limited(0.0, 1.0, 1.0) == 1.0
    with pytest.raises(ValueError):
        Pacer(0)


def test_rate_limiter_refuses_every_third_request() -> None:
    limiter = RateLimiter(1 / 3, retry_after=1)
    fired = [limiter.fires() for _ in range(9)]
    assert fired == [False, False, True] * 3 and limiter.refused == 3
    assert not any(RateLimiter(0).fires() for _ in range(5))
    with pytest.raises(ValueError):
        RateLimiter(1.5)


def test_word_diff_marks_changes_compactly() -> None:
    old = " ".join(f"w{i}" for i in range(40))
    new = old.replace("w20", "CHANGED")
    pieces, stats = word_diff(old, new)
    assert (stats.added, stats.removed) == (1, 1)
    assert ("…", "") in pieces  # long unchanged runs are cut
    text = diff_text(old, new)
    assert "[-w20-]" in text and "{+CHANGED+}" in text and text.startswith("diff (+1 −1 words)")
    markdown = diff_markdown(old, new)
    assert "<del" in markdown and ">w20</del>" in markdown and ">CHANGED</ins>" in markdown
    assert diff_text("same words", "same  words") == "diff: no changes since the previous answer"
    assert "$" not in diff_markdown("cost $5", "cost $6")


def test_checks_evaluate_with_reasons() -> None:
    checks = parse_checks(
        ["contains:paris", "not-contains:London", "regex:^The", "max-words:3", "equals:{x}"],
        {},
    )
    results = evaluate(checks, "The capital is Paris", {"x": "the capital is  PARIS"})
    assert [r.passed for r in results] == [True, True, True, False, True]
    assert results[3].reason == "4 words"
    missing = evaluate(parse_checks(["equals:{row.gone}"], {}), "x", {"row": Row({"a": 1})})
    assert not missing[0].passed and "cannot render" in (missing[0].reason or "")
    with pytest.raises(UsageError, match="unknown check"):
        parse_checks(["bogus"], {})


def test_rows_read_as_attributes_and_items() -> None:
    row = Row({"city": "Paris", "count": 3})
    assert row.city == "Paris" and row["count"] == 3 and len(row) == 2
    with pytest.raises(AttributeError):
        _ = row.nope
    data = from_object([{"a": 1}, {"b": 2}], "rows")
    assert data.columns == ("a", "b")
    assert from_object((1, 2), "t").columns == ("item",)


def test_public_types_are_exported_lazily() -> None:
    code = (
        "import sys, writer_magics\n"
        "assert 'writer_magics.answer.batch' not in sys.modules\n"
        "from writer_magics import Batch, Result, Sweep\n"
        "assert {'Batch', 'Result', 'Sweep'} <= set(writer_magics.__all__)\n"
        "print(Batch.__name__, Result.__name__, Sweep.__name__)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["Batch", "Result", "Sweep"]
