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


def test_one_default_workers_rule(monkeypatch, private_environ):
    """train.py, validate.py and the sweep's jobs share it: the CPUs Slurm gives a task, else a share of them."""
    monkeypatch.setattr(distributed, "usable_cpus", lambda: 16)
    for k in ("WORLD_SIZE", "RANK", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_CPUS_PER_TASK"):
        monkeypatch.delenv(k, raising=False)
    assert distributed.default_workers() == 8                       # at most 8
    assert distributed.default_workers(processes_sharing=4) == 4    # a local sweep running 4 seeds at once
    monkeypatch.setenv("WORLD_SIZE", "8")
    monkeypatch.setenv("RANK", "0")
    assert distributed.default_workers() == 2                       # 8 processes on 16 CPUs
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "3")
    assert distributed.default_workers() == 3                       # Slurm's share wins
