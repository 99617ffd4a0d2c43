"""compare: score sets drawn from known normal distributions, checked against SciPy's own functions and against
closed forms; the verdict, the files, and the one-sentence errors (exit status 2)."""
from __future__ import annotations

import csv
import itertools
import json
import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from rsb.errors import UserError
from rsb.sweep import cli, power
from rsb.sweep.compare import Settings, compare_metric, verdict

PNG = b"\x89PNG\r\n\x1a\n"
NAMES = ("A", "B")


def draw(mean: float, std: float, n: int, seed: int) -> dict[int, float]:
    values = np.random.default_rng(seed).normal(mean, std, n)
    return {s + 1: float(v) for s, v in enumerate(values)}


def write_table(path, columns: dict[str, dict[int, float]], seeds=None):
    seeds = seeds or sorted(next(iter(columns.values())))
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["seed", *columns])
        for s in seeds:
            w.writerow([s, *[columns[c].get(s, "") for c in columns]])
    return path


# ---- the statistics of one metric ------------------------------------------------------------------------------
def test_two_sample_against_scipy_and_closed_forms():
    a, b = draw(79.8, 0.1, 12, 1), draw(78.0, 0.12, 9, 2)
    xa, xb = np.array(list(a.values())), np.array(list(b.values()))
    r = compare_metric("val_top1", NAMES, a, b, None, Settings(resamples=2000, seed=3))
    assert r["design"] == "two-sample" and r["difference"] == pytest.approx(xa.mean() - xb.mean())
    # Welch's interval: diff +- t(df) sqrt(va/na + vb/nb), df by Welch-Satterthwaite, written out here.
    va, vb = xa.var(ddof=1) / len(xa), xb.var(ddof=1) / len(xb)
    df = (va + vb) ** 2 / (va ** 2 / (len(xa) - 1) + vb ** 2 / (len(xb) - 1))
    half = scipy_stats.t.ppf(0.975, df) * math.sqrt(va + vb)
    t = r["t_interval"]
    assert (t["low"], t["high"], t["df"]) == pytest.approx((r["difference"] - half, r["difference"] + half, df))
    # The bootstrap is SciPy's, seeded: the same call gives the same interval.
    ref = scipy_stats.bootstrap((xa, xb), lambda x, y, axis=-1: x.mean(axis) - y.mean(axis), n_resamples=2000,
                                rng=np.random.default_rng(3), vectorized=True).confidence_interval
    assert (r["bootstrap"]["low"], r["bootstrap"]["high"]) == pytest.approx((ref.low, ref.high))
    assert r["bootstrap"]["method"] == "BCa" and r["bootstrap"]["resamples"] == 2000
    # Cohen's d over the pooled std; the seeds needed at that std (rsb.sweep.power).
    pooled = math.sqrt(((len(xa) - 1) * xa.var(ddof=1) + (len(xb) - 1) * xb.var(ddof=1)) / (len(xa) + len(xb) - 2))
    assert r["noise_std"] == pytest.approx(pooled) and r["effect_size"] == pytest.approx(r["difference"] / pooled)
    assert r["seeds_needed"][0] == {"delta": 0.1, "observed": False, "seeds": power.seeds_needed(0.1, pooled)}
    assert r["seeds_needed"][-1]["observed"] and r["seeds_needed"][-1]["delta"] == pytest.approx(abs(r["difference"]))
    # 21 seeds: C(21, 12) = 293,930 splits, more than the resamples: sampled, seeded, and far below 0.05.
    p = r["permutation"]
    assert not p["exact"] and p["resamples"] == 2000 and p["p"] < 0.001


def test_bootstrap_interval_approaches_the_normal_one_with_many_seeds():
    a, b = draw(0.0, 1.0, 400, 4), draw(0.5, 2.0, 400, 5)
    r = compare_metric("x", NAMES, a, b, None, Settings(resamples=4000))
    se = math.sqrt(np.var(list(a.values()), ddof=1) / 400 + np.var(list(b.values()), ddof=1) / 400)
    assert r["bootstrap"]["low"] == pytest.approx(r["difference"] - 1.96 * se, abs=0.1 * se)
    assert r["bootstrap"]["high"] == pytest.approx(r["difference"] + 1.96 * se, abs=0.1 * se)


