"""The two sides of a comparison, each one of:
  a sweep folder   its finished seeds, scored as `report` scores them (the same per-seed cache), with each seed's
                   training cost from its run folder (rsb.sweep.cost)
  a CSV table      a `seed` column and score columns: the report's seeds.csv, rsb.validate's results.csv, or a
                   user's own table of runs; blank cells are scores not measured
  published        the released weights' scores as fixed values (--published a1|a2|a3|torchvision)
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from rsb.errors import UserError
from rsb.sweep import testsets
from rsb.sweep.cost import COST_COLUMNS, run_cost

SCORE_COLUMNS = ("val_top1", "val_top5", "v2_top1", "v2_top5", "gap", "real_top1", "real_top5")
DEFAULT_METRICS = ("val_top1", "v2_top1", "gap")

# timm's results tables (huggingface/pytorch-image-models, results/results-imagenet.csv,
# results-imagenetv2-matched-frequency.csv, results-imagenet-real.csv), the rows at 224 px of the released
# ResNet-50 weights: resnet50.a1_in1k, a2_in1k, a3_in1k (crop 0.95, bicubic) and tv_in1k (crop 0.875, bilinear).
PUBLISHED = {
    "a1": ("resnet50.a1_in1k", {"val_top1": 80.382, "val_top5": 94.598, "v2_top1": 68.470, "v2_top5": 87.590,
                                "real_top1": 85.712, "real_top5": 96.486}),
    "a2": ("resnet50.a2_in1k", {"val_top1": 79.828, "val_top5": 94.560, "v2_top1": 67.810, "v2_top5": 86.870,
                                "real_top1": 85.447, "real_top5": 96.492}),
    "a3": ("resnet50.a3_in1k", {"val_top1": 78.052, "val_top5": 93.780, "v2_top1": 65.670, "v2_top5": 85.680,
                                "real_top1": 84.480, "real_top5": 95.986}),
    "torchvision": ("resnet50.tv_in1k", {"val_top1": 76.156, "val_top5": 92.866, "v2_top1": 63.190,
                                         "v2_top5": 84.640, "real_top1": 82.969, "real_top5": 95.474}),
}
PUBLISHED_SOURCE = ("timm's results tables (results-imagenet.csv, results-imagenetv2-matched-frequency.csv, "
                    "results-imagenet-real.csv), the rows at 224 px")
PUBLISHED_NOTES = {"torchvision": "torchvision's own weights page gives 76.130 val top-1 for these weights "
                                  "(ResNet50_Weights.IMAGENET1K_V1); timm's table measures 76.156."}
PUBLISHED_SETS = {"val": {"name": "ImageNet-val", "images": 50_000},
                  "v2": {"name": "ImageNet-V2 matched-frequency", "images": 10_000},
                  "real": {"name": "ImageNet-ReaL", "images": None}}


@dataclass
class Side:
    name: str
    kind: str                                   # "sweep", "table" or "published"
    source: str
    values: dict[str, dict[int, float]] = field(default_factory=dict)  # metric -> {seed: value}
    fixed: dict[str, float] | None = None       # published: metric -> value
    sets: dict = field(default_factory=dict)    # rsb.sweep.testsets: prefix -> {"name", "images"}
    costs: dict[int, dict] | None = None        # seed -> rsb.sweep.cost.run_cost; None: not known
    raw: dict[str, dict[int, str]] = field(default_factory=dict)  # a table's other columns, read on demand
    notes: list[str] = field(default_factory=list)

    def has(self, metric: str) -> bool:
        return metric in (self.fixed if self.fixed is not None else self.values) or metric in self.raw

    def metric(self, metric: str) -> dict[int, float]:
        """{seed: value} of a column; a column that is not numbers is an error only when it is asked for."""
        if metric not in self.values and metric in self.raw:
            self.values[metric] = _numbers(self.raw[metric], metric, self.source)
        return self.values.get(metric, {})


def _numbers(cells: dict[int, str], column: str, source: str) -> dict[int, float]:
    out = {}
    for seed, cell in cells.items():
        if cell in ("", None):
            continue
        try:
            out[seed] = float(cell)
        except ValueError:
            raise UserError(f"column {column} of {source} is not a number for seed {seed} ('{cell}'); pick "
                            f"score columns with --metric.") from None
    return out


def published(name: str) -> Side:
    model, values = PUBLISHED[name]
    fixed = {**values, "gap": round(values["val_top1"] - values["v2_top1"], 3)}
    notes = [f"{name} (released weights {model}): {PUBLISHED_SOURCE}"]
    notes += [PUBLISHED_NOTES[name]] if name in PUBLISHED_NOTES else []
    return Side(f"{name} (released)", "published", f"{model}, {PUBLISHED_SOURCE}", fixed=fixed,
                sets=PUBLISHED_SETS, notes=notes)


def read_table(path: Path) -> Side:
    """A CSV file with a `seed` column; one row per seed."""
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            rows, columns = list(reader), list(reader.fieldnames or [])
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise UserError(f"cannot read {path} as a CSV table ({e}).") from None
    if "seed" not in columns:
        raise UserError(f"{path} has no seed column (its columns: {', '.join(columns) or 'none'}); add one with "
                        f"each run's seed, as the report's seeds.csv has.")
    if not rows:
        raise UserError(f"{path} has no rows; each side needs the scores of at least 2 seeds.")
    raw, seen = {c: {} for c in columns if c != "seed"}, set()
    for i, row in enumerate(rows, start=2):
        try:
            seed = int(float(row["seed"]))
        except (TypeError, ValueError):
            raise UserError(f"{path} line {i}: seed '{row['seed']}' is not a number.") from None
        if seed in seen:
            raise UserError(f"{path} has seed {seed} twice (line {i}); keep one row per seed (for a results.csv "
                            f"of several checkpoints per run, keep the final one).")
        seen.add(seed)
        for c in raw:
            raw[c][seed] = row.get(c)
    first = {c: next((v for v in raw[c].values() if v not in ("", None)), None) for c in raw}
    side = Side(_table_name(path), "table", str(path), raw=raw, sets=testsets.table_sets(first))
    if all(c in raw for c in COST_COLUMNS):
        side.costs = {s: {c: _cost_cell(raw[c][s]) for c in COST_COLUMNS} for s in sorted(seen)}
    return side


def _cost_cell(cell):
    try:
        return float(cell)
    except (TypeError, ValueError):
        return None


def _table_name(path: Path) -> str:
    """The file's stem; for a report's seeds.csv, its sweep's folder name."""
    if path.stem == "seeds" and path.parent.name == "report":
        return path.parent.parent.name
    return path.stem


