"""The report of a sweep: every finished seed's final-epoch scores, the statistics of the study, the plots,
and a note of the seeds left out, written to <out>/report/ and summarised on stdout.

Files: seeds.csv and seeds.md (one row per finished seed: scores, the sets scored and their sizes, training time
and device-hours), report.md (tables, statistics, correlation, cost, notes, figures), report.json (the same
numbers for programs), hist_val_top1.png, hist_v2_top1.png, val_vs_v2.png, curves.png, and scores/ (the
per-seed evaluation cache). Every label names the set actually scored (rsb.sweep.testsets): a sample sweep's
"val" is the sample's val split, not ImageNet-val."""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from rsb.run import plots
from rsb.run import folder as run_folder
from rsb.errors import UserError
from rsb.sweep import cost, stats, testsets
from rsb.sweep.scores import score_seeds
from rsb.sweep.spec import format_seeds, run_dir_name
from rsb.sweep.state import collect, first_epoch_loss

SCORE_COLUMNS = ["val_top1", "val_top5", "v2_top1", "v2_top5", "gap"]
# v2_set as rsb.validate's results table writes it ("matched-frequency", "sample"); val_set the set's name
COLUMNS = ["seed", *SCORE_COLUMNS, "first_epoch_loss", "data_order", "val_set", "val_images", "v2_set",
           "v2_images", *cost.COST_COLUMNS]
STATISTICS = ["val_top1", "v2_top1", "val_top5", "v2_top5", "gap"]
REPORT_DIR = "report"


def seed_rows(out: Path, seeds: list[int], scores: dict[int, dict], sets: dict | None = None) -> list[dict]:
    rows = []
    for seed in seeds:
        s = scores[seed]
        rows.append({"seed": seed, **{k: s.get(k) for k in SCORE_COLUMNS},
                     "first_epoch_loss": first_epoch_loss(out / run_dir_name(seed)),
                     "data_order": s.get("data_order"), "val_set": ((sets or {}).get("val") or {}).get("name"),
                     "val_images": s.get("val_images"), "v2_set": s.get("v2_set"), "v2_images": s.get("v2_images"),
                     **cost.run_cost(out / run_dir_name(seed))})
    return rows


def label(key: str, sets: dict) -> str:
    return testsets.metric_label(key, sets)


def analyse(rows: list[dict]) -> dict:
    """Statistics per score, val-vs-V2 correlation, best seeds, and how many distinct first epochs."""
    result = {"statistics": {}, "correlation": {}, "best": {}}
    for key in STATISTICS:
        vals = [r[key] for r in rows if r.get(key) is not None]
        if vals:
            result["statistics"][key] = stats.describe(vals)
    pairs = [(r["val_top1"], r["v2_top1"]) for r in rows if r.get("val_top1") is not None
             and r.get("v2_top1") is not None]
    if pairs:
        x, y = [p[0] for p in pairs], [p[1] for p in pairs]
        result["correlation"] = {"n": len(pairs), "pearson": stats.pearson(x, y), "spearman": stats.spearman(x, y)}
    for key in ("val_top1", "v2_top1"):
        b = stats.best([r["seed"] for r in rows], [r.get(key) for r in rows])
        if b:
            result["best"][key] = {"seed": b[0], "value": b[1]}
    losses = [r["first_epoch_loss"] for r in rows if r.get("first_epoch_loss") is not None]
    orders = [r["data_order"] for r in rows if r.get("data_order")]
    result["distinct"] = {"first_epoch_loss": len(set(losses)), "first_epoch_loss_of": len(losses),
                          "data_order": len(set(orders)), "data_order_of": len(orders)}
    return result


def left_out(statuses) -> dict:
    """Seeds not in the statistics, by state, with failure reasons."""
    by_state = {}
    for s in statuses:
        if s.state != "finished":
            by_state.setdefault(s.state, []).append(s.seed)
    failed = {s.seed: s.reason for s in statuses if s.state == "failed"}
    return {"by_state": by_state, "failed_reasons": failed}


def _fmt(v, digits: int = 2, none: str = "-") -> str:
    if v is None:
        return none
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _cell(row: dict, column: str) -> str:
    if column == "device_hours":
        return cost.hours_text(row[column])
    return _fmt(row[column], {"first_epoch_loss": 4, "train_seconds": 1}.get(column, 2))


def seeds_markdown(rows: list[dict]) -> str:
    return _md_table(COLUMNS, [[_cell(r, c) for c in COLUMNS] for r in rows])


def stats_markdown(analysis: dict, sets: dict) -> str:
    header = ["score", "n", "mean", "std (ddof=1)", "min", "max", "median", "max - min"]
    body = [[label(key, sets), str(d["n"])] + [_fmt(d[k], 3) for k in ("mean", "std", "min", "max", "median",
                                                                        "range")]
            for key in STATISTICS if (d := analysis["statistics"].get(key))]
    return _md_table(header, body)


