"""Budgets (issue 18): requests and tokens per kernel, refused before sending, whole plans.

Through a real shell against the bundled server; the server's request log says what
was (not) sent.
"""

from __future__ import annotations

import pytest
from IPython.core.interactiveshell import InteractiveShell

from tests.conftest import run, writer_magics
from tests.test_magics import everything
from writer_magics.answer.budget import Gate, Ledger, Limits, parse_budget
from writer_magics.errors import BudgetExceeded
from writer_magics.line.options import Params
from writer_magics.magics import WriterMagics
from writer_magics.server import ServerHandle


def magics_of(shell: InteractiveShell) -> WriterMagics:
    return writer_magics(shell)


def failed(captured: object) -> bool:
    return captured.result.error_in_exec is not None  # type: ignore[attr-defined]


def one_polite_line(text: str) -> str:
    """The refusal line (the hint may follow it), with no traceback."""
    assert "Traceback" not in text
    lines = [line for line in text.splitlines() if "BudgetExceeded" in line]
    assert len(lines) == 1, text
    return lines[0]


# ---------------------------------------------------------------- pure rules


def test_the_environment_form_and_its_errors() -> None:
    assert parse_budget("requests=50,tokens=20000") == Limits(50, 20000)
    assert parse_budget(" tokens = 10 ") == Limits(0, 10)
    assert parse_budget("") == Limits()
    for bad in ("requests=lots", "request=5", "50", "tokens=-1"):
        with pytest.raises(ValueError, match=r"requests=N|whole number"):
            parse_budget(bad)


def test_the_strictest_limit_wins_and_zero_is_unlimited() -> None:
    assert Limits(10, 0).tighter(Limits(0, 500)) == Limits(10, 500)
    assert Limits(10, 900).tighter(Limits(3, 1000)) == Limits(3, 900)
    assert Limits().tighter(Limits()) == Limits()


def test_a_whole_plan_is_refused_or_cut_with_partial() -> None:
    ledger = Ledger(requests=3)
    limits = Limits(requests=5)
    with pytest.raises(BudgetExceeded, match="needs 4 requests but only 2 of the budget's 5"):
        ledger.admit(4, limits)
    assert ledger.requests == 3  # a refused plan counts nothing
    assert ledger.admit(4, limits, partial=True) == 2
    assert ledger.requests == 5
    with pytest.raises(BudgetExceeded, match="5 of 5 requests"):
        ledger.admit(1, limits, partial=True)
    assert ledger.lines(limits) == [
        "budget: 5 of 5 requests used (0 left) · 0 tokens used (no limit)"
    ]


# ---------------------------------------------------------------- through the shell


