"""`rsb-sweep compare A B`: two sides (rsb.sweep.sides) compared metric by metric (rsb.sweep.compare) against
seed noise and test-set sampling noise, with the seeds a comparison needs and what each side cost; written to
<out>/compare.md, compare.json and compare.png, and the verdicts printed."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from rsb.errors import UserError
from rsb.sweep import cost, sides, testsets
from rsb.sweep.compare import Settings, compare_metric, interval_of, verdict

FILES = ("compare.md", "compare.json", "compare.png")


def default_out(a: str, b: str) -> Path:
    def clean(name: str) -> str:
        return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "side"
    return Path(f"compare_{clean(a)}_vs_{clean(b)}")


def side_names(a: sides.Side, b: sides.Side, given: list[str] | None) -> tuple[str, str]:
    if given:
        return given[0], given[1]
    if a.name == b.name:
        return f"{a.name} (A)", f"{b.name} (B)"
    return a.name, b.name


def choose_metrics(asked: list[str] | None, a: sides.Side, b: sides.Side, names, notes: list[str]) -> list[str]:
    """--metric's columns, each on both sides; by default val top-1, V2 top-1 and the gap where both have them."""
    for side, name in ((a, names[0]), (b, names[1])):
        for m in asked or []:
            if not side.has(m):
                have = sorted(side.fixed or set(side.values) | set(side.raw))
                raise UserError(f"{name} ({side.source}) has no {m}; its columns: {', '.join(have)}.")
    if asked:
        return list(dict.fromkeys(asked))
    chosen = [m for m in sides.DEFAULT_METRICS if a.has(m) and b.has(m)]
    for m in sides.DEFAULT_METRICS:
        if m not in chosen and (a.has(m) or b.has(m)):
            notes.append(f"{m} left out: only {names[0] if a.has(m) else names[1]} has it")
    if not chosen:
        raise UserError(f"{names[0]} and {names[1]} share none of {', '.join(sides.DEFAULT_METRICS)}; name columns "
                        f"both have with --metric.")
    return chosen


def _label(metric: str, a: sides.Side, b: sides.Side, notes: list[str]) -> str:
    """The metric's name with the set it was scored on; a table that does not name its sets takes the other
    side's names (said in a note), and two different named sets are both shown (and noted)."""
    prefix = metric.partition("_")[0]
    names = [(s.sets.get(prefix) or {}).get("name") for s in (a, b)]
    named = [n if n not in (None, testsets.GENERIC.get(prefix)) else None for n in names]
    label_a, label_b = (testsets.metric_label(metric, s.sets) for s in (a, b))
    if metric == "gap" or named[0] == named[1]:
        return label_a
    if None in named:
        known = named[0] or named[1]
        notes.append(f"{metric}: {'A' if named[0] is None else 'B'}'s table does not name its test set; taken to "
                     f"be the other side's ({known})")
        return label_a if named[0] else label_b
    notes.append(f"{metric}: A was scored on {named[0]} and B on {named[1]}, different test sets")
    return f"{label_a} vs {label_b}"


def _means(side: sides.Side) -> dict:
    if side.fixed is not None:
        return dict(side.fixed)
    return {m: float(np.mean(list(side.metric(m).values()))) for m in ("val_top1", "v2_top1", "val_top5", "v2_top5",
                                                                        "real_top1", "real_top5", "gap")
            if side.has(m) and side.metric(m)}


def noise(metric: str, a: sides.Side, b: sides.Side, r: dict) -> dict:
    """Seed noise measured beside the test-set sampling deviation of each side's mean score."""
    seed = {"a": r["a"]["std"], "b": r["b"].get("std")}
    sampling, assumed = {}, False
    for key, side in (("a", a), ("b", b)):
        sampling[key], was_assumed = testsets.sampling_std(metric, _means(side), side.sets)
        assumed |= was_assumed and sampling[key] is not None
    seed_max = max((v for v in seed.values() if v is not None), default=None)
    samp_max = max((v for v in sampling.values() if v is not None), default=None)
    dominant = None
    if seed_max is not None and samp_max is not None:
        dominant = "test-set sampling" if samp_max > seed_max else "seed"
    return {"seed_std": seed, "sampling_std": sampling, "sampling_images_assumed": assumed, "larger": dominant}


