"""Robust statistics for the detectors: pure functions, no I/O.

Baselines are medians and median absolute deviations (resistant to the odd busy day or
to an earlier attack still in the history), upper quantiles over a role's accounts for
a new account's cold start, and a one-sided CUSUM for a slow, steady excess.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

#: MAD × this estimates the standard deviation of normally distributed data.
MAD_SCALE = 1.4826


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    if not ordered:
        raise ValueError("median of nothing")
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return float(ordered[middle])
    return (ordered[middle - 1] + ordered[middle]) / 2


def spread(values: Sequence[float]) -> float:
    """The robust standard deviation (scaled MAD); at least 1, so counts never get a
    zero-width band from a run of identical days."""
    centre = median(values)
    return max(MAD_SCALE * median([abs(value - centre) for value in values]), 1.0)


def quantile(values: Sequence[float], q: float) -> float:
    """The q-quantile by linear interpolation between order statistics."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("quantile of nothing")
    place = q * (len(ordered) - 1)
    low = math.floor(place)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (place - low)


def robust_limit(values: Sequence[float], k: float = 4.0, minimum_samples: int = 5) -> float | None:
    """median + k robust deviations of ``values``; None while there are too few samples."""
    if len(values) < minimum_samples:
        return None
    return median(values) + k * spread(values)


def poisson_tail(observed: int, mean: float) -> float:
    """P(X >= observed) for X ~ Poisson(mean): how surprising a count is."""
    if observed <= 0:
        return 1.0
    mean = max(mean, 1e-9)
    term = math.exp(-mean)
    below = term
    for k in range(1, observed):
        term *= mean / k
        below += term
    return max(0.0, 1.0 - below)


@dataclass(frozen=True)
class Cusum:
    """One-sided CUSUM over daily counts: S = max(0, S + x - (target + slack)).

    ``slack`` absorbs ordinary day-to-day variation; an alarm when S exceeds
    ``threshold``. A steady excess of e a day alarms after about threshold / e days."""

    target: float
    slack: float
    threshold: float

    def step(self, total: float, count: float) -> float:
        return max(0.0, total + count - (self.target + self.slack))

    def alarms(self, total: float) -> bool:
        return total > self.threshold


def cusum_for(history: Sequence[float], fallback: Sequence[float]) -> Cusum:
    """A CUSUM on the person's own days, or the role's while they have too few."""
    source = history if len(history) >= 5 else fallback
    if len(source) < 3:
        return Cusum(target=2.0, slack=4.0, threshold=30.0)
    sigma = spread(source)
    return Cusum(target=median(source), slack=max(4.0, sigma), threshold=max(30.0, 5 * sigma))


def binomial_tail(k: int, n: int, p: float) -> float:
    """P(X ≥ k) for X ~ Binomial(n, p): how likely chance alone gives ``k`` or more hits
    in ``n`` draws when each hits with probability ``p``. Summed from ``k`` up (no
    cancellation for tiny tails), in logarithms (no overflow for large ``n``)."""
    if k <= 0:
        return 1.0
    if k > n or p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    log_p, log_q = math.log(p), math.log1p(-p)
    total = 0.0
    for i in range(k, n + 1):
        log_term = (
            math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
            + i * log_p + (n - i) * log_q
        )  # fmt: skip
        term = math.exp(log_term)
        total += term
        if i > n * p and term < total * 1e-12:
            break
    return min(1.0, total)