def _two_sided(null: list[float], observed: float) -> float:
    """SciPy's two-sided permutation p: twice the smaller tail, at most 1 (tails include the observed value)."""
    eps = 1e-12
    less = sum(x <= observed + eps for x in null) / len(null)
    greater = sum(x >= observed - eps for x in null) / len(null)
    return min(1.0, 2 * min(less, greater))


def test_exact_permutation_p_by_enumeration():
    a, b = {1: 80.1, 2: 80.3, 3: 79.9, 4: 80.4}, {5: 79.7, 6: 80.0, 7: 79.6}
    r = compare_metric("val_top1", NAMES, a, b, None, Settings())
    pool = list(a.values()) + list(b.values())
    null = []
    for pick in itertools.combinations(range(7), 4):
        rest = [pool[i] for i in range(7) if i not in pick]
        null.append(np.mean([pool[i] for i in pick]) - np.mean(rest))
    p = r["permutation"]
    assert p["exact"] and p["splits"] == 35 and p["smallest_p"] == pytest.approx(2 / 35)
    assert p["p"] == pytest.approx(_two_sided(null, r["difference"]))


def test_paired_against_scipy_and_sign_flips():
    a = draw(80.0, 0.1, 6, 6)
    b = {s: v - 0.05 + float(e) for (s, v), e in zip(a.items(), np.random.default_rng(7).normal(0, 0.03, 6))}
    r = compare_metric("val_top1", NAMES, a, b, None, Settings(paired=True))
    d = np.array([a[s] - b[s] for s in sorted(a)])
    half = scipy_stats.t.ppf(0.975, 5) * d.std(ddof=1) / math.sqrt(6)
    assert r["design"] == "paired"
    assert (r["t_interval"]["low"], r["t_interval"]["high"]) == pytest.approx((d.mean() - half, d.mean() + half))
    assert r["effect_size"] == pytest.approx(d.mean() / d.std(ddof=1))
    null = [float(np.mean(d * np.array(signs))) for signs in itertools.product((1, -1), repeat=6)]
    assert r["permutation"]["exact"] and r["permutation"]["splits"] == 64
    assert r["permutation"]["p"] == pytest.approx(_two_sided(null, d.mean()))
    assert r["seeds_needed"][0]["seeds"] == power.seeds_needed(0.1, d.std(ddof=1), design="paired")
    with pytest.raises(UserError, match="--paired needs the same seeds on both sides"):
        compare_metric("val_top1", NAMES, a, {**b, 99: 80.0}, None, Settings(paired=True))


def test_one_sample_against_a_published_value():
    a = draw(79.6, 0.1, 8, 8)
    xa = np.array(list(a.values()))
    r = compare_metric("val_top1", NAMES, a, None, 79.828, Settings())
    half = scipy_stats.t.ppf(0.975, 7) * xa.std(ddof=1) / math.sqrt(8)
    diff = xa.mean() - 79.828
    assert r["design"] == "one-sample" and r["difference"] == pytest.approx(diff)
    assert (r["t_interval"]["low"], r["t_interval"]["high"]) == pytest.approx((diff - half, diff + half))
    pi = scipy_stats.t.ppf(0.975, 7) * xa.std(ddof=1) * math.sqrt(1 + 1 / 8)
    assert r["prediction_interval"] == pytest.approx((xa.mean() - pi, xa.mean() + pi))