def summary_lines(doc: dict) -> list[str]:
    a, n_total, n = doc["analysis"], doc["seeds_total"], len(doc["rows"])
    lines = [f"sweep {doc['sweep']}: {n} of {n_total} seeds finished and scored at their final epoch "
             f"({doc['epochs']})" + ("" if n == n_total else " -- PARTIAL sweep")]
    sets = doc["sets"]
    for key in STATISTICS[:2]:
        d = a["statistics"].get(key)
        if d:
            lines.append(f"{label(key, sets)}: mean {_fmt(d['mean'], 3)}, std {_fmt(d['std'], 3)} (sample, ddof=1), "
                         f"median {_fmt(d['median'], 3)}, min {_fmt(d['min'], 2)}, max {_fmt(d['max'], 2)}, "
                         f"max-min {_fmt(d['range'], 2)}")
    c = a.get("correlation")
    if c:
        lines.append(f"val vs V2 top-1 over {c['n']} seeds: Pearson {_fmt(c['pearson'], 3, 'undefined')}, "
                     f"Spearman {_fmt(c['spearman'], 3, 'undefined')}"
                     + (" (undefined: a constant series or fewer than 2 seeds)"
                        if c["pearson"] is None or c["spearman"] is None else ""))
    for key in ("val_top1", "v2_top1"):
        b = a["best"].get(key)
        if b:
            lines.append(f"best seed on {label(key, sets)}: {b['seed']} ({b['value']:.2f})")
    lines.append(cost.cost_line("cost", doc["cost"]))
    d = a["distinct"]
    lines.append(f"first epoch: {d['data_order']} distinct data orders among {d['data_order_of']} seeds, "
                 f"{d['first_epoch_loss']} distinct train losses among {d['first_epoch_loss_of']}")
    lo = doc["left_out"]
    for state, seeds in lo["by_state"].items():
        lines.append(f"not in the statistics: {len(seeds)} {state} seed(s): {format_seeds(seeds)}")
    for seed, reason in list(lo["failed_reasons"].items())[:10]:
        lines.append(f"  seed {seed} failed: {reason}")
    return lines


def write_csv(rows: list[dict], path: Path) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows([{c: "" if r[c] is None else r[c] for c in COLUMNS} for r in rows])


def make_plots(out: Path, folder: Path, rows: list[dict], analysis: dict, title: str, sets: dict) -> list[str]:
    made = []
    for key in STATISTICS[:2]:
        vals = [r[key] for r in rows if r.get(key) is not None]
        if vals:
            name = label(key, sets)
            plots.histogram(vals, folder / f"hist_{key}.png", f"{name} at the final epoch, {len(vals)} seeds",
                            f"{name} (%)", "seeds")
            made.append(f"hist_{key}.png")
    pairs = [r for r in rows if r.get("val_top1") is not None and r.get("v2_top1") is not None]
    if pairs:
        c = analysis["correlation"]
        heading = (f"val vs V2, Pearson {_fmt(c['pearson'], 2, 'undefined')}, "
                   f"Spearman {_fmt(c['spearman'], 2, 'undefined')}")
        plots.scatter([r["seed"] for r in pairs], [r["val_top1"] for r in pairs], [r["v2_top1"] for r in pairs],
                      folder / "val_vs_v2.png", heading, f"{label('val_top1', sets)} (%)",
                      f"{label('v2_top1', sets)} (%)")
        made.append("val_vs_v2.png")
    metrics = {f"seed {r['seed']}": run_folder.read_metrics(out / run_dir_name(r["seed"])) for r in rows}
    plots.curves(metrics, folder / "curves.png", f"{title}: training curves of {len(metrics)} seeds",
                 plots.SWEEP_PANELS)
    made.append("curves.png")
    return made


def build_report(out: str | Path, device: str = "auto", workers: int | None = None,
                 batch_size: int | None = None, log=print, scorer=score_seeds) -> dict:
    """`scorer`: score_seeds here, or rsb.sweep.scores.score_on_slurm (with its Slurm options bound)."""
    out = Path(out)
    spec, statuses = collect(out)
    finished = [s.seed for s in statuses if s.state == "finished"]
    if not finished:
        raise UserError(f"no seed of {out} has finished yet; see 'python -m rsb.sweep status {out}'.")
    folder = out / REPORT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    scores = scorer(spec, out, finished, folder / "scores", device, workers, batch_size, log)
    sets = testsets.sweep_sets(spec, scores)
    rows = seed_rows(out, finished, scores, sets)
    analysis = analyse(rows)
    title = f"{os.path.basename(spec.recipe).removesuffix('.yaml')} sweep"
    doc = {"sweep": str(out), "recipe": spec.recipe, "epochs": spec.epochs, "data": spec.data or "built-in sample",
           "imagenet_v2": spec.imagenet_v2, "seeds_total": len(spec.seeds), "rows": rows, "analysis": analysis,
           "left_out": left_out(statuses), "std": "sample standard deviation (ddof=1)", "sets": sets,
           "cost": cost.total(rows), "cost_definition": cost.DEFINITION}
    doc["figures"] = make_plots(out, folder, rows, analysis, title, sets)
    write_csv(rows, folder / "seeds.csv")
    (folder / "seeds.md").write_text(seeds_markdown(rows) + "\n")
    (folder / "report.json").write_text(json.dumps(doc, indent=2) + "\n")
    summary = summary_lines(doc)
    md = [f"# {title}: {out}", "", *[f"- {line.strip()}" for line in summary], "",
          "## Final-epoch scores per seed", "", seeds_markdown(rows), "",
          "## Statistics (std is the sample standard deviation, ddof=1)", "", stats_markdown(analysis, sets), "",
          "## What it cost", "", f"- {cost.cost_line('all seeds', doc['cost'])}", f"- {cost.DEFINITION}", "",
          "## Figures", ""] + [f"![{f}]({f})" for f in doc["figures"]]
    (folder / "report.md").write_text("\n".join(md) + "\n")
    doc["summary"] = summary
    return doc
