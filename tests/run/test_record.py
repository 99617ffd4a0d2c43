"""The checkpoint record (rsb.run.record): its stored layout, the format check, and checkpoints written before it
(tests/run/data) resumed, scored and exported through it."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import torch

from rsb import export, train, validate
from rsb.errors import UserError
from rsb.run.checkpoint import digest, load, save_atomic
from rsb.run.record import EMA_KEY, FORMAT, CheckpointRecord

# Written by commit 3506351 (before the record existed; format rsb-1) with the command below, on the built-in
# CIFAR sample: the run's prev.pt, a mid-epoch checkpoint (epoch 0, step 6 of 8) with EMA weights, SGD momentum,
# the per-pixel mean image and the generators' state.
OLD = Path(__file__).parent / "data" / "rsb1_cifar_mid_epoch.pt"
OLD_COMMAND = ["--recipe", "cifar10_resnet", "--workers", "0", "model.name=test_efficientnet", "train.ema=true",
               "sched.max_steps=8", "sched.milestones=[4,6]", "train.batch_per_device=16",
               "run.checkpoint_every_steps=3", "run.checkpoint_every_minutes=0", "run.log_every=2",
               "data.val_holdout=200"]
# The keys every checkpoint has stored since format rsb-1 (timm reads "model" and "state_dict_ema").
STORED_KEYS = {"model", "optimizer", "scaler", "state_dict_ema", "schedule", "pixel_mean", "epoch", "epoch_step",
               "step", "best", "config", "derived", "rng", "model_name", "format"}


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_a_record_is_stored_under_the_keys_of_format_rsb1():
    stored = CheckpointRecord(model={"w": torch.ones(2)}, ema={"w": torch.zeros(2)}).to_dict()
    assert set(stored) == STORED_KEYS and stored["format"] == FORMAT == "rsb-1"
    assert stored[EMA_KEY]["w"].sum() == 0 and "ema" not in stored


def test_a_mid_epoch_record_stores_the_epochs_running_totals_beside_them(tmp_path):
    """A new entry, stored only when set: timm's keys and the format stay as they were."""
    totals = {"loss_sum": 1.25, "hits": [3.0, 8.0], "micro_batches": 4, "nonfinite": 0, "samples": 32,
              "seconds": 2.5, "skipped_images": 0, "resumed_at": [], "partial_from": None}
    p = tmp_path / "mid.pt"
    save_atomic(CheckpointRecord(model={"w": torch.ones(2)}, epoch=0, epoch_step=2, step=2,
                                 epoch_tally=totals).to_dict(), p)
    stored = load(p)
    assert set(stored) - {"sha256"} == STORED_KEYS | {"epoch_tally"} and stored["format"] == FORMAT
    assert CheckpointRecord.read(p).epoch_tally == totals


def test_the_old_checkpoint_reads_back_to_the_same_stored_dict():
    """The record neither drops nor renames anything a checkpoint of today's layout holds: reading the old file
    and writing the record again gives the same contents, digest for digest."""
    stored = load(OLD)
    assert set(stored) - {"sha256"} == STORED_KEYS
    record = CheckpointRecord.read(OLD)
    assert digest(record.to_dict()) == stored["sha256"]
    assert (record.epoch, record.epoch_step, record.step, record.format) == (0, 6, 6, "rsb-1")
    assert record.model_name == "test_efficientnet" and record.config["model"]["name"] == "test_efficientnet"
    assert record.ema is not None and record.pixel_mean.shape == (3, 32, 32) and record.path == OLD


def test_ema_weights_under_the_older_ema_key_are_read():
    weights = {"w": torch.ones(2)}
    assert CheckpointRecord.from_dict({"model": {}, "state_dict_ema": weights}).ema is weights
    assert CheckpointRecord.from_dict({"model": {}, "ema": weights}).ema is weights  # before timm's name
    assert CheckpointRecord.from_dict({"model": {}, "state_dict_ema": None}).ema is None
    assert CheckpointRecord.from_dict({"model": {}}).ema is None


