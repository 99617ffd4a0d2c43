"""Is the difference real? One metric of two procedures compared against seed noise, through scipy.stats.

Three designs (rsb.sweep.power names them): two-sample (independent seeds), paired (the same seeds on both
sides: the per-seed differences) and one-sample (one side against a fixed value, the released weights' score).
For each: the difference of the means; a seeded bootstrap interval (scipy.stats.bootstrap, BCa; percentile
where BCa is undefined); the t interval (Welch's, paired or one-sample: scipy.stats.ttest_ind / ttest_rel /
ttest_1samp); a two-sided permutation p-value (scipy.stats.permutation_test: every split or sign flip when there
are at most `resamples` of them, else that many random ones, seeded); the effect size; and the seeds the design
needs to detect each delta with the given power.

The verdict decides on the t interval: with the few seeds a study has, the bootstrap interval is too narrow (it
resamples only the n values seen, with no allowance for estimating the standard deviation from them).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

from rsb.errors import UserError
from rsb.sweep import power as powerlib
from rsb.sweep.stats import describe

FAR_BEYOND = 3.0  # |effect size| from which one seed of each side tells them apart: "far beyond seed noise"


@dataclass
class Settings:
    alpha: float = 0.05
    power: float = 0.8
    deltas: tuple = (0.1, 0.2)
    resamples: int = 9999
    seed: int = 0            # of the bootstrap's and the sampled permutations' random numbers
    paired: bool = False

    @property
    def confidence(self) -> float:
        return 1 - self.alpha


def _mean_difference(x, y, axis=-1):
    return np.mean(x, axis=axis) - np.mean(y, axis=axis)


def _mean(x, axis=-1):
    return np.mean(x, axis=axis)


def _interval(ci) -> tuple[float | None, float | None]:
    low, high = float(ci.low), float(ci.high)
    return (None, None) if math.isnan(low) or math.isnan(high) else (low, high)


def bootstrap_interval(data: tuple, statistic, s: Settings) -> dict:
    """BCa; percentile where BCa is undefined (a degenerate bootstrap distribution); the point itself where every
    resample gives the same value."""
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SciPy's DegenerateDataWarning and nan warnings: handled here
            res = scipy_stats.bootstrap(data, statistic, n_resamples=s.resamples, method=method, vectorized=True,
                                        confidence_level=s.confidence, rng=np.random.default_rng(s.seed))
        low, high = _interval(res.confidence_interval)
        if low is not None:
            return {"low": low, "high": high, "method": method, "resamples": s.resamples, "seed": s.seed}
    point = float(statistic(*data))
    return {"low": point, "high": point, "method": "none (every resample gives the same difference)",
            "resamples": s.resamples, "seed": s.seed}


def permutation_p(data: tuple, statistic, permutation_type: str, splits: int, s: Settings) -> dict:
    """Two-sided p of the statistic under exchange (independent: the seeds split between the sides; samples:
    sign flips of the per-seed differences). Exact over all `splits` when there are at most s.resamples."""
    exact = splits <= s.resamples
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = scipy_stats.permutation_test(data, statistic, permutation_type=permutation_type, vectorized=True,
                                           n_resamples=np.inf if exact else s.resamples,
                                           rng=np.random.default_rng(s.seed))
    return {"p": float(res.pvalue), "exact": exact, "splits": splits, "resamples": None if exact else s.resamples,
            "seed": None if exact else s.seed, "smallest_p": 2 / splits if exact else None,
            "kind": "split permutations" if permutation_type == "independent" else "sign flips"}


def _t_interval(result, s: Settings, name: str) -> dict:
    """The t-test's interval of the difference (SciPy's confidence_interval at 1 - alpha), None where it is
    undefined (no spread on either side)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        low, high = _interval(result.confidence_interval(s.confidence))
    df = float(result.df)
    return {"low": low, "high": high, "df": None if math.isnan(df) else df, "name": name}


