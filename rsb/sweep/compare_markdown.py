"""compare.md: the verdicts, then the tables they are read from (the numbers of the verdicts appear in them, at
the same rounding), the cost of each side, and how each number was computed."""
from __future__ import annotations

from rsb.sweep import cost, testsets
from rsb.sweep.compare import FAR_BEYOND


def _f(v, digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _signed(v) -> str:
    return "-" if v is None else f"{v:+.2f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |"
                                                                            for r in rows]


def sides_table(doc: dict) -> list[str]:
    rows = []
    for r in doc["metrics"].values():
        for key, name in zip(("a", "b"), doc["names"]):
            d = r[key]
            if "value" in d:
                rows.append([r["label"], name, "1 (published)", _f(d["value"]), "-", "-", "-"])
            else:
                rows.append([r["label"], name, str(d["n"])] + [_f(d[k]) for k in ("mean", "std", "min", "max")])
    return _table(["metric", "side", "n", "mean", "std (ddof=1)", "min", "max"], rows)


def difference_table(doc: dict, level: str) -> list[str]:
    rows = []
    for r in doc["metrics"].values():
        t, b, p = r["t_interval"], r["bootstrap"], r["permutation"]
        how = f"exact, all {p['splits']:,} {p['kind']}" if p["exact"] else f"{p['resamples']:,} random {p['kind']}"
        rows.append([r["label"], r["design"], _signed(r["difference"]), f"{_signed(t['low'])} to {_signed(t['high'])}",
                     f"{_signed(b['low'])} to {_signed(b['high'])} ({b['method']})", f"{p['p']:.3f} ({how})",
                     _f(r["effect_size"])])
    a, b = doc["names"]
    return _table(["metric", "design", f"{a} - {b}", f"{level} CI (t)", f"{level} CI (bootstrap)",
                   "permutation p", "effect size"], rows)


def _test_set(metric: str, sets: dict) -> str:
    if metric == "gap":
        return "val and V2"
    images, assumed = testsets.images_for(metric.partition("_")[0], sets)
    return f"{images:,} images{' (assumed)' if assumed else ''}" if images else "-"


def noise_table(doc: dict) -> list[str]:
    a, b = doc["names"]
    rows, lines = [], []
    for m, r in doc["metrics"].items():
        n = r["noise"]
        sets = [doc["sides"][k]["sets"] for k in ("a", "b")]
        where = " / ".join(dict.fromkeys(_test_set(m, s) for s in sets))
        rows.append([r["label"], _f(n["seed_std"]["a"]), _f(n["seed_std"]["b"]), _f(n["sampling_std"]["a"]),
                     _f(n["sampling_std"]["b"]), where, n["larger"] or "-"])
        if n["larger"]:
            seed = max(v for v in n["seed_std"].values() if v is not None)
            samp = max(v for v in n["sampling_std"].values() if v is not None)
            pair = [("test-set sampling", samp), ("seed noise", seed)]
            big, small = pair if samp > seed else pair[::-1]
            lines.append(f"- {r['label']}: {big[0]} ({big[1]:.2f}) is larger than {small[0]} ({small[1]:.2f})")
    return _table(["metric", f"seed std {a}", f"seed std {b}", f"sampling std {a}", f"sampling std {b}", "test set",
                   "larger"], rows) + [""] + lines


def seeds_table(doc: dict, power: float, alpha: float) -> list[str]:
    first = next(iter(doc["metrics"].values()))
    heads = [f"delta {r['delta']:g}" for r in first["seeds_needed"] if not r["observed"]] + ["delta = observed"]
    rows = []
    for r in doc["metrics"].values():
        cells = [str(x["seeds"]) if x["seeds"] else "-" for x in r["seeds_needed"]]
        cells[-1] = f"{cells[-1]} (delta {r['seeds_needed'][-1]['delta']:.2f})"
        rows.append([r["label"], r["design"], _f(r["noise_std"]), *cells, _f(r["detectable"])])
    return _table(["metric", "design", "std used", *heads, "detectable now"], rows) + [
        "", f"Seeds per side (pairs for paired, seeds of A against a published value) for {100 * power:g}% power at "
            f"alpha = {alpha:g} (two-sided), from the noncentral t distribution; 'detectable now': the smallest "
            f"difference the seeds at hand detect with that power."]