def test_bare_weights_load_but_cannot_be_resumed(tmp_path):
    p = tmp_path / "weights.pt"
    torch.save({"model": {"w": torch.ones(2)}}, p)  # no format, no digest, nothing else
    record = CheckpointRecord.read(p)
    assert record.format is None and record.epoch is None and record.optimizer is None and record.config is None
    with pytest.raises(UserError, match="holds weights only .* cannot resume"):
        record.check_resumable()


def test_an_unknown_format_is_one_sentence(tmp_path):
    p = tmp_path / "new.pt"
    save_atomic({"model": {}, "format": "rsb-2"}, p)
    with pytest.raises(UserError) as e:
        CheckpointRecord.read(p)
    message = str(e.value)
    assert message == (f"checkpoint {p} has format 'rsb-2', which this version of rsb cannot read (it reads "
                       f"'rsb-1'); score or resume it with the rsb version that wrote it.")


def _newer_format(tmp_path) -> Path:
    p = tmp_path / "newer.pt"
    save_atomic({**load(OLD), "format": "rsb-2"}, p)
    return p


def test_validate_refuses_an_unknown_format_with_exit_status_2(tmp_path, capsys):
    p = _newer_format(tmp_path)
    assert validate.main([str(p), "--out-dir", str(tmp_path / "v"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: checkpoint {p} has format 'rsb-2', which this version of rsb cannot read (it reads " \
                  f"'rsb-1'); score or resume it with the rsb version that wrote it."


def test_train_resume_refuses_an_unknown_format_with_exit_status_2(tmp_path, capsys):
    p = _newer_format(tmp_path)
    assert train.main([*OLD_COMMAND, "--resume", str(p), "--output", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: checkpoint {p} has format 'rsb-2', which this version of rsb cannot read (it reads "
                   f"'rsb-1'); score or resume it with the rsb version that wrote it."]


def test_train_resume_from_bare_weights_is_one_sentence(tmp_path, capsys):
    """The weights fit the model (a checkpoint of another model is named as such first), but there is nothing to
    continue from."""
    p = tmp_path / "weights.pt"
    torch.save({"model": load(OLD)["model"]}, p)
    assert train.main([*OLD_COMMAND, "--resume", str(p), "--output", str(tmp_path / "run"), "--quiet"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: checkpoint {p} holds weights only (no optimizer state or training position), so a run cannot "
        f"resume from it; resume from a checkpoint train.py wrote, or give a new --output to start a run."]


def test_a_checkpoint_written_before_the_record_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    assert train.main([*OLD_COMMAND, "--resume", str(OLD), "--output", str(out)]) == 0
    log = capsys.readouterr().out
    assert f"resumed from {OLD}: continuing at epoch 1, step 6 (global step 6)" in log
    assert "step 8/8" in log
    # It carried no running totals of its epoch: the epoch's row says its numbers cover steps 7 and 8 only.
    (row,) = csv.DictReader(open(out / "metrics.csv"))
    assert row["note"].startswith("partial: resumed at step 6 from a checkpoint without the epoch's running totals")
    last = CheckpointRecord.read(out / "last.pt")
    assert (last.epoch, last.epoch_step, last.step, last.format) == (1, 0, 8, "rsb-1")
    assert last.best["epoch"] == 1 and 0 <= last.best["top1"] <= 100


def test_a_checkpoint_written_before_the_record_is_scored(tmp_path):
    results = tmp_path / "results.csv"
    assert validate.main([str(OLD), "--ema", "--results-file", str(results), "--quiet"]) == 0
    rows = json.loads(results.with_suffix(".json").read_text())["rows"]
    assert len(rows) == 1 and rows[0]["model"] == "test_efficientnet" and rows[0]["epoch"] == 0


def test_a_checkpoint_written_before_the_record_is_exported(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    shutil.copyfile(OLD, run / "last.pt")
    assert export.main([str(run), str(tmp_path / "out"), "--ema"]) == 0
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["rsb"] == {"recipe": "cifar10_resnet", "checkpoint": "last.pt", "epoch": 0, "weights": "ema"}
