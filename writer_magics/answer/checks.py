"""``--expect CHECK``: expectations an answer can fail, parsed before sending.

Pure functions: :func:`parse_checks` turns the ``--expect`` values into :class:`Check`
objects (a malformed one is a one-line ``UsageError`` before anything is sent) and
:func:`evaluate` runs them on an answer's text, giving one :class:`CheckResult`
(passed or not, with the reason of a failure) per check.

Check kinds::

    contains:TEXT        the answer contains TEXT (case-insensitive)
    not-contains:TEXT    the answer does not contain TEXT (case-insensitive)
    regex:PATTERN        re.search(PATTERN, answer) finds a match
    json                 the answer parses as JSON (a ```json fence is accepted)
    schema:NAME          the JSON answer matches a pydantic model class or JSON-schema dict
    max-words:N          at most N words (whitespace-separated)
    max-chars:N          at most N characters
    equals:TEMPLATE      the answer equals TEMPLATE rendered with the {name} rule
                         (in a batch {row.column} / {item}), ignoring case and whitespace

``TEXT`` of contains / not-contains is rendered with the same ``{name}`` rule, so
``contains:{row.city}`` works in a batch.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from IPython.core.error import UsageError

from writer_magics.errors import PromptError, StructuredOutputError
from writer_magics.line.prompt import render

__all__ = ["KINDS", "Check", "CheckResult", "evaluate", "parse_checks", "pass_rate", "summary"]

#: Every check kind; those before the colon-less ``json`` take an argument.
KINDS = (
    "contains",
    "not-contains",
    "regex",
    "json",
    "schema",
    "max-words",
    "max-chars",
    "equals",
)
_NEEDS_ARGUMENT = frozenset(KINDS) - {"json"}
_EXAMPLE = "contains:Paris, regex:^\\d+$, json, schema:Answer, max-words:50, equals:{row.label}"


@dataclass(frozen=True)
class Check:
    """One parsed ``--expect`` value; ``spec`` is what the user wrote (the column name)."""

    spec: str
    kind: str
    argument: str = ""
    limit: int | None = None
    pattern: re.Pattern[str] | None = None
    schema: Any = None


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check on one answer; ``reason`` says why it failed."""

    spec: str
    passed: bool
    reason: str | None = None

    def __str__(self) -> str:
        return f"✓ {self.spec}" if self.passed else f"✗ {self.spec}: {self.reason}"


def parse_checks(values: Sequence[str], user_ns: Mapping[str, Any]) -> tuple[Check, ...]:
    """Parse every ``--expect`` value; raises one-line ``UsageError`` for a malformed one.

    ``schema:NAME`` is resolved now (``structured.resolve_schema``), so a missing or
    invalid schema fails before sending.
    """
    return tuple(_parse(value, user_ns) for value in values)


def _parse(value: str, user_ns: Mapping[str, Any]) -> Check:
    spec = value.strip()
    kind, colon, argument = spec.partition(":")
    kind = kind.strip().lower()
    if kind not in KINDS:
        raise UsageError(
            f"--expect {spec!r}: unknown check {kind!r}; use one of {', '.join(KINDS)} "
            f"(e.g. {_EXAMPLE})"
        )
    if kind in _NEEDS_ARGUMENT and not argument:
        raise UsageError(
            f"--expect {kind} needs a value after the colon, e.g. {kind}:{_hint(kind)}"
        )
    if kind == "json":
        if colon:
            raise UsageError(f"--expect json takes no value, got {spec!r}")
        return Check(spec, kind)
    if kind in ("max-words", "max-chars"):
        try:
            limit = int(argument.strip())
        except ValueError:
            limit = -1
        if limit < 0:
            raise UsageError(
                f"--expect {kind} expects a whole number of at least 0, got {argument!r}"
            )
        return Check(spec, kind, argument, limit=limit)
    if kind == "regex":
        try:
            pattern = re.compile(argument)
        except re.error as exc:
            raise UsageError(f"--expect regex:{argument} is not a valid pattern: {exc}") from None
        return Check(spec, kind, argument, pattern=pattern)
    if kind == "schema":
        from writer_magics.answer.parsed import resolve_schema

        try:
            schema = resolve_schema(argument.strip(), user_ns)
        except UsageError as exc:
            raise UsageError(
                f"--expect {spec}: {str(exc).replace(' (used in --schema)', '')}"
            ) from None
        return Check(spec, kind, argument.strip(), schema=schema)
    return Check(spec, kind, argument)


