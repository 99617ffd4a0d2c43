"""Data-parallel training with 2 CPU processes (gloo) under torchrun, and rank discovery from Slurm."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from tests._tiny import REPO, TINY_OVERRIDES, tiny_data
from rsb.runtime import distributed


def test_two_process_ddp_run_splits_the_samples(tmp_path):
    data = tiny_data(tmp_path / "sample")
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29533",
           str(REPO / "train.py"), "--recipe", "a2", "--data", str(data), "--output", str(out),
           "--workers", "0", "--device", "cpu", "--quiet", *TINY_OVERRIDES, "model.name=resnet10t"]  # a small ResNet
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=400,
                         env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    derived = yaml.safe_load((out / "resolved.yaml").read_text())["derived"]
    # 100 images, 2 processes, no accumulation: dealt over 4 lanes (the fewest multiple of 2 reaching 3 repeats)
    # of 25 samples, each cut to one batch of 16; 2 lanes per process, 16 per device per step.
    assert derived["world_size"] == 2 and derived["sampler_lanes"] == 4 and derived["samples_per_device"] == 32
    assert derived["steps_per_epoch"] == 32 // 16 and derived["global_batch"] == 32
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["final_epoch"] == 2
    # Each process scores its own share of val; together every image exactly once.
    assert summary["val_images_scored"] == 40


# Run by each of 2 processes under torchrun: one epoch of a tiny run per train.average_bn_stats value, then the
# process's own batch-norm running statistics saved beside the run (a checkpoint holds rank 0's only).
BN_RANKS_SCRIPT = """
import sys
from pathlib import Path
import torch
from rsb.models.factory import unwrap
from rsb.training.run_config import build_config
from rsb.training.trainer import LaunchOptions, Trainer
data, out, *overrides = sys.argv[1:]
for average in ("false", "true"):
    run = Path(out) / f"average_{average}"
    cfg = build_config("a2", [*overrides, f"train.average_bn_stats={average}"], sample=False)
    trainer = Trainer(cfg, LaunchOptions(data=Path(data), output=run, workers=0, device="cpu", quiet=True))
    trainer.setup()
    try:
        trainer.run()
    finally:
        trainer.trackers.close()
    stats = {k: v for k, v in unwrap(trainer.parts.model).state_dict().items() if "running_" in k}
    torch.save(stats, run / f"bn_rank{trainer.dist.rank}.pt")
"""


def test_batch_norm_stats_are_averaged_over_processes_at_each_epochs_end(tmp_path):
    """train.average_bn_stats (timm's --dist-bn reduce, the _timm2021 recipes): after an epoch every process holds
    the mean of the processes' running statistics, and the checkpoint holds it. Without it, DDP's broadcast of
    rank 0's buffers at each forward (evaluation's too) leaves rank 0's everywhere. The two runs train alike, so
    their weights agree and only the statistics differ."""
    import torch
    data = tiny_data(tmp_path / "sample")
    script = tmp_path / "bn_ranks.py"
    script.write_text(BN_RANKS_SCRIPT)
    small = [*TINY_OVERRIDES, "model.name=resnet10t", "sched.epochs=1", "sched.warmup_epochs=0",
             "run.checkpoint_every_minutes=0"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29534", str(script),
           str(data), str(tmp_path), *small]
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=400,
                         env=dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO)))
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    ranks = {average: [torch.load(tmp_path / f"average_{average}" / f"bn_rank{r}.pt") for r in (0, 1)]
             for average in ("false", "true")}
    kept, averaged = ranks["false"], ranks["true"]
    assert kept[0].keys() == averaged[0].keys() and len(kept[0]) > 10
    for stats in (kept, averaged):  # the same on both processes either way
        assert all(torch.equal(stats[0][k], stats[1][k]) for k in stats[0])
    saved = {average: torch.load(tmp_path / f"average_{average}" / "last.pt", weights_only=True)["model"]
             for average in ("false", "true")}
    assert all(torch.equal(saved["true"][k], averaged[0][k]) for k in averaged[0])
    assert all(torch.equal(saved["false"][k], kept[0][k]) for k in kept[0])
    weights = [k for k in saved["true"] if k not in kept[0] and "num_batches_tracked" not in k]
    assert all(torch.equal(saved["true"][k], saved["false"][k]) for k in weights)  # trained alike
    assert sum(not torch.equal(averaged[0][k], kept[0][k]) for k in kept[0]) > len(kept[0]) // 2  # the mean


@pytest.fixture
def private_environ(monkeypatch):
    """env_rank_world writes RANK/WORLD_SIZE/MASTER_* for Slurm; keep that out of the other tests."""
    monkeypatch.setattr(os, "environ", dict(os.environ))


def test_rank_and_world_from_slurm(monkeypatch, private_environ):
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("SLURM_NTASKS", "8")
    monkeypatch.setenv("SLURM_PROCID", "5")
    monkeypatch.setenv("SLURM_LOCALID", "1")
    monkeypatch.setenv("SLURM_JOB_NODELIST", "gpu-node-7")
    monkeypatch.setenv("SLURM_JOB_ID", "1234")
    assert distributed.env_rank_world() == (5, 8, 1)
    assert "MASTER_ADDR" not in os.environ  # a getter: the rendezvous is set only when the group starts
    assert distributed.slurm_rendezvous() == {"MASTER_ADDR": "gpu-node-7", "MASTER_PORT": str(20000 + 1234)}


def test_torchrun_variables_win_over_slurm(monkeypatch, private_environ):
    monkeypatch.setenv("SLURM_NTASKS", "8")
    monkeypatch.setenv("SLURM_PROCID", "5")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert distributed.env_rank_world() == (1, 2, 1)
    assert distributed.slurm_rendezvous() == {}


def test_single_process_without_any_launcher(monkeypatch, private_environ):
    for k in ("WORLD_SIZE", "RANK", "SLURM_NTASKS", "SLURM_PROCID"):
        monkeypatch.delenv(k, raising=False)
    assert distributed.env_rank_world() == (0, 1, 0)
    with pytest.raises(Exception, match="must be auto, cpu"):
        distributed.pick_device("tpu", 0)
