"""The run's records in its folder: metrics.csv (one row per epoch), curves.png drawn from its rows, and
summary.json (the console and train.log: rsb.run.console; TensorBoard and W&B: rsb.run.trackers)."""
from __future__ import annotations

import csv
from pathlib import Path

from rsb.run import folder as run_folder

METRIC_FIELDS = ["epoch", "step", "train_loss", "train_top1", "lr", "val_top1", "val_top5", "val_loss", "ema_top1",
                 "ema_top5", "images_per_sec", "epoch_seconds", "skipped_images", "nonfinite_steps", "precision",
                 "note"]


class MetricsLog:
    """metrics.csv (rewritten atomically per row), and curves.png redrawn from the rows when `curves_title` is
    given."""

    def __init__(self, run_dir: Path, enabled: bool, curves_title: str | None = None):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / run_folder.METRICS
        self.enabled, self.curves_title = enabled, curves_title

    def rows(self) -> list[dict]:
        return run_folder.read_metrics(self.run_dir)

    def truncate_after(self, epoch: int) -> None:
        """Drop rows of epochs after `epoch` (written by a run that was interrupted before its checkpoint)."""
        if not self.enabled or not self.path.exists():
            return
        keep = [r for r in self.rows() if int(r["epoch"]) <= epoch]
        self._write(keep)

    def _write(self, rows: list[dict]) -> None:
        with run_folder.atomic_path(self.path) as tmp, open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=METRIC_FIELDS)
            w.writeheader()
            w.writerows(rows)

    def append(self, row: dict) -> None:
        if not self.enabled:
            return
        self._write(self.rows() + [{k: row.get(k, "") for k in METRIC_FIELDS}])
        if self.curves_title is not None and row.get("train_loss") != "nan":
            plot_curves(self.rows(), self.run_dir / run_folder.CURVES, self.curves_title)


def plot_curves(rows: list[dict], path: Path, title: str) -> None:
    """curves.png: train loss, learning rate and val top-1/top-5 against epoch."""
    from rsb.run.plots import curves  # matplotlib loads only when a figure is drawn
    curves({"run": rows}, path, title)


def epoch_row(epoch: int, step: int, stats, val: dict, ema_val: dict, precision: str) -> dict:
    """One metrics.csv row: the epoch's training statistics (rsb.training.engine.EpochStats; train_top1 on the
    augmented training batches, blank under Mixup/CutMix) at global optimizer step `step`, and its evaluations,
    which compute in the run's precision. An epoch resumed mid-way says so in `note` (its statistics cover the
    whole epoch, or are marked partial where the checkpoint carried no running totals)."""
    return {"epoch": epoch, "step": step, "train_loss": round(stats.loss, 5),
            "train_top1": round(stats.train_top1, 3) if stats.train_top1 is not None else "", "lr": stats.lr,
            "val_top1": round(val["top1"], 3) if val else "", "val_top5": round(val["top5"], 3) if val else "",
            "val_loss": round(val["loss"], 5) if val else "",
            "ema_top1": round(ema_val["top1"], 3) if ema_val else "",
            "ema_top5": round(ema_val["top5"], 3) if ema_val else "",
            "images_per_sec": round(stats.images_per_sec, 1), "epoch_seconds": round(stats.seconds, 1),
            "skipped_images": stats.skipped_images, "nonfinite_steps": stats.nonfinite_skipped,
            "precision": precision, "note": stats.note}


def run_summary(cfg, derived, best: dict, rows: list[dict], last_val: dict, world_size: int, seconds: float,
                run_dir: Path) -> dict:
    """summary.json: the final and best scores from metrics.csv's rows, and how the run was computed."""
    final = rows[-1] if rows else {}
    return {
        "recipe": cfg.name, "epochs": derived.epochs, "seed": cfg.train.seed,
        "final_epoch": int(final["epoch"]) if final else None,
        "final_val_top1": float(final["val_top1"]) if final.get("val_top1") else None,
        "final_val_top5": float(final["val_top5"]) if final.get("val_top5") else None,
        "best_val_top1": best.get("top1"), "best_epoch": best.get("epoch"),
        "val_images_scored": last_val.get("images"),
        "world_size": world_size, "steps_per_epoch": derived.steps_per_epoch, "total_steps": derived.total_steps,
        "precision": derived.precision, "precision_reason": derived.precision_reason,
        "train_seconds_this_session": round(seconds, 1), "run_dir": str(run_dir),
    }
