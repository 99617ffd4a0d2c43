"""How many seeds a comparison needs: the power of a two-sided t-test from the noncentral t distribution
(scipy.stats.nct), not the normal approximation, which undercounts at the few seeds a study can afford.

Three designs, as compare runs them:
  two-sample  independent seeds on each side, n per side: df = 2n - 2, noncentrality delta / (std * sqrt(2/n)),
              std the pooled standard deviation of the two sides
  paired      the same seeds on both sides (same initialisation and data order), n pairs: a one-sample test of the
              per-seed differences, df = n - 1, noncentrality delta * sqrt(n) / std, std that of the differences
  one-sample  one side against a fixed value (published weights): as paired, std that of the side

Known answer: delta / std = 1 at alpha 0.05 (two-sided) and 80% power needs 17 seeds per side (two-sample), as
the standard tables (Cohen 1988) give; tests/sweep/test_power.py checks it and others.
"""
from __future__ import annotations

import math

from scipy import optimize
from scipy import stats as scipy_stats

DESIGNS = ("two-sample", "paired", "one-sample")
MAX_SEEDS = 1_000_000  # beyond this, a study is not planned by seeds: seeds_needed says None


def _df_and_noncentrality(n: int, effect: float, design: str) -> tuple[float, float]:
    if design == "two-sample":
        return 2 * n - 2, effect * math.sqrt(n / 2)
    if design in ("paired", "one-sample"):
        return n - 1, effect * math.sqrt(n)
    raise ValueError(f"unknown design {design!r}; one of {DESIGNS}")


def power(n: int, delta: float, std: float, alpha: float = 0.05, design: str = "two-sample") -> float:
    """The probability that a two-sided t-test at level alpha detects a true difference delta, with n seeds per
    side (n pairs) and seed standard deviation std."""
    if n < 2:
        return 0.0
    df, nc = _df_and_noncentrality(n, abs(delta) / std, design)
    t_crit = scipy_stats.t.ppf(1 - alpha / 2, df)
    # The lower tail as the upper tail at -nc: SciPy's nct.cdf returns nan far out in that tail, where it is ~0.
    tails = [float(scipy_stats.nct.sf(t_crit, df, nc)), float(scipy_stats.nct.sf(t_crit, df, -nc))]
    return sum(0.0 if math.isnan(t) else t for t in tails)


def seeds_needed(delta: float, std: float, alpha: float = 0.05, target: float = 0.8,
                 design: str = "two-sample") -> int | None:
    """The fewest seeds per side (pairs) with power >= target; None when delta is 0 or more than MAX_SEEDS would
    be needed. Power grows with n, so a doubling search then bisection finds it in a few dozen evaluations."""
    if std <= 0:
        return 2 if delta != 0 else None  # no seed noise: any difference shows at the smallest study
    if delta == 0:
        return None
    lo, hi = 1, 2
    while power(hi, delta, std, alpha, design) < target:
        lo, hi = hi, hi * 2
        if hi > MAX_SEEDS:
            return None
    while hi - lo > 1:  # power(lo) < target <= power(hi)
        mid = (lo + hi) // 2
        if power(mid, delta, std, alpha, design) >= target:
            hi = mid
        else:
            lo = mid
    return hi


def detectable_delta(n: int, std: float, alpha: float = 0.05, target: float = 0.8,
                     design: str = "two-sample") -> float | None:
    """The smallest true difference that n seeds per side (pairs) detect with power `target`; None for n < 2."""
    if n < 2:
        return None
    if std <= 0:
        return 0.0
    f = lambda d: power(n, d, std, alpha, design) - target  # noqa: E731
    hi = std
    while f(hi) < 0:
        hi *= 2
    return float(optimize.brentq(f, 0.0, hi, xtol=1e-9 * std))