def cost_table(doc: dict) -> list[str]:
    rows = []
    for key in ("a", "b"):
        s = doc["sides"][key]
        if s["kind"] == "published":
            continue
        for seed, c in s["cost"]["per_seed"].items():
            rows.append([s["name"], seed, cost.duration(c.get("train_seconds")), _f(c.get("devices"), 0),
                         cost.hours_text(c.get("device_hours"))])
        total = s["cost"]["total"]
        if total:
            rows.append([s["name"], "all", cost.duration(total["train_seconds"]), "",
                         cost.hours_text(total["device_hours"])])
    return _table(["side", "seed", "training time", "devices", "device-hours"], rows) if rows else [
        "No training times: the sides are tables without train_seconds, devices and device_hours columns."]


def method(doc: dict, level: str) -> list[str]:
    s = doc["settings"]
    return [
        f"- Difference: mean of A minus mean of B ({'per-seed differences, ' if s['paired'] else ''}"
        f"std with ddof=1). The {level} t interval is Welch's for independent seeds "
        f"(scipy.stats.ttest_ind, equal_var=False), the paired t interval with --paired (ttest_rel), the "
        f"one-sample t interval against a published value (ttest_1samp).",
        f"- Bootstrap: scipy.stats.bootstrap, BCa (percentile where BCa is undefined), {s['resamples']:,} "
        f"resamples, random seed {s['seed']}; each side resampled on its own (independent), or the per-seed "
        f"differences (paired, published).",
        f"- Permutation p (two-sided, scipy.stats.permutation_test, statistic: the difference of means): every "
        f"split of the seeds between the sides (sign flip of each difference when paired or against a "
        f"published value) when there are at most {s['resamples']:,}, else {s['resamples']:,} random ones "
        f"(seed {s['seed']}).",
        f"- Effect size: the difference over the pooled std (Cohen's d), over the std of the per-seed differences "
        f"(paired), or over A's std (published).",
        f"- Verdict: beyond seed noise when the t interval excludes 0 (the bootstrap interval is too narrow at a "
        f"few seeds); far beyond when also |effect size| >= {FAR_BEYOND:g}, where one seed of each side would tell "
        f"them apart.",
        "- Test-set sampling std: 100 sqrt(p (1 - p) / images) at the side's mean accuracy p: how far the score on "
        "this set may lie from the accuracy on all images like them. Both sides scored on the same images share "
        "it, so it does not widen the interval of their difference; seed noise is what a rerun on the same "
        "images moves.",
        f"- Cost: {cost.DEFINITION}."]


def markdown(doc: dict, figure_name: str) -> str:
    level = f"{100 * (1 - doc['settings']['alpha']):g}%"
    a, b = doc["names"]
    lines = [f"# {a} vs {b}", "", f"- A: {a} ({doc['sides']['a']['source']})",
             f"- B: {b} ({doc['sides']['b']['source']})", "", "## Verdict", ""]
    lines += [f"- {v}" for v in doc["verdicts"]] + [""]
    lines += ["## What it cost", ""] + [f"- {c}" for c in doc["cost"]] + [""] + cost_table(doc) + [""]
    if doc["notes"]:
        lines += ["## Notes", ""] + [f"- {n}" for n in doc["notes"]] + [""]
    lines += ["## Each side", ""] + sides_table(doc) + [""]
    lines += [f"## The difference ({a} - {b})", ""] + difference_table(doc, level) + [""]
    lines += ["## Seed noise and test-set sampling noise", ""] + noise_table(doc) + [""]
    lines += ["## Seeds a comparison needs", ""] + seeds_table(doc, doc["settings"]["power"],
                                                                doc["settings"]["alpha"]) + [""]
    lines += ["## Method", ""] + method(doc, level) + ["", f"![{figure_name}]({figure_name})"]
    return "\n".join(lines)