def test_verdict_words():
    s = Settings(resamples=999)
    low, high = draw(78.0, 0.1, 8, 31), draw(79.8, 0.1, 8, 32)
    r = compare_metric("val_top1", NAMES, low, high, None, s)
    t = r["t_interval"]
    assert verdict("val top-1", NAMES, r, s, True) == (
        f"val top-1: A is below B by {-r['difference']:.2f} points (A - B = {r['difference']:+.2f}, 95% CI "
        f"{t['low']:+.2f} to {t['high']:+.2f}), far beyond seed noise (std {r['a']['std']:.2f} and "
        f"{r['b']['std']:.2f})")
    # Beyond seed noise but not far: an effect size under 3 (one seed of each would often not tell them apart).
    a, b = draw(80.0, 0.1, 40, 33), draw(79.9, 0.1, 40, 34)
    r = compare_metric("val_top1", NAMES, a, b, None, s)
    assert 0 < r["t_interval"]["low"] and abs(r["effect_size"]) < 3
    assert ", beyond seed noise (std" in verdict("val top-1", NAMES, r, s, True)
    # Not percentages: no unit. Identical sides seed by seed: nothing to compare against.
    r = compare_metric("loss", NAMES, {1: 1.0, 2: 2.0}, {1: 1.0, 2: 2.0}, None, Settings(paired=True))
    assert verdict("loss", NAMES, r, s, False) == ("loss: A - B = +0.00 on every seed, with no seed noise to "
                                                   "compare it with")


def test_fewer_than_two_seeds_is_refused():
    with pytest.raises(UserError, match="B has 1 seed\\(s\\) with val_top1; a comparison needs at least 2"):
        compare_metric("val_top1", NAMES, {1: 80.0, 2: 80.1}, {1: 79.0}, None, Settings())


