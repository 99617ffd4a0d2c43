"""Statistics of one seed study: describe (n, mean, std, min, max, median, range), Pearson and Spearman through
scipy.stats, and the best seed.

The standard deviation is the sample one (ddof=1, divisor n-1): the seeds are a sample of the seeds one could
have drawn, as in the paper's seed study. Spearman's rho is Pearson's r of the ranks, with tied values sharing
the mean of their ranks (scipy.stats.spearmanr). A correlation is None where it is undefined (fewer than 2
pairs, or a constant series), where SciPy would return nan with a warning."""
from __future__ import annotations

import math

from scipy import stats as scipy_stats


def describe(values: list[float]) -> dict:
    """n, mean, std (ddof=1; None for fewer than 2 values), min, max, median and range (max - min)."""
    v = sorted(float(x) for x in values)
    n = len(v)
    if n == 0:
        return {"n": 0, "mean": None, "std": None, "min": None, "max": None, "median": None, "range": None}
    mean = sum(v) / n
    std = math.sqrt(sum((x - mean) ** 2 for x in v) / (n - 1)) if n > 1 else None
    median = v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2
    return {"n": n, "mean": mean, "std": std, "min": v[0], "max": v[-1], "median": median, "range": v[-1] - v[0]}


def _defined(x: list[float], y: list[float]) -> bool:
    if len(x) != len(y):
        raise ValueError("correlation: series of different lengths")
    return len(x) >= 2 and len(set(x)) > 1 and len(set(y)) > 1


def pearson(x: list[float], y: list[float]) -> float | None:
    """Pearson's r; None when it is undefined (fewer than 2 pairs, or a constant series)."""
    return float(scipy_stats.pearsonr(x, y).statistic) if _defined(x, y) else None


def spearman(x: list[float], y: list[float]) -> float | None:
    """Spearman's rho (ties share their mean rank); None when it is undefined."""
    return float(scipy_stats.spearmanr(x, y).statistic) if _defined(x, y) else None


def best(seeds: list[int], values: list[float]) -> tuple[int, float] | None:
    """The seed with the highest value (the lowest seed among ties)."""
    pairs = [(v, -s) for s, v in zip(seeds, values) if v is not None]
    if not pairs:
        return None
    v, s = max(pairs)
    return -s, v
