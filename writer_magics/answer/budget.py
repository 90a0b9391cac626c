"""Budgets: how many requests and tokens one kernel may send to the API.

Pure logic, no IPython and no I/O (the environment is passed in). The magics keep one
:class:`Ledger` on the ``WriterMagics`` instance, so counts are per kernel and start at
zero when the kernel restarts.

**Limits** come from three places: ``WriterMagics.budget_requests`` /
``budget_tokens``, the environment (``WRITER_MAGICS_BUDGET="requests=50,tokens=20000"``,
so a JupyterHub can set them for every student) and the class settings file
(``[budget]``). 0 means unlimited. When several set a limit the *strictest* wins: any
source can tighten a budget, none can loosen another's (a student's
``%config WriterMagics.budget_requests = 0`` does not lift the hub's limit).

**What counts.** A request counts when it is sent (admitted), whether it then succeeds,
fails or is interrupted; tokens count from the usage the server reports (``total_tokens``).
Answers from the cache or a replay file count for nothing.

**Before sending.** :meth:`Ledger.admit` is called with the number of requests a cell
is about to send (after cache hits are taken out) and raises :class:`BudgetExceeded`
with one polite line when they do not fit. A sweep (and a batch) is checked as a whole
plan: by default it is refused as a whole, because half a sweep is a misleading
comparison and the student learns before anything is spent; with ``--partial`` it runs
the first requests that fit. Tokens cannot be known before an answer arrives, so the
token limit refuses new requests once it is reached; the one answer that crosses it is
allowed to finish.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from writer_magics.errors import BudgetExceeded, BudgetSettingError

if TYPE_CHECKING:  # %load_ext must not import the answer types (bench/load.py)
    from writer_magics.answer.result import Result

#: ``requests=50,tokens=20000`` (either part may be left out).
BUDGET_VARIABLE = "WRITER_MAGICS_BUDGET"
_NAMES = ("requests", "tokens")


@dataclass(frozen=True)
class Limits:
    """Requests and tokens one kernel may spend; 0 = unlimited."""

    requests: int = 0
    tokens: int = 0

    def tighter(self, other: Limits) -> Limits:
        """Each limit the stricter of the two (a 0, unlimited, never wins over a number)."""
        requests = _stricter(self.requests, other.requests)
        return Limits(requests, _stricter(self.tokens, other.tokens))

    @property
    def unlimited(self) -> bool:
        return not (self.requests or self.tokens)


def _stricter(a: int, b: int) -> int:
    return min(a, b) if a and b else a or b


def parse_budget(text: str) -> Limits:
    """``"requests=50,tokens=20000"`` -> ``Limits(50, 20000)``; ``""`` -> no limits.

    Raises :class:`BudgetSettingError` (one line) for anything else.
    """
    limits = Limits()
    for part in text.replace(";", ",").split(","):
        if not part.strip():
            continue
        name, eq, value = (p.strip() for p in part.partition("="))
        if not eq or name not in _NAMES:
            raise BudgetSettingError(
                f"{part.strip()!r} is not requests=N or tokens=N (e.g. requests=50,tokens=20000)"
            )
        limits = replace(limits, **{name: check_limit(name, value)})
    return limits


def check_limit(name: str, value: object) -> int:
    """A limit as a whole number >= 0, or :class:`BudgetSettingError`."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise BudgetSettingError(f"{name} must be a whole number of 0 or more, got {value!r}")
    return value


def environment_limits(environ: Mapping[str, str] | None = None) -> Limits:
    """The limits ``WRITER_MAGICS_BUDGET`` sets (none when unset)."""
    text = (os.environ if environ is None else environ).get(BUDGET_VARIABLE, "")
    try:
        return parse_budget(text)
    except BudgetSettingError as exc:
        raise BudgetSettingError(f"{BUDGET_VARIABLE}: {exc}") from None


@dataclass
class Ledger:
    """What one kernel has spent: requests sent and tokens reported."""

    requests: int = 0
    tokens: int = 0

    def check(self, planned: int, limits: Limits, *, partial: bool = False) -> int:
        """How many of ``planned`` new requests may be sent now, without counting them.

        All of them, or with ``partial`` the first ones that fit; raises
        :class:`BudgetExceeded` (one line: used, limit, nothing sent) when none may go,
        or when not all fit and ``partial`` is False. A batch or sweep calls this (or
        :meth:`admit`) with its whole plan before sending anything.
        """
        if planned <= 0:
            return 0
        if limits.tokens and self.tokens >= limits.tokens:
            raise BudgetExceeded(
                f"Sorry, the token budget is used up: {self.tokens} of {limits.tokens} "
                f"tokens spent in this kernel; nothing was sent."
            )
        if not limits.requests:
            return planned
        left = max(limits.requests - self.requests, 0)
        if left == 0:
            raise BudgetExceeded(
                f"Sorry, the request budget is used up: {self.requests} of {limits.requests} "
                f"requests sent from this kernel; nothing was sent."
            )
        if planned > left and not partial:
            raise BudgetExceeded(
                f"Sorry, this cell needs {planned} requests but only {left} of the budget's "
                f"{limits.requests} remain ({self.requests} used); nothing was sent. "
                f"Add --partial to send the first {left}."
            )
        return min(planned, left)

    def admit(self, planned: int, limits: Limits, *, partial: bool = False) -> int:
        """:meth:`check`, then count the admitted requests as sent (call it just before)."""
        allowed = self.check(planned, limits, partial=partial)
        self.requests += allowed
        return allowed

    def spend(self, results: Iterable[Result]) -> None:
        """Add the tokens the server reported for answers that were sent live."""
        for result in results:
            usage = result.usage
            if usage is None:
                continue
            total = usage.total_tokens
            if total is None:
                total = (usage.prompt_tokens or 0) + (usage.completion_tokens or 0)
            self.tokens += total

    def lines(self, limits: Limits) -> list[str]:
        """``budget: 3 of 50 requests used (47 left) · 1200 tokens used (no limit)``."""
        return [
            f"budget: {self._part('requests', limits.requests)} · "
            f"{self._part('tokens', limits.tokens)}"
        ]

    def _part(self, name: str, limit: int) -> str:
        used = self.requests if name == "requests" else self.tokens
        if not limit:
            return f"{used} {name} used (no limit)"
        return f"{used} of {limit} {name} used ({max(limit - used, 0)} left)"


@dataclass(frozen=True)
class Gate:
    """A ledger with the limits in force for one cell: what the sender asks before sending."""

    ledger: Ledger
    limits: Limits
    partial: bool = False

    def admit(self, planned: int) -> int:
        """How many of the ``planned`` live requests go (they are counted); may raise."""
        return self.ledger.admit(planned, self.limits, partial=self.partial)

    def spend(self, results: Iterable[Result]) -> None:
        self.ledger.spend(results)
