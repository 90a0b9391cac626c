"""Rate and byte limits on a fake clock: no sleeps."""

from __future__ import annotations

import pytest

from writer_magics.display.throttle import ByteBudget, Throttle


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_first_update_is_immediate_then_at_most_n_per_second() -> None:
    clock = FakeClock()
    throttle = Throttle(max_per_second=10, clock=clock)
    sent = 0
    for _ in range(1000):  # 1000 events over 2 s
        if throttle.due():
            throttle.mark()
            sent += 1
        clock.now += 0.002
    assert throttle.count == sent
    assert 19 <= sent <= 21


def test_first_event_is_not_delayed() -> None:
    throttle = Throttle(max_per_second=1, clock=FakeClock())
    assert throttle.due()
    throttle.mark()
    assert not throttle.due()


def test_rate_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Throttle(max_per_second=0)


def test_budget_grows_with_the_answer() -> None:
    budget = ByteBudget(ratio=1.5, slack=100)
    assert budget.allows(100, 0)
    budget.spend(100)
    assert not budget.allows(60, 0)
    assert budget.allows(60, 40)  # 160 <= 1.5 * 40 + 100
