"""The robust statistics behind the detectors."""

from __future__ import annotations

import pytest

from carevault.detect.stats import (
    Cusum,
    cusum_for,
    median,
    poisson_tail,
    quantile,
    robust_limit,
    spread,
)
from carevault.detect.windows import CountWindow, DistinctWindow


def test_median_and_spread_ignore_one_wild_day() -> None:
    days = [10, 11, 9, 10, 12, 10, 500]
    assert median(days) == 10
    assert spread(days) < 3
    limit = robust_limit(days)
    assert limit is not None and 10 < limit < 25


def test_too_few_days_give_no_limit() -> None:
    assert robust_limit([1, 2, 3]) is None


def test_quantile_interpolates() -> None:
    assert quantile([0, 10], 0.5) == 5
    assert quantile(list(range(101)), 0.99) == pytest.approx(99)


def test_poisson_tail() -> None:
    assert poisson_tail(0, 3) == 1.0
    assert poisson_tail(20, 3) < 1e-8
    assert 0.3 < poisson_tail(3, 3) < 0.7


def test_cusum_accumulates_a_steady_excess() -> None:
    cusum = Cusum(target=2, slack=4, threshold=30)
    total = 0.0
    for _ in range(2):
        total = cusum.step(total, 25)
    assert cusum.alarms(total)
    assert cusum.step(0.0, 5) == 0.0


def test_cusum_for_a_new_account_uses_the_role() -> None:
    assert cusum_for([], [3, 3, 4, 2, 3]).target == 3


def test_windows_forget_what_left_the_span() -> None:
    window = DistinctWindow(10)
    assert window.add("a", 0, 0) == 1
    assert window.add("b", 5, 1) == 2
    assert window.add("a", 9, 2) == 2
    assert window.add("c", 12, 3) == 3
    assert window.add("d", 16, 4) == 3  # "b" (at 5) has left; "a" moved to 9
    assert sorted(window.keys) == ["a", "c", "d"]
    assert window.first_position == 2
    counts = CountWindow(10)
    assert [counts.add(t, t) for t in (0, 3, 11, 12)] == [1, 2, 2, 3]
