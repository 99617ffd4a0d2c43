"""A run's records (rsb.run.metrics): metrics.csv rows written whole, rows of epochs after a resumed checkpoint
dropped, curves.png drawn from the rows, an epoch's row and summary.json's fields."""
from __future__ import annotations

import csv
import os
from types import SimpleNamespace

from rsb.run import folder as run_folder
from rsb.run.metrics import METRIC_FIELDS, MetricsLog, epoch_row, run_summary

PNG = b"\x89PNG\r\n\x1a\n"


def _header(run_dir) -> list[str]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return next(csv.reader(f))


def test_metrics_log_writes_through_the_helper(tmp_path):
    log = MetricsLog(tmp_path, enabled=True)
    log.append({"epoch": 1, "train_loss": 0.5})
    log.append({"epoch": 2, "train_loss": 0.4})
    assert [r["epoch"] for r in run_folder.read_metrics(tmp_path)] == ["1", "2"] == [r["epoch"] for r in log.rows()]
    assert not [x for x in os.listdir(tmp_path) if ".tmp" in x]


def test_rows_keep_the_fixed_columns_blank_where_missing_and_drop_unknown_keys(tmp_path):
    log = MetricsLog(tmp_path, enabled=True)
    log.append({"epoch": 1, "train_loss": 0.5, "not_a_column": 3})
    assert _header(tmp_path) == METRIC_FIELDS
    row = log.rows()[0]
    assert row["train_loss"] == "0.5" and row["val_top1"] == "" and "not_a_column" not in row


def test_truncate_after_drops_the_epochs_a_resumed_checkpoint_did_not_reach(tmp_path):
    log = MetricsLog(tmp_path, enabled=True)
    for epoch in (1, 2, 3, 4):
        log.append({"epoch": epoch, "train_loss": 1.0 / epoch})
    log.truncate_after(2)
    assert [r["epoch"] for r in log.rows()] == ["1", "2"] and _header(tmp_path) == METRIC_FIELDS
    log.append({"epoch": 3, "train_loss": 0.3})  # the resumed run writes epoch 3 again, once
    assert [r["epoch"] for r in log.rows()] == ["1", "2", "3"] and log.rows()[2]["train_loss"] == "0.3"
    MetricsLog(tmp_path / "fresh", enabled=True).truncate_after(0)  # no metrics.csv yet: nothing to do
    assert not (tmp_path / "fresh").exists()


def test_a_disabled_log_writes_nothing(tmp_path):
    """Ranks other than 0 keep no metrics.csv."""
    log = MetricsLog(tmp_path, enabled=False, curves_title="t")
    log.append({"epoch": 1, "train_loss": 0.5})
    log.truncate_after(0)
    assert list(tmp_path.iterdir()) == []


def test_curves_are_drawn_when_titled_and_not_for_a_nonfinite_epoch(tmp_path):
    titled = MetricsLog(tmp_path / "a", enabled=True, curves_title="a2: run")
    (tmp_path / "a").mkdir()
    titled.append({"epoch": 1, "train_loss": "nan", "nonfinite_steps": 1})
    assert not (tmp_path / "a" / "curves.png").exists()  # a non-finite epoch alone draws no figure
    titled.append({"epoch": 1, "train_loss": 0.7, "lr": 0.01, "val_top1": 10.0, "val_top5": 40.0})
    assert (tmp_path / "a" / "curves.png").read_bytes()[:8] == PNG
    untitled = MetricsLog(tmp_path / "b", enabled=True)
    (tmp_path / "b").mkdir()
    untitled.append({"epoch": 1, "train_loss": 0.7})
    assert not (tmp_path / "b" / "curves.png").exists()


def _stats(**kw):
    values = dict(loss=0.1234567, train_top1=55.55555, lr=0.004, images_per_sec=123.456, seconds=9.876,
                  skipped_images=2, nonfinite_skipped=1, note="")
    return SimpleNamespace(**{**values, **kw})


def test_epoch_row_rounds_and_leaves_what_was_not_measured_blank():
    row = epoch_row(3, 18, _stats(), {"top1": 71.23456, "top5": 90.00049, "loss": 1.234567},
                    {"top1": 72.0004, "top5": 91.5}, "bfloat16")
    assert row == {"epoch": 3, "step": 18, "train_loss": 0.12346, "train_top1": 55.556, "lr": 0.004,
                   "val_top1": 71.235, "val_top5": 90.0, "val_loss": 1.23457, "ema_top1": 72.0, "ema_top5": 91.5,
                   "images_per_sec": 123.5, "epoch_seconds": 9.9, "skipped_images": 2, "nonfinite_steps": 1,
                   "precision": "bfloat16", "note": ""}
    bare = epoch_row(3, 18, _stats(train_top1=None), {}, {}, "float32")  # Mixup on, no evaluation, no EMA
    assert all(bare[k] == "" for k in ("train_top1", "val_top1", "val_top5", "val_loss", "ema_top1", "ema_top5"))
    assert set(row) == set(METRIC_FIELDS)  # every column of metrics.csv, and only those
    resumed = epoch_row(3, 18, _stats(note="resumed at step 14"), {}, {}, "float32")
    assert resumed["note"] == "resumed at step 14"  # an epoch resumed mid-way says so


def _summary(rows, best, last_val):
    cfg = SimpleNamespace(name="a2", train=SimpleNamespace(seed=7))
    derived = SimpleNamespace(epochs=3, steps_per_epoch=6, total_steps=18, precision="bfloat16",
                              precision_reason="bfloat16: the device computes it natively")
    return run_summary(cfg, derived, best, rows, last_val, world_size=2, seconds=12.345, run_dir="runs/x")


def test_run_summary_has_the_final_and_best_scores_and_how_the_run_was_computed():
    rows = [{"epoch": "1", "val_top1": "40.5", "val_top5": "70.25"},
            {"epoch": "2", "val_top1": "39.0", "val_top5": "71.0"}]
    s = _summary(rows, {"top1": 40.5, "epoch": 1}, {"images": 500})
    assert s == {"recipe": "a2", "epochs": 3, "seed": 7, "final_epoch": 2, "final_val_top1": 39.0,
                 "final_val_top5": 71.0, "best_val_top1": 40.5, "best_epoch": 1, "val_images_scored": 500,
                 "world_size": 2, "steps_per_epoch": 6, "total_steps": 18, "precision": "bfloat16",
                 "precision_reason": "bfloat16: the device computes it natively",
                 "train_seconds_this_session": 12.3, "run_dir": "runs/x"}
    unevaluated = _summary([{"epoch": "1", "val_top1": "", "val_top5": ""}], {}, {})
    assert unevaluated["final_epoch"] == 1 and unevaluated["final_val_top1"] is None
    assert unevaluated["best_val_top1"] is None and unevaluated["val_images_scored"] is None
    assert _summary([], {}, {})["final_epoch"] is None  # a rank other than 0 has no rows
