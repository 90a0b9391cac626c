"""``--expect`` and ``--diff`` on a single cell or a sweep: shown under the answer.

:func:`prepare_checks` parses the checks and renders their ``{name}`` references once
against the namespace, so a malformed check or an undefined name is one line before
anything is sent. :func:`review` runs the checks on every answer (``Result.checks``),
shows ✓/✗ per check with the reason of each ✗ (and the pass rate of a sweep), and
the ``--diff`` against the previous answer of the cell, or against the first panel
of a sweep. Every display is a Markdown + plain-text bundle, so a terminal shows the
plain-text form.
"""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Mapping, Sequence
from typing import Any

from IPython.core.error import UsageError

from writer_magics.answer.checks import (
    Check,
    evaluate,
    parse_checks,
    rate_line,
    references,
    summary,
)
from writer_magics.answer.result import Result
from writer_magics.display.diff import diff_markdown, diff_text
from writer_magics.display.finish import display
from writer_magics.errors import CheckFailedError, PromptError, redact_answer
from writer_magics.line.prompt import render

__all__ = ["prepare_checks", "review", "strict_failure"]


def prepare_checks(values: Sequence[str], user_ns: Mapping[str, Any]) -> tuple[Check, ...]:
    """Parse ``--expect`` values and resolve their references now (single cells, sweeps)."""
    checks = parse_checks(values, user_ns)
    for template in references(checks):
        if "{" in template:
            try:
                render(template, user_ns)
            except PromptError as exc:
                raise UsageError(f"--expect: {exc}") from None
            except UsageError:
                pass  # renders to empty text: a legitimate expectation
    return checks


def _show(markdown: str, text: str, secrets: Sequence[str | None] = ()) -> None:
    """Markdown this module escaped itself (``_escape``, the diff's HTML), with its text;
    the key in play redacted from both (an answer may have echoed it)."""
    markdown, text = (redact_answer(part, secrets) for part in (markdown, text))
    display({"text/markdown": markdown, "text/plain": text}, raw=True)


def review(
    results: Sequence[Result],
    titles: Sequence[str],
    *,
    checks: Sequence[Check],
    user_ns: Mapping[str, Any],
    diff: bool,
    previous: str | None = None,
    secrets: Sequence[str | None] = (),
) -> list[Result]:
    """Check and diff the answers; returns them with ``checks`` filled in.

    ``secrets`` (the API key) never show: they are redacted from the texts compared
    and from every line shown.

    One answer: its check line, then its diff against ``previous`` (or a line saying
    there is none yet). Several (a sweep): a line per panel, the pass rate, and each
    panel's diff against the first.
    """
    checked = [
        dataclasses.replace(r, checks=evaluate(checks, r.text, user_ns)) if checks else r
        for r in results
    ]
    single = len(checked) == 1
    if checks:
        lines_md, lines_text = [], []
        for title, result in zip(titles, checked, strict=True):
            head = "" if single else f"**{title}**: "
            lines_md.append(head + _escape(summary(result.checks)))
            lines_text.append(("" if single else f"{title}: ") + summary(result.checks))
        rate = None if single else rate_line([r.checks for r in checked])
        if rate:
            lines_md.append(f"**{rate}**")
            lines_text.append(rate)
        _show("  \n".join(lines_md), "\n".join(lines_text), secrets)
    if diff:
        if single:
            if previous is None:
                note = "diff: no previous answer of this cell to compare with yet"
                _show(f"*{note}*", note, secrets)
            else:
                old, new = (redact_answer(t, secrets) for t in (previous, checked[0].text))
                _show(
                    diff_markdown(old, new, "diff since the previous answer"),
                    diff_text(old, new),
                    secrets,
                )
        else:
            first = redact_answer(checked[0].text, secrets)
            for title, result in zip(titles[1:], checked[1:], strict=True):
                other = redact_answer(result.text, secrets)
                _show(
                    diff_markdown(first, other, f"{title} vs {titles[0]}"),
                    f"{title} vs {titles[0]}: " + diff_text(first, other),
                    secrets,
                )
    return checked


def strict_failure(results: Sequence[Result], titles: Sequence[str]) -> CheckFailedError | None:
    """``--strict``: the one-line error when any answer failed a check."""
    failing = [
        (t, r) for t, r in zip(titles, results, strict=True) if not all(c.passed for c in r.checks)
    ]
    if not failing:
        return None
    title, result = failing[0]
    first = next(c for c in result.checks if not c.passed)
    where = (
        "" if len(results) == 1 else f" ({len(failing)} of {len(results)} answers; first: {title})"
    )
    return CheckFailedError(f"--strict: the answer failed {first.spec}: {first.reason}{where}")


def _escape(text: str) -> str:
    """Check specs and reasons shown as Markdown text, never as markup."""
    text = html.escape(text, quote=False)
    for char in "\\`*_[]$|":
        text = text.replace(char, "\\" + char)
    return text
