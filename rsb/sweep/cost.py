"""What a run cost, from its run folder: training time and device-hours.

Training time is the sum of metrics.csv's epoch_seconds over the run's epochs. Each row is written when an epoch
ends and a resumed run keeps the rows of its earlier sessions, so the sum covers every part of a resumed run,
not only the last (summary.json's train_seconds_this_session is the last part alone). An epoch resumed in its
middle timed only its resumed part: it is scaled to the whole epoch at the rate measured in that part (its row's
images_per_sec). Not counted: start-up, evaluation and checkpoint writes, and work lost to an interruption
after the last checkpoint.

Device-hours are the devices (the run's processes, one per GPU; resolved.yaml's derived.world_size, as of the
last session) times the training time.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from rsb.run import folder as run_folder

COST_COLUMNS = ("train_seconds", "devices", "device_hours")
DEFINITION = ("training time: metrics.csv's epoch_seconds summed over every epoch of every session of a resumed "
              "run (an epoch resumed in its middle scaled to the whole epoch at its measured rate; start-up, "
              "evaluation, checkpoint writes and work lost to an interruption not counted); device-hours: the "
              "run's devices (processes) times that time")
ROUNDING = 0.05  # metrics.csv keeps epoch_seconds and images_per_sec to one decimal


def _number(row: dict, key: str) -> float | None:
    try:
        return float(row[key])
    except (KeyError, TypeError, ValueError):
        return None


def _derived(run_dir: Path) -> dict:
    try:
        doc = yaml.safe_load((Path(run_dir) / run_folder.RESOLVED).read_text())
        return dict(doc.get("derived") or {})
    except (OSError, AttributeError, yaml.YAMLError):
        return {}


def epoch_seconds(rows: list[dict], global_batch: int | None) -> float:
    """The training seconds of metrics.csv's rows, an epoch resumed in its middle scaled to the whole epoch."""
    total, previous_step = 0.0, 0
    for row in rows:
        seconds, step = _number(row, "epoch_seconds"), _number(row, "step")
        if seconds is None:
            continue
        rate = _number(row, "images_per_sec")
        if step is not None and rate and global_batch:
            epoch_images = (step - previous_step) * global_batch
            most_seen = (rate + ROUNDING) * (seconds + ROUNDING)  # the most images the rounded values allow
            if 0 < most_seen < epoch_images:  # this session trained part of the epoch only
                seconds = epoch_images / rate
        total += seconds
        if step is not None:
            previous_step = step
    return total


def run_cost(run_dir: str | Path) -> dict:
    """{"train_seconds", "devices", "device_hours"} of one run folder; None where a file is missing."""
    run_dir = Path(run_dir)
    rows = [r for r in run_folder.read_metrics(run_dir) if r.get("train_loss") not in ("", None, "nan")]
    derived = _derived(run_dir)
    devices = derived.get("world_size")
    if devices is None:
        from rsb.sweep.state import read_summary
        devices = (read_summary(run_dir) or {}).get("world_size")
    seconds = round(epoch_seconds(rows, derived.get("global_batch")), 1) if rows else None
    return {"train_seconds": seconds, "devices": None if devices is None else int(devices),
            "device_hours": seconds * int(devices) / 3600 if seconds is not None and devices else None}


def total(costs: list[dict]) -> dict:
    """The sum over seeds, with how many seeds had a known cost."""
    known = [c for c in costs if c.get("device_hours") is not None]
    return {"seeds": len(costs), "seeds_known": len(known),
            "train_seconds": sum(float(c["train_seconds"]) for c in known) if known else None,
            "device_hours": sum(float(c["device_hours"]) for c in known) if known else None,
            "devices": sorted({int(c["devices"]) for c in known})}


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def hours_text(hours: float | None) -> str:
    """Device-hours to 3 significant figures (a sample run is a few thousandths, an ImageNet run hundreds)."""
    return "-" if hours is None else f"{hours:.3g}"


def cost_line(name: str, t: dict) -> str:
    """One sentence for a side or a sweep: seeds, device-hours, training time per seed."""
    if not t["seeds_known"]:
        return f"{name}: cost not known (no training times in its run folders or table)"
    per = t["train_seconds"] / t["seeds_known"]
    devices = "/".join(str(d) for d in t["devices"]) or "?"
    part = "" if t["seeds_known"] == t["seeds"] else f" (known for {t['seeds_known']} of {t['seeds']} seeds)"
    return (f"{name}: {hours_text(t['device_hours'])} device-hours in all{part}, {duration(per)} of training per "
            f"seed on {devices} device(s)")
