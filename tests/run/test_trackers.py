"""Logging users plug in (rsb.run.trackers): per-step and per-epoch values to W&B and TensorBoard, the W&B run id
kept so a resumed run continues the same W&B run, and eval loss and EMA top-5 in metrics.csv."""
from __future__ import annotations

import csv
import sys
import types

import pytest
import torch
from tests._tiny import TINY_OVERRIDES, tiny_data

from rsb.run import trackers
from rsb.errors import UserError
from rsb.train import main

SMALL = [*TINY_OVERRIDES, "model.name=resnet10t", "run.log_every=2"]  # 6 steps per epoch: logged at 2, 4, 6


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tiny_data(tmp_path_factory.mktemp("tiny") / "sample")


class FakeWandb(types.ModuleType):
    """Records what rsb hands to wandb: init's arguments and every log call."""

    def __init__(self):
        super().__init__("wandb")
        self.inits, self.logged, self.finished = [], [], 0

    def init(self, **kw):
        self.inits.append(kw)
        self.id = kw["id"] or f"id{len(self.inits)}"  # W&B's own choice when none is given
        return self

    def log(self, values, step):
        self.logged.append((step, values))

    def finish(self):
        self.finished += 1


def _train(args) -> int:
    torch.set_num_threads(1)
    return main(args)


def test_per_step_and_epoch_values_reach_wandb_and_a_resume_continues_its_run(data, tmp_path, monkeypatch):
    fake = FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    out = tmp_path / "run"
    args = ["--data", str(data), "--output", str(out), "--workers", "0", "--quiet", *SMALL, "sched.epochs=1",
            "sched.warmup_epochs=0", "train.ema=true"]
    assert _train([*args, "--wandb-project", "rsb-tests"]) == 0
    assert fake.inits[0]["project"] == "rsb-tests" and fake.inits[0]["resume"] == "allow"
    assert fake.inits[0]["id"] is None and (out / "wandb_run_id.txt").read_text().strip() == "id1"
    assert fake.inits[0]["config"]["optim"]["lr"] == 5e-3 and fake.finished == 1
    steps = [(s, v) for s, v in fake.logged if "train/loss" in v]
    assert [s for s, _ in steps] == [2, 4, 6]  # every run.log_every steps, at the global step
    assert all(v["train/loss"] > 0 and v["train/lr"] > 0 and v["train/images_per_sec"] > 0 for _, v in steps)
    epochs = [(s, v) for s, v in fake.logged if "epoch" in v]
    assert len(epochs) == 1 and epochs[0][0] == 6 and epochs[0][1]["epoch"] == 1
    assert {"epoch/train_loss", "epoch/val_top1", "epoch/val_loss", "epoch/ema_top5"} <= set(epochs[0][1])
    # metrics.csv carries the eval loss and EMA top-5
    row = list(csv.DictReader(open(out / "metrics.csv")))[0]
    assert float(row["val_loss"]) > 0 and 0 <= float(row["ema_top5"]) <= 100
    # The resumed run (one more epoch) continues the same W&B run, and its steps go on from 6.
    assert _train([*args, "sched.epochs=2", "--resume-changed", "run.wandb_project=rsb-tests"]) == 0
    assert fake.inits[1]["id"] == "id1" and fake.finished == 2
    assert [s for s, v in fake.logged if "train/loss" in v][3:] == [8, 10, 12]


def test_wandb_offline_run_writes_its_files_in_the_run_folder(data, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    out = tmp_path / "run"
    args = ["--data", str(data), "--output", str(out), "--workers", "0", "--quiet", *SMALL, "sched.epochs=1",
            "sched.warmup_epochs=0", "run.wandb_project=rsb-offline"]
    assert _train(args) == 0
    run_id = (out / "wandb_run_id.txt").read_text().strip()
    runs = sorted(p.name for p in (out / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and runs[0].endswith(f"-{run_id}")
    assert list((out / "wandb" / runs[0]).glob("*.wandb"))  # the run's records, for `wandb sync`
    assert _train([*args, "sched.epochs=2", "--resume-changed"]) == 0
    runs = sorted(p.name for p in (out / "wandb").glob("offline-run-*"))
    assert len(runs) == 2 and all(r.endswith(f"-{run_id}") for r in runs)  # the same W&B run, resumed


def test_a_missing_wandb_is_one_sentence(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb raises ImportError
    with pytest.raises(UserError, match="run.wandb_project is 'p' but wandb is not installed; pip install wandb"):
        trackers.Trackers(tmp_path, True, "p", {})
    assert trackers.Trackers(tmp_path, False, "p", {}).wandb is None  # ranks other than 0 log nothing
