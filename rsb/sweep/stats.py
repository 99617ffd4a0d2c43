"""Statistics of a seed study, written out so each is checkable by hand (no SciPy dependency).

The standard deviation is the sample one (ddof=1, divisor n-1): the seeds are a sample of the seeds one could
have drawn, as in the paper's seed study. Spearman's rho is Pearson's r of the ranks, with tied values sharing
the mean of their ranks."""
from __future__ import annotations

import math


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


def ranks(values: list[float]) -> list[float]:
    """1-based ranks; a group of equal values gets the mean of the ranks it spans."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    r = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            r[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return r


def pearson(x: list[float], y: list[float]) -> float | None:
    """Pearson's r; None when it is undefined (fewer than 2 pairs, or a constant series)."""
    if len(x) != len(y):
        raise ValueError("pearson: series of different lengths")
    n = len(x)
    if n < 2:
        return None
    mx, my = sum(x) / n, sum(y) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    if sxx == 0 or syy == 0:
        return None
    return max(-1.0, min(1.0, sxy / math.sqrt(sxx * syy)))


def spearman(x: list[float], y: list[float]) -> float | None:
    return pearson(ranks(x), ranks(y))


def best(seeds: list[int], values: list[float]) -> tuple[int, float] | None:
    """The seed with the highest value (the lowest seed among ties)."""
    pairs = [(v, -s) for s, v in zip(seeds, values) if v is not None]
    if not pairs:
        return None
    v, s = max(pairs)
    return -s, v