def test_a_budget_reached_mid_sweep_refuses_the_whole_sweep_before_sending(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    run(shell, "%config WriterMagics.budget_requests = 3")
    assert not failed(run(shell, "%%chat\nFirst question"))
    assert len(server.requests) == 1

    captured = run(shell, "%%chat -t 0.2,0.6,1.0\nCompare temperatures")
    assert failed(captured)
    line = one_polite_line(everything(captured))
    assert "needs 3 requests but only 2 of the budget's 3 remain (1 used)" in line
    assert "nothing was sent" in line and "--partial" in line
    assert len(server.requests) == 1  # refused before sending: nothing reached the server

    captured = run(shell, "%%chat -t 0.2,0.6,1.0 --partial\nCompare temperatures")
    assert not failed(captured)
    assert "sending 2 of the 3 requests" in captured.stderr
    assert len(server.requests) == 3
    assert sorted(r.body["temperature"] for r in server.requests[1:]) == [0.2, 0.6]

    captured = run(shell, "%%chat\nOne more")
    assert failed(captured)
    assert "3 of 3 requests sent from this kernel" in one_polite_line(everything(captured))
    assert len(server.requests) == 3
    # The next cell still works once the budget allows it again.
    run(shell, "%config WriterMagics.budget_requests = 0")
    assert not failed(run(shell, "%%chat\nOne more"))


def test_a_batch_is_checked_as_one_plan_at_the_sender(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    """A batch hands all its requests to Sender.send at once (as --over will): it is
    refused as a whole before sending, or cut to what fits with ``partial``."""
    from writer_magics import request as bodies
    from writer_magics.line import options

    magics = magics_of(shell)
    opts = options.parse_chat("", {}, default_model="palmyra-x5", cell=True)
    requests = {
        Params("palmyra-x5", temperature=t / 10): bodies.chat(
            opts, Params("palmyra-x5"), [{"role": "user", "content": f"row {t}"}], stream=True
        )
        for t in range(5)
    }
    from dataclasses import replace

    base = magics._send_settings(use_cache=False)
    magics.ledger.requests = 2  # used earlier in the session: the batch runs mid-budget
    whole = replace(base, budget=Gate(magics.ledger, Limits(requests=6)))
    with pytest.raises(BudgetExceeded, match="needs 5 requests but only 4"):
        magics.sender.send(requests, whole, header="batch", titles=5, shell=shell)
    assert server.requests == []
    partial = replace(base, budget=Gate(magics.ledger, Limits(requests=6), partial=True))
    outcomes = magics.sender.send(requests, partial, header="batch", titles=5, shell=shell)
    assert len(outcomes.results) == 4 and len(server.requests) == 4
    assert magics.ledger.requests == 6


def test_cached_answers_do_not_count(shell: InteractiveShell, server: ServerHandle) -> None:
    run(shell, "%config WriterMagics.budget_requests = 1")
    assert not failed(run(shell, "%%chat --new --cache\nA cached question"))
    for _ in range(3):  # the same request again: from the cache, free
        assert not failed(run(shell, "%%chat --new --cache\nA cached question"))
    assert len(server.requests) == 1
    assert magics_of(shell).ledger.requests == 1
    captured = run(shell, "%%chat --new --cache\nA new question")
    assert failed(captured) and "1 of 1 requests" in one_polite_line(everything(captured))
    assert len(server.requests) == 1


def test_the_environment_sets_the_budget_and_config_cannot_loosen_it(
    shell: InteractiveShell, server: ServerHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WRITER_MAGICS_BUDGET", "requests=1,tokens=20000")
    run(shell, "%config WriterMagics.budget_requests = 0")
    assert not failed(run(shell, "%%chat\nHi"))
    captured = run(shell, "%%chat\nHi again")
    assert failed(captured) and "1 of 1 requests" in one_polite_line(everything(captured))
    assert len(server.requests) == 1
    status = magics_of(shell).teaching_status()
    assert status[0].startswith("budget: 1 of 1 requests used (0 left) · ")
    assert "of 20000 tokens used" in status[0]


def test_a_bad_environment_budget_is_one_line_and_nothing_is_sent(
    shell: InteractiveShell, server: ServerHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WRITER_MAGICS_BUDGET", "requests=lots")
    captured = run(shell, "%%chat\nHi")
    text = everything(captured)
    assert failed(captured) and "Traceback" not in text
    assert "WRITER_MAGICS_BUDGET: requests must be a whole number of 0 or more, got 'lots'" in text
    assert server.requests == []


def test_the_token_budget_refuses_once_reached(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    run(shell, "%config WriterMagics.budget_tokens = 50")
    assert not failed(run(shell, "%%chat\nTell me about owls"))  # crosses 50: allowed to end
    used = magics_of(shell).ledger.tokens
    assert used > 50
    captured = run(shell, "%%chat\nAnd about bats")
    assert failed(captured)
    assert f"{used} of 50 tokens spent" in one_polite_line(everything(captured))
    assert len(server.requests) == 1


def test_a_negative_budget_setting_is_refused(
    shell: InteractiveShell, caplog: pytest.LogCaptureFixture
) -> None:
    run(shell, "%config WriterMagics.budget_requests = -1")
    assert "budget_requests must be 0 (unlimited) or more" in caplog.text  # %config logs it
    assert magics_of(shell).budget_requests == 0


def test_a_dry_run_is_free(shell: InteractiveShell, server: ServerHandle) -> None:
    run(shell, "%config WriterMagics.budget_requests = 1")
    run(shell, "%%chat --dry-run\nHi")
    assert magics_of(shell).ledger.requests == 0 and server.requests == []


def test_an_over_batch_is_one_plan_and_cached_rows_are_free(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    shell.user_ns["items"] = ["alpha", "beta", "gamma"]
    run(shell, "%config WriterMagics.budget_requests = 4")
    assert not failed(run(shell, "%%chat --over items --cache\nDefine {item}"))
    assert len(server.requests) == 3
    # Two new rows would go over the one request left: refused whole, nothing sent.
    shell.user_ns["items"] = ["alpha", "beta", "gamma", "delta", "epsilon"]
    captured = run(shell, "%%chat --over items --cache\nDefine {item}")
    assert failed(captured)
    assert "nothing was sent" in one_polite_line(everything(captured))
    assert len(server.requests) == 3
    # One new row fits: the three cached rows cost nothing.
    shell.user_ns["items"] = ["alpha", "beta", "gamma", "delta"]
    assert not failed(run(shell, "%%chat --over items --cache\nDefine {item}"))
    assert len(server.requests) == 4


def test_over_with_partial_sends_the_rows_the_budget_allows(
    shell: InteractiveShell, server: ServerHandle
) -> None:
    """``%%chat --over items --partial`` under a budget sends the first rows that fit and
    says so; without --partial it is refused whole (and suggests --partial)."""
    shell.run_line_magic("config", "WriterMagics.budget_requests = 3")
    run(shell, "%%chat\nWarm up")  # one used
    shell.user_ns["items"] = list("abcde")
    refused = everything(run(shell, "%%chat --over items\nSay {item}"))
    assert "needs 5 requests but only 2" in refused and "Add --partial" in refused
    captured = run(shell, "%%chat --over items --partial -o b\nSay {item}")
    assert "Add --partial" not in everything(captured)
    assert "sending the first 2 of 5 items of items" in captured.stderr
    assert len(server.requests) == 3
    batch = shell.user_ns["b"]
    assert [r.text != "" for r in batch] == [True, True] and len(batch) == 2
