"""The results table: one row per checkpoint, columns per data set, written as CSV and JSON.

This is the interface between validate.py and the seed sweep (which reads it with read_table), so the columns
are fixed here and nowhere else. Accuracies are percentages; a data set that was not scored is empty in the CSV
and null in the JSON; gap = val_top1 - v2_top1. As in timm's results files, <set>_top1_err = 100 - <set>_top1
(and top-5 alike) and param_count is in millions, rounded to 2 decimals.

A table already at the results file is added to, never silently replaced (merge_rows): a new row replaces the one
for the same checkpoint at the same test settings; the other rows stay.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from rsb.run import folder as run_folder
from rsb.errors import UserError

FORMAT = "rsb-validation-2"
READABLE_FORMATS = ("rsb-validation-1", FORMAT)  # version 1 had no param_count or *_err columns
SETS = ("val", "v2", "real")
ACCURACIES = [f"{s}_{k}" for s in SETS for k in ("top1", "top5")]
ERRORS = {f"{a}_err": a for a in ACCURACIES}  # error column -> the accuracy it is 100 minus
INT_COLUMNS = ["epoch", "seed", "img_size", "val_images", "v2_images", "real_images"]
FLOAT_COLUMNS = ["param_count", "crop_pct", *ACCURACIES, *ERRORS, "gap"]
COLUMNS = ["checkpoint", "run", "recipe", "model", "param_count", "epoch", "seed", "img_size", "crop_pct",
           "interpolation", *[c for a in ACCURACIES for c in (a, f"{a}_err")], "gap",
           "val_images", "v2_images", "real_images", "v2_set"]
METRICS = [*ACCURACIES, "gap"]  # the printed table's score columns
ROW_KEY = ("checkpoint", "img_size", "crop_pct", "interpolation")  # what a new row replaces an old one by
CSV_NAME, JSON_NAME = "results.csv", "results.json"


def make_row(**values) -> dict:
    """A row with every column (missing ones None), the gap and errors filled in, accuracies rounded to 3
    decimals."""
    row = {c: values.get(c) for c in COLUMNS}
    unknown = set(values) - set(COLUMNS)
    if unknown:
        raise ValueError(f"unknown table columns: {sorted(unknown)}")
    if row["gap"] is None and row["val_top1"] is not None and row["v2_top1"] is not None:
        row["gap"] = row["val_top1"] - row["v2_top1"]
    for c in FLOAT_COLUMNS:
        if row[c] is not None:
            row[c] = round(float(row[c]), 3 if c != "crop_pct" else 6)
    for err, acc in ERRORS.items():
        if row[err] is None and row[acc] is not None:
            row[err] = round(100.0 - row[acc], 3)  # from the rounded accuracy: the two add up to 100
    return row


def table_files(results_file: str | Path) -> tuple[Path, Path]:
    """The CSV and JSON files of a table: the named one and its twin with the other suffix beside it."""
    path = Path(results_file)
    if path.suffix not in (".csv", ".json"):
        raise UserError(f"--results-file {path} must end in .csv or .json (the other file is written beside it).")
    return path.with_suffix(".csv"), path.with_suffix(".json")


def write_table(rows: list[dict], out_dir: str | Path) -> tuple[Path, Path]:
    """Write results.csv and results.json into out_dir (created; existing files replaced atomically)."""
    return write_results(rows, Path(out_dir) / CSV_NAME)


def write_results(rows: list[dict], results_file: str | Path) -> tuple[Path, Path]:
    """Write the table to results_file and its CSV/JSON twin (folder created; files replaced atomically)."""
    csv_path, json_path = table_files(results_file)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    rows = [{c: r.get(c) for c in COLUMNS} for r in rows]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows([{c: "" if r[c] is None else r[c] for c in COLUMNS} for r in rows])
    run_folder.write_text(csv_path, buf.getvalue())
    run_folder.write_text(json_path, json.dumps({"format": FORMAT, "columns": COLUMNS, "rows": rows}, indent=2) + "\n")
    return csv_path, json_path


def _typed(row: dict) -> dict:
    out = {}
    for c in COLUMNS:
        v = row.get(c)
        if v in ("", None):
            out[c] = None
        elif c in INT_COLUMNS:
            out[c] = int(float(v))
        elif c in FLOAT_COLUMNS:
            out[c] = float(v)
        else:
            out[c] = str(v)
    return out


def read_table(path: str | Path) -> list[dict]:
    """Rows of a table written by write_table: from results.json, results.csv, or a folder holding them.
    Values come back typed (int, float, str; None where not scored), the same from either file."""
    path = Path(path)
    if path.is_dir():
        path = path / JSON_NAME if (path / JSON_NAME).is_file() else path / CSV_NAME
    if not path.is_file():
        raise UserError(f"results table {path} does not exist.")
    try:
        if path.suffix == ".json":
            doc = json.loads(path.read_text())
            if not isinstance(doc, dict) or doc.get("format") not in READABLE_FORMATS:
                raise ValueError(f"not a {FORMAT} table")
            rows = doc["rows"]
        else:
            with open(path, newline="") as f:
                reader = csv.DictReader(f)
                if reader.fieldnames is None or "checkpoint" not in reader.fieldnames:
                    raise ValueError("no 'checkpoint' column")
                rows = list(reader)
        return [_typed(r) for r in rows]
    except (ValueError, KeyError, TypeError) as e:
        raise UserError(f"{path} is not a validation results table ({e}).") from None


def existing_rows(results_file: str | Path) -> list[dict]:
    """The table already at results_file (its JSON preferred, else its CSV; neither is an empty table). Read
    before scoring, so that a file that is not a results table stops the command before any work is done."""
    existing = [p for p in reversed(table_files(results_file)) if p.is_file()]  # the JSON first
    try:
        return read_table(existing[0]) if existing else []
    except UserError as e:
        raise UserError(f"{str(e).rstrip('.')}; it is not overwritten: name another --results-file.") from None


def merge_rows(old: list[dict], new: list[dict]) -> tuple[list[dict], list[dict]]:
    """(the table to write, the old rows replaced). An old row with the same checkpoint and test settings
    (ROW_KEY) as a new one is dropped; the others keep their order, and the new rows come after them."""
    key = lambda r: tuple(r.get(c) for c in ROW_KEY)  # noqa: E731
    new_keys = {key(r) for r in new}
    replaced = [r for r in old if key(r) in new_keys]
    kept = [make_row(**r) for r in old if key(r) not in new_keys]  # make_row fills what version 1 lacked
    return kept + list(new), replaced


def summary_line(row: dict) -> str:
    """One row's scores in a sentence, for the progress output."""
    parts = []
    for key, label in (("val", "val"), ("v2", f"V2 ({row['v2_set']})"), ("real", "ReaL")):
        if row.get(f"{key}_top1") is not None:
            parts.append(f"{label} top-1 {row[f'{key}_top1']:.2f} top-5 {row[f'{key}_top5']:.2f}")
    if row.get("gap") is not None:
        parts.append(f"gap (val - V2) {row['gap']:.2f}")
    return "; ".join(parts)


def format_table(rows: list[dict]) -> str:
    """A fixed-width text table of the identifying columns and every metric that has a value in some row."""
    metrics = [c for c in METRICS if any(r.get(c) is not None for r in rows)]
    cols = ["checkpoint", "param_count", "epoch", "seed"] + metrics
    cells = [[("-" if r.get(c) is None else f"{r[c]:.2f}" if isinstance(r[c], float) else str(r[c]))
              for c in cols] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cols, widths)))]
    for row in cells:
        lines.append("  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(row, widths))))
    return "\n".join(lines)