def _hint(kind: str) -> str:
    return {
        "contains": "Paris",
        "not-contains": "sorry",
        "regex": "'^[A-Z]'",
        "schema": "Answer",
        "max-words": "50",
        "max-chars": "280",
        "equals": "{row.label}",
    }[kind]


def references(checks: Sequence[Check]) -> list[str]:
    """The template texts of the checks (for checking batch columns before sending)."""
    return [c.argument for c in checks if c.kind in ("contains", "not-contains", "equals")]


def evaluate(
    checks: Sequence[Check], text: str, namespace: Mapping[str, Any]
) -> tuple[CheckResult, ...]:
    """Run every check on ``text``; ``namespace`` renders ``{name}`` references."""
    return tuple(_one(check, text, namespace) for check in checks)


def _render(template: str, namespace: Mapping[str, Any]) -> str:
    if "{" not in template:
        return template
    try:
        return render(template, namespace)
    except UsageError as exc:  # an empty rendering is a legitimate expected value
        if isinstance(exc, PromptError):
            raise
        return ""


def _one(check: Check, text: str, namespace: Mapping[str, Any]) -> CheckResult:
    try:
        fail = _failure(check, text, namespace)
    except PromptError as exc:  # a row without the field: this row's check fails
        fail = f"cannot render the expected value: {exc}"
    return CheckResult(check.spec, fail is None, fail)


def _failure(check: Check, text: str, namespace: Mapping[str, Any]) -> str | None:
    kind = check.kind
    if kind in ("contains", "not-contains"):
        needle = _render(check.argument, namespace)
        found = needle.casefold() in text.casefold()
        if kind == "contains" and not found:
            return f"{_short(needle)!r} not found"
        if kind == "not-contains" and found:
            return f"{_short(needle)!r} found"
        return None
    if kind == "regex":
        assert check.pattern is not None
        return None if check.pattern.search(text) else "no match"
    if kind == "max-words":
        assert check.limit is not None
        words = len(text.split())
        return None if words <= check.limit else f"{words} words"
    if kind == "max-chars":
        assert check.limit is not None
        return None if len(text) <= check.limit else f"{len(text)} characters"
    if kind == "equals":
        expected = _render(check.argument, namespace)
        if _normal(text) == _normal(expected):
            return None
        return f"expected {_short(expected)!r}, got {_short(text)!r}"
    if kind == "json":
        from writer_magics.answer.parsed import _strip_fence

        try:
            json.loads(_strip_fence(text))
        except ValueError as exc:
            msg = getattr(exc, "msg", str(exc))
            return f"not JSON ({msg})"
        return None
    # schema
    from writer_magics.answer.parsed import parse

    try:
        parse(text, check.schema)
    except StructuredOutputError as exc:
        return exc.message.removeprefix("the answer ")
    return None


def _normal(text: str) -> str:
    return " ".join(text.split()).casefold()


def _short(text: str, limit: int = 40) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def passed(results: Sequence[CheckResult]) -> bool:
    """True when every check passed (no checks: True)."""
    return all(r.passed for r in results)


def pass_rate(rows: Sequence[Sequence[CheckResult]]) -> tuple[int, int]:
    """``(answers whose checks all passed, answers checked)``."""
    checked = [r for r in rows if r]
    return sum(1 for r in checked if passed(r)), len(checked)


def summary(results: Sequence[CheckResult]) -> str:
    """``✓ contains:Paris · ✗ max-words:5 (12 words)`` on one line."""
    return " · ".join(f"✓ {r.spec}" if r.passed else f"✗ {r.spec} ({r.reason})" for r in results)


def rate_line(rows: Sequence[Sequence[CheckResult]]) -> str | None:
    """``checks passed: 7 of 9 answers (78%)``, or None when nothing was checked."""
    ok, total = pass_rate(rows)
    if not total:
        return None
    return f"checks passed: {ok} of {total} answers ({100 * ok / total:.0f}%)"