# ---- the command: files, verdicts, noise, errors ---------------------------------------------------------------
def test_compare_command_writes_its_files_and_verdicts(tmp_path, capsys):
    val_a, val_b = draw(79.8, 0.1, 10, 11), draw(78.0, 0.12, 10, 12)
    v2_a, v2_b = draw(67.8, 0.23, 10, 13), draw(67.75, 0.23, 10, 14)
    ta = write_table(tmp_path / "a2.csv", {"val_top1": val_a, "v2_top1": v2_a, "val_images": {s: 50000 for s in val_a}})
    tb = write_table(tmp_path / "a3.csv", {"val_top1": val_b, "v2_top1": v2_b})
    out = tmp_path / "cmp"
    assert cli.main(["compare", str(ta), str(tb), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    doc = json.loads((out / "compare.json").read_text())
    assert list(doc["metrics"]) == ["val_top1", "v2_top1"]  # no gap column on either side
    val, v2 = doc["metrics"]["val_top1"], doc["metrics"]["v2_top1"]
    lo, hi = val["t_interval"]["low"], val["t_interval"]["high"]
    diff = val["difference"]
    expected = (f"ImageNet-val top-1: a2 is above a3 by {diff:.2f} points (a2 - a3 = {diff:+.2f}, 95% CI {lo:+.2f} "
                f"to {hi:+.2f}), far beyond seed noise (std {val['a']['std']:.2f} and {val['b']['std']:.2f})")
    assert expected in printed and doc["verdicts"][0] == expected
    n, n_seen = power.seeds_needed(0.1, v2["noise_std"]), power.seeds_needed(abs(v2["difference"]), v2["noise_std"])
    assert (f"within seed noise (std {v2['a']['std']:.2f} and {v2['b']['std']:.2f}); {n} seeds per side would "
            f"detect 0.1 points and {n_seen} the observed {abs(v2['difference']):.2f}, with 80% power"
            in doc["verdicts"][1])
    md = (out / "compare.md").read_text()
    # The verdict's numbers are the tables' numbers.
    assert f"| ImageNet-val top-1 | two-sample | {val['difference']:+.2f} | {lo:+.2f} to {hi:+.2f} |" in md
    assert f"| ImageNet-val top-1 | a2 | 10 | {val['a']['mean']:.2f} | {val['a']['std']:.2f} |" in md
    # A's 50,000 val images name ImageNet-val; B's table names no set, so it is taken to be A's (and said).
    assert "val_top1: B's table does not name its test set; taken to be the other side's (ImageNet-val)" in md
    assert "both sides ran the same seeds" in md  # seeds 1-10 on both: --paired is suggested
    assert f"| v2 top-1 |" not in md and f"| V2 top-1 | two-sample | {v2['difference']:+.2f} |" in md
    # Test-set sampling: 100 sqrt(p (1 - p) / 50,000) at A's mean; the assumed size for B and for V2 is said.
    p = val["a"]["mean"] / 100
    assert val["noise"]["sampling_std"]["a"] == pytest.approx(100 * math.sqrt(p * (1 - p) / 50000))
    assert val["noise"]["larger"] == "test-set sampling" and "10,000 images (assumed)" in md
    data = (out / "compare.png").read_bytes()
    assert data[:8] == PNG and len(data) > 5000


def test_compare_against_published_weights(tmp_path, capsys):
    a = draw(79.5, 0.1, 5, 21)
    table = write_table(tmp_path / "mine.csv", {"val_top1": a, "v2_top1": draw(67.8, 0.2, 5, 22),
                                                 "gap": draw(11.7, 0.2, 5, 23)})
    assert cli.main(["compare", str(table), "--published", "a2", "--out", str(tmp_path / "c")]) == 0
    doc = json.loads((tmp_path / "c" / "compare.json").read_text())
    val = doc["metrics"]["val_top1"]
    assert val["b"] == {"value": 79.828} and val["design"] == "one-sample"
    assert doc["metrics"]["gap"]["b"]["value"] == pytest.approx(79.828 - 67.81)
    assert val["label"] == "ImageNet-val top-1"  # the table names no set: the published side's name is used
    assert "prediction interval" in doc["verdicts"][0] and "the published value is one run" in doc["verdicts"][0]


def _error(capsys, argv) -> str:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and err.endswith(".")
    return err


def test_bad_inputs_are_one_sentence_errors(tmp_path, capsys):
    good = write_table(tmp_path / "good.csv", {"val_top1": {1: 80.0, 2: 80.1, 3: 79.9}})
    no_seed = tmp_path / "no_seed.csv"
    no_seed.write_text("run,val_top1\nx,80.0\ny,80.1\n")
    empty = tmp_path / "empty.csv"
    empty.write_text("seed,val_top1\n")
    one = write_table(tmp_path / "one.csv", {"val_top1": {1: 80.0}})
    other = write_table(tmp_path / "other.csv", {"v2_top1": {1: 68.0, 2: 68.1}})
    text = write_table(tmp_path / "text.csv", {"val_top1": {1: 80.0, 2: "n/a"}})
    twice = tmp_path / "twice.csv"
    twice.write_text("seed,val_top1\n1,80.0\n1,80.2\n")
    out = ["--out", str(tmp_path / "c")]
    assert "no_seed.csv has no seed column (its columns: run, val_top1)" in _error(
        capsys, ["compare", str(good), str(no_seed), *out])
    assert "empty.csv has no rows" in _error(capsys, ["compare", str(good), str(empty), *out])
    assert "one has 1 seed(s) with val_top1; a comparison needs at least 2 seeds per side" in _error(
        capsys, ["compare", str(good), str(one), *out])
    assert "other.csv) has no val_top1; its columns: v2_top1" in _error(
        capsys, ["compare", str(good), str(other), "--metric", "val_top1", *out])
    assert "share none of val_top1, v2_top1, gap" in _error(capsys, ["compare", str(good), str(other), *out])
    assert "is not a number for seed 2 ('n/a')" in _error(capsys, ["compare", str(good), str(text), *out])
    assert "has seed 1 twice" in _error(capsys, ["compare", str(good), str(twice), *out])
    assert "neither a sweep folder" in _error(capsys, ["compare", str(good), str(tmp_path / "nope"), *out])
    assert "not both" in _error(capsys, ["compare", str(good), str(good), "--published", "a2", *out])
    assert "not both" in _error(capsys, ["compare", str(good), *out])
    assert "drop --paired" in _error(capsys, ["compare", str(good), "--published", "a2", "--paired", *out])