def side_doc(side: sides.Side, name: str) -> dict:
    costs = side.costs or {}
    doc = {"name": name, "kind": side.kind, "source": side.source, "sets": side.sets, "notes": side.notes}
    if side.fixed is not None:
        doc["values"] = side.fixed
    else:
        doc["cost"] = {"per_seed": {str(k): v for k, v in costs.items()},
                       "total": cost.total(list(costs.values())) if side.costs is not None else None}
    return doc


def cost_lines(doc: dict) -> list[str]:
    lines = []
    for key in ("a", "b"):
        s = doc["sides"][key]
        if s["kind"] == "published":
            continue
        total = s["cost"]["total"]
        lines.append(cost.cost_line(s["name"], total) if total else
                     f"{s['name']}: cost not known (no training times in its table)")
    return lines


def compare_sides(a: sides.Side, b: sides.Side, metrics: list[str] | None, s: Settings,
                  names: list[str] | None = None) -> dict:
    """Everything compare writes, as one document."""
    if b.fixed is not None and s.paired:
        raise UserError("--paired compares the same seeds on both sides; against --published there is one value, "
                        "so drop --paired.")
    names = side_names(a, b, names)
    notes = list(a.notes) + list(b.notes)
    chosen = choose_metrics(metrics, a, b, names, notes)
    if b.fixed is None and not s.paired and set(a.metric(chosen[0])) == set(b.metric(chosen[0])):
        notes.append("both sides ran the same seeds: if only the procedure differs, each seed's initialisation and "
                     "data order match on both sides, and --paired compares the per-seed differences")
    results = {}
    for m in chosen:
        label = _label(m, a, b, notes)
        fixed = b.fixed[m] if b.fixed is not None else None
        r = compare_metric(m, names, a.metric(m), None if fixed is not None else b.metric(m), fixed, s)
        r["label"], r["noise"] = label, noise(m, a, b, r)
        r["decided_on"] = list(interval_of(r))
        r["verdict"] = verdict(label, names, r, s, testsets.is_percentage(m))
        results[m] = r
    doc = {"names": list(names), "sides": {"a": side_doc(a, names[0]), "b": side_doc(b, names[1])},
           "settings": {"alpha": s.alpha, "power": s.power, "deltas": list(s.deltas), "resamples": s.resamples,
                        "seed": s.seed, "paired": s.paired},
           "metrics": results, "verdicts": [r["verdict"] for r in results.values()], "notes": notes}
    doc["cost"] = cost_lines(doc)
    return doc


def figure(doc: dict, path: Path) -> Path:
    from rsb.run import plots  # matplotlib loads only here
    names, panels = doc["names"], []
    for m, r in doc["metrics"].items():
        boot = r["bootstrap"]
        panels.append({"title": r["label"], "names": names, "a": r["a"]["values"], "b": r["b"].get("values"),
                       "fixed": r["b"].get("value"), "difference": r["difference"],
                       "unit": "points" if testsets.is_percentage(m) else "",
                       "intervals": [(r["t_interval"]["name"], r["t_interval"]["low"], r["t_interval"]["high"]),
                                     (f"bootstrap ({boot['method']})", boot["low"], boot["high"])]})
    return plots.comparison(panels, path, f"{names[0]} vs {names[1]}: scores per seed and the difference "
                                          f"({100 * (1 - doc['settings']['alpha']):g}% intervals)")


def write(doc: dict, out: Path) -> list[str]:
    from rsb.sweep.compare_markdown import markdown
    out.mkdir(parents=True, exist_ok=True)
    figure(doc, out / "compare.png")
    (out / "compare.json").write_text(json.dumps(doc, indent=2, default=_jsonable) + "\n")
    (out / "compare.md").write_text(markdown(doc, "compare.png") + "\n")
    return list(FILES)


def _jsonable(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON: {type(value)}")


def run(a_source: str, b_source: str | None, published: str | None, metrics: list[str] | None, s: Settings,
        out: Path | None, names: list[str] | None = None, device: str = "auto", workers=None, batch_size=None,
        log=print) -> tuple[dict, Path]:
    if (b_source is None) == (published is None):
        raise UserError("compare needs a second side: give B (a sweep folder or CSV file) or --published "
                        "a1|a2|a3|torchvision, not both.")
    a = sides.load(a_source, device, workers, batch_size, log)
    b = sides.published(published) if published else sides.load(b_source, device, workers, batch_size, log)
    doc = compare_sides(a, b, metrics, s, names)
    out = out or default_out(*doc["names"])
    write(doc, out)
    return doc, out
