"""The results table: one row per checkpoint, columns per data set, written as CSV and JSON.

This is the interface between validate.py and the seed sweep (which reads it with read_table), so the columns
are fixed here and nowhere else. Accuracies are percentages; a data set that was not scored is empty in the CSV
and null in the JSON; gap = val_top1 - v2_top1.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from rsb import runfolder
from rsb.errors import UserError

FORMAT = "rsb-validation-1"
INT_COLUMNS = ["epoch", "seed", "img_size", "val_images", "v2_images", "real_images"]
FLOAT_COLUMNS = ["crop_pct", "val_top1", "val_top5", "v2_top1", "v2_top5", "real_top1", "real_top5", "gap"]
COLUMNS = ["checkpoint", "run", "recipe", "model", "epoch", "seed", "img_size", "crop_pct", "interpolation",
           "val_top1", "val_top5", "v2_top1", "v2_top5", "real_top1", "real_top5", "gap",
           "val_images", "v2_images", "real_images", "v2_set"]
METRICS = ["val_top1", "val_top5", "v2_top1", "v2_top5", "real_top1", "real_top5", "gap"]
CSV_NAME, JSON_NAME = "results.csv", "results.json"


def make_row(**values) -> dict:
    """A row with every column (missing ones None), the gap filled in, accuracies rounded to 3 decimals."""
    row = {c: values.get(c) for c in COLUMNS}
    unknown = set(values) - set(COLUMNS)
    if unknown:
        raise ValueError(f"unknown table columns: {sorted(unknown)}")
    if row["gap"] is None and row["val_top1"] is not None and row["v2_top1"] is not None:
        row["gap"] = row["val_top1"] - row["v2_top1"]
    for c in FLOAT_COLUMNS:
        if row[c] is not None:
            row[c] = round(float(row[c]), 3 if c != "crop_pct" else 6)
    return row


def _atomic_write(path: Path, text: str) -> None:
    runfolder.write_text(path, text)


def write_table(rows: list[dict], out_dir: str | Path) -> tuple[Path, Path]:
    """Write results.csv and results.json into out_dir (created; existing files replaced atomically)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = [{c: r.get(c) for c in COLUMNS} for r in rows]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows([{c: "" if r[c] is None else r[c] for c in COLUMNS} for r in rows])
    csv_path, json_path = out / CSV_NAME, out / JSON_NAME
    _atomic_write(csv_path, buf.getvalue())
    _atomic_write(json_path, json.dumps({"format": FORMAT, "columns": COLUMNS, "rows": rows}, indent=2) + "\n")
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
            if not isinstance(doc, dict) or doc.get("format") != FORMAT:
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


def format_table(rows: list[dict]) -> str:
    """A fixed-width text table of the identifying columns and every metric that has a value in some row."""
    metrics = [c for c in METRICS if any(r.get(c) is not None for r in rows)]
    cols = ["checkpoint", "epoch", "seed"] + metrics
    cells = [[("-" if r.get(c) is None else f"{r[c]:.2f}" if isinstance(r[c], float) else str(r[c]))
              for c in cols] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cols, widths)))]
    for row in cells:
        lines.append("  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(row, widths))))
    return "\n".join(lines)