def _quiet(test, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a side without spread: nan, handled by _interval
        return test(*args, **kwargs)


def _check(name: str, metric: str, values: dict) -> None:
    if len(values) < 2:
        raise UserError(f"{name} has {len(values)} seed(s) with {metric}; a comparison needs at least 2 seeds "
                        f"per side.")


def compare_metric(metric: str, names: tuple[str, str], a: dict[int, float], b: dict[int, float] | None,
                   fixed: float | None, s: Settings) -> dict:
    """The statistics of one metric: `a` and `b` map seed -> value; with `fixed`, A against that value."""
    _check(names[0], metric, a)
    xa = np.array([a[k] for k in sorted(a)], dtype=float)
    result = {"a": {**describe(xa.tolist()), "seeds": sorted(a), "values": xa.tolist()}}
    if fixed is not None:
        design, diff = "one-sample", float(xa.mean() - fixed)
        d = xa - fixed
        result["b"] = {"value": fixed}
        result["prediction_interval"] = prediction_interval(xa, s.confidence)
        t = _t_interval(_quiet(scipy_stats.ttest_1samp, d, 0.0), s, "one-sample t")
        boot = bootstrap_interval((d,), _mean, s)
        perm = permutation_p((d,), _mean, "samples", 2 ** len(d), s)
        noise_std = result["a"]["std"]
    else:
        _check(names[1], metric, b)
        xb = np.array([b[k] for k in sorted(b)], dtype=float)
        result["b"] = {**describe(xb.tolist()), "seeds": sorted(b), "values": xb.tolist()}
        diff = float(xa.mean() - xb.mean())
        if s.paired:
            if sorted(a) != sorted(b):
                raise UserError(f"--paired needs the same seeds on both sides, but for {metric} {names[0]} has "
                                f"{len(a)} seed(s) and {names[1]} {len(b)}, {len(set(a) ^ set(b))} of them on one "
                                f"side only; drop --paired to compare them as independent seeds.")
            design, d = "paired", xa - xb
            t = _t_interval(_quiet(scipy_stats.ttest_rel, xa, xb), s, "paired t")
            boot = bootstrap_interval((d,), _mean, s)
            perm = permutation_p((d,), _mean, "samples", 2 ** len(d), s)
            result["differences"] = describe(d.tolist())
            noise_std = result["differences"]["std"]
        else:
            design = "two-sample"
            t = _t_interval(_quiet(scipy_stats.ttest_ind, xa, xb, equal_var=False), s, "Welch's t")
            boot = bootstrap_interval((xa, xb), _mean_difference, s)
            perm = permutation_p((xa, xb), _mean_difference, "independent", math.comb(len(xa) + len(xb), len(xa)),
                                 s)
            noise_std = pooled_std(xa, xb)
    result.update(design=design, difference=diff, bootstrap=boot, t_interval=t, permutation=perm,
                  effect_size=None if not noise_std else diff / noise_std, noise_std=noise_std)
    n = len(xa) if design != "two-sample" else min(len(xa), len(xb))
    result["seeds_needed"] = seeds_needed(s, noise_std, diff, design)
    result["detectable"] = (None if noise_std is None else
                            powerlib.detectable_delta(n, noise_std, s.alpha, s.power, design))
    return result


def pooled_std(xa: np.ndarray, xb: np.ndarray) -> float:
    """sqrt(((na - 1) sa^2 + (nb - 1) sb^2) / (na + nb - 2)): the seed noise the two-sample power uses."""
    ss = ((xa - xa.mean()) ** 2).sum() + ((xb - xb.mean()) ** 2).sum()
    return float(math.sqrt(ss / (len(xa) + len(xb) - 2)))


def seeds_needed(s: Settings, std: float | None, observed: float, design: str) -> list[dict]:
    """Seeds per side (pairs, or seeds of A against a fixed value) to detect each of s.deltas and the observed
    difference with power s.power at level s.alpha."""
    rows = [{"delta": float(d), "observed": False} for d in s.deltas]
    rows.append({"delta": abs(observed), "observed": True})
    for r in rows:
        r["seeds"] = None if std is None else powerlib.seeds_needed(r["delta"], std, s.alpha, s.power, design)
    return rows


def prediction_interval(values: np.ndarray, confidence: float) -> tuple[float, float] | None:
    """Where one more seed would land: mean +- t(n-1) s sqrt(1 + 1/n). A published score is one run (one seed),
    so this, not the interval of the mean, says whether a single run at that score is unusual."""
    n = len(values)
    if n < 2:
        return None
    half = scipy_stats.t.ppf((1 + confidence) / 2, n - 1) * values.std(ddof=1) * math.sqrt(1 + 1 / n)
    return float(values.mean() - half), float(values.mean() + half)


def _num(v: float, unit: str) -> str:
    return f"{v:.2f}{unit}"


def interval_of(result: dict) -> tuple[float, float]:
    """The interval the verdict decides on: the t interval, the bootstrap's where the t interval is undefined."""
    t = result["t_interval"]
    if t["low"] is not None:
        return t["low"], t["high"]
    return result["bootstrap"]["low"], result["bootstrap"]["high"]


def verdict(label: str, names: tuple[str, str], r: dict, s: Settings, percent: bool) -> str:
    """One line: the difference with its interval, whether it is beyond seed noise, and, when it is not, the
    seeds that would detect the first delta."""
    a, b = names
    unit = " points" if percent else ""
    diff, (low, high) = r["difference"], interval_of(r)
    level = f"{100 * s.confidence:g}% CI"
    stds = [r["a"]["std"]] + ([r["b"]["std"]] if "std" in r["b"] else [])
    noise = "std " + " and ".join(_num(x, "") for x in stds)
    if r["design"] == "paired":
        noise += f"; per-seed differences std {_num(r['differences']['std'], '')}"
    if r["design"] == "one-sample":
        noise += "; the published value is one run"
    beyond = low > 0 or high < 0
    if beyond:
        far = r["effect_size"] is None or abs(r["effect_size"]) >= FAR_BEYOND
        line = (f"{label}: {a} is {'above' if diff > 0 else 'below'} {b} by {_num(abs(diff), unit)} "
                f"({a} - {b} = {diff:+.2f}, {level} {low:+.2f} to {high:+.2f}), {'far ' if far else ''}beyond seed "
                f"noise ({noise})")
    elif not r["noise_std"]:
        return f"{label}: {a} - {b} = {diff:+.2f}{unit} on every seed, with no seed noise to compare it with"
    else:
        first, observed = r["seeds_needed"][0], r["seeds_needed"][-1]
        per = {"two-sample": "seeds per side", "paired": "seed pairs", "one-sample": f"seeds of {a}"}[r["design"]]
        needed = (f"{first['seeds']} {per} would detect {first['delta']:g}{unit}" if first["seeds"] else
                  f"no practical number of {per} would detect {first['delta']:g}{unit}")
        if observed["seeds"]:
            needed += f" and {observed['seeds']} the observed {observed['delta']:.2f}"
        line = (f"{label}: {a} - {b} = {diff:+.2f}{unit} ({level} {low:+.2f} to {high:+.2f}): within seed noise "
                f"({noise}); {needed}, with {100 * s.power:g}% power")
    p = r["permutation"]
    if p["exact"] and p["smallest_p"] > s.alpha:
        line += (f"; with these seeds the permutation test cannot go below p = {p['smallest_p']:.2f} "
                 f"(it gives {p['p']:.2f})")
    pi = r.get("prediction_interval")
    if pi is not None:
        inside = pi[0] <= r["b"]["value"] <= pi[1]
        line += (f"; one more seed of {a} would land in {pi[0]:.2f} to {pi[1]:.2f} ({100 * s.confidence:g}% "
                 f"prediction interval), so a single run at {r['b']['value']:.2f} is "
                 f"{'not unusual' if inside else 'unusual'} for {a}")
    return line