def read_sweep(out: Path, device: str, workers, batch_size, log=print) -> Side:
    """A sweep folder's finished seeds, scored (and cached) as the report scores them."""
    from rsb.sweep.report import REPORT_DIR
    from rsb.sweep.scores import score_seeds
    from rsb.sweep.spec import run_dir_name
    from rsb.sweep.state import collect
    spec, statuses = collect(out)
    finished = [s.seed for s in statuses if s.state == "finished"]
    if not finished:
        raise UserError(f"no seed of {out} has finished yet, so that side is empty; see "
                        f"'python -m rsb.sweep status {out}'.")
    log(f"{out}: {len(finished)} finished seed(s) of {len(spec.seeds)}")
    scores = score_seeds(spec, out, finished, out / REPORT_DIR / "scores", device, workers, batch_size, log)
    values = {m: {s: float(scores[s][m]) for s in finished if scores[s].get(m) is not None} for m in SCORE_COLUMNS}
    side = Side(out.resolve().name, "sweep", str(out), values={m: v for m, v in values.items() if v},
                sets=testsets.sweep_sets(spec, scores),
                costs={s: run_cost(out / run_dir_name(s)) for s in finished})
    if len(finished) < len(spec.seeds):
        side.notes.append(f"{side.name}: {len(spec.seeds) - len(finished)} of its {len(spec.seeds)} seeds have not "
                          f"finished and are left out")
    return side


def load(source: str, device: str = "auto", workers=None, batch_size=None, log=print) -> Side:
    path = Path(source)
    if path.is_dir() and (path / "sweep.json").is_file():
        return read_sweep(path, device, workers, batch_size, log)
    if path.is_file():
        return read_table(path)
    raise UserError(f"{source} is neither a sweep folder (with sweep.json) nor a CSV file; give a sweep's --out "
                    f"folder or a table with a seed column.")
