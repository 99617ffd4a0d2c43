"""Fault injection: real signals to real training processes, kill -9 (also mid checkpoint write), a full disk,
divergence, and a dying DDP process. The interrupted-and-resumed run must end bitwise equal to an
uninterrupted one."""
from __future__ import annotations

import csv
import os
import re
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests._tiny import REPO, tiny_data
from rsb.run import checkpoint
from rsb.training.engine import NonFiniteLoss
from rsb.config import build_config
from rsb.training.trainer import RunEnv, Trainer

# A small ResNet keeps checkpoints small; every other recipe value is A2's. 12 optimizer steps in all
# (6 per epoch: 100 images over 3 sampler lanes, 2 batches of 16 each).
FAULT_OVERRIDES = ["model.name=resnet10t", "model.num_classes=10", "data.train_size=32", "data.test_size=32",
                   "sched.epochs=2", "sched.warmup_epochs=1", "train.batch_per_device=16",
                   "optim.batch_rule=sqrt", "run.deterministic=true", "run.checkpoint_every_steps=1",
                   "run.log_every=1"]
HOOKS = str(Path(__file__).resolve().parent.parent / "fault_hooks")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tiny_data(tmp_path_factory.mktemp("faults") / "sample")


def _args(data, out, workers=1, extra=()):
    return [sys.executable, str(REPO / "train.py"), "--recipe", "a2", "--data", str(data), "--output", str(out),
            "--workers", str(workers), "--device", "cpu", *FAULT_OVERRIDES, *extra]


def _env(**extra):
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", PYTHONPATH=HOOKS, **extra)


def _run(cmd, env=None, timeout=300):
    res = subprocess.run(cmd, cwd=REPO, env=env or _env(), capture_output=True, text=True, timeout=timeout)
    return res


def _interrupt_at_step(cmd, step: int, sig: int, env=None) -> tuple[int, str]:
    """Start a run, send `sig` as soon as it reports step `step`, return (exit status, output)."""
    proc = subprocess.Popen(cmd, cwd=REPO, env=env or _env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if re.search(rf"\bstep {step}/", line):
            proc.send_signal(sig)
            break
    out, _ = proc.communicate(timeout=240)
    return proc.returncode, "".join(lines) + (out or "")


def _kill_during_checkpoint_write(cmd, marker: Path) -> str:
    proc = subprocess.Popen(cmd, cwd=REPO, env=_env(RSB_FAULT_SLOW_SAVE=str(marker)), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    start = time.time()
    while not marker.exists():
        assert proc.poll() is None, proc.communicate()[0]
        assert time.time() - start < 240
        time.sleep(0.05)
    proc.kill()
    return proc.communicate(timeout=60)[0]


def _weights(run: Path) -> dict:
    ckpt = checkpoint.load(run / "last.pt")
    return {"model": ckpt["model"], "optimizer": ckpt["optimizer"]["state"], "step": ckpt["step"]}


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def test_interrupted_many_ways_ends_bitwise_equal_to_uninterrupted(data, tmp_path):
    reference = tmp_path / "reference"
    # The uninterrupted run alongside the interrupted ones (they share nothing but the data).
    ref_proc = subprocess.Popen(_args(data, reference), cwd=REPO, env=_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)

    run = tmp_path / "interrupted"
    cmd = _args(data, run)
    # 1. kill -9 in the middle of epoch 1.
    code, log = _interrupt_at_step(cmd, 3, signal.SIGKILL)
    assert code == -signal.SIGKILL, log
    # 2. SIGTERM during the last step of epoch 1: the epoch completes, then a clean exit.
    code, log = _interrupt_at_step(cmd, 6, signal.SIGTERM)
    assert code == 128 + signal.SIGTERM and "resumed from" in log and "checkpoint saved" in log, log
    # 3. kill -9 in the middle of a checkpoint write: the half-written file is a temporary, last.pt is intact.
    log = _kill_during_checkpoint_write(cmd, tmp_path / "marker")
    assert list(run.glob(".last.pt.tmp*")), log
    before = checkpoint.load(run / "last.pt")
    assert before["step"] == 6
    # 4. SIGUSR1 (Slurm's warning before a time limit) mid-epoch: a checkpoint with the position in the epoch.
    code, log = _interrupt_at_step(cmd, 8, signal.SIGUSR1)
    assert code == 128 + signal.SIGUSR1, log
    mid = checkpoint.load(run / "last.pt")
    # The signal lands during step 8's checkpoint or, on a slow machine, during step 9: the run stops after it.
    assert mid["epoch"] == 1 and mid["step"] in (8, 9) and mid["epoch_step"] == mid["step"] - 6
    # 5. The same command finishes the run.
    res = _run(cmd)
    assert res.returncode == 0, res.stdout + res.stderr
    assert not list(run.glob(".*.tmp*"))
    out, _ = ref_proc.communicate(timeout=300)
    assert ref_proc.returncode == 0, out
    ref, got = _weights(reference), _weights(run)
    assert got["step"] == ref["step"] == 12
    assert _same(ref["model"], got["model"]), "resumed weights differ from the uninterrupted run"
    assert _same(ref["optimizer"], got["optimizer"])
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2"]


def test_full_disk_stops_with_a_clear_error_and_keeps_the_last_checkpoint(data, tmp_path):
    run = tmp_path / "run"
    res = _run(_args(data, run, extra=["sched.epochs=1", "sched.warmup_epochs=0",
                                       "run.checkpoint_every_steps=0"]))
    assert res.returncode == 0, res.stderr
    size = (run / "last.pt").stat().st_size

    def limit_file_size():  # files larger than half a checkpoint cannot be written: a full disk for the run
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size // 2, size // 2))

    res = subprocess.run(_args(data, run, extra=["sched.epochs=2", "sched.warmup_epochs=0",
                                                 "run.checkpoint_every_steps=0", "--resume-changed"]),
                         cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300,
                         preexec_fn=limit_file_size)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "could not write checkpoint" in res.stderr and "Traceback" not in res.stderr
    assert checkpoint.load(run / "last.pt")["epoch"] == 1
    assert not list(run.glob(".*.tmp*"))


def _trainer_with_bad_loss(data, out, bad_call: int, extra=()):
    cfg = build_config("a2", [*FAULT_OVERRIDES, *extra], sample=False)
    trainer = Trainer(cfg, RunEnv(data=data, output=out, workers=0, device="cpu", quiet=True))
    trainer.setup()
    real, calls = trainer.parts.loss_fn, {"n": 0}

    def loss_fn(out, y):
        calls["n"] += 1
        loss = real(out, y)
        return loss * float("nan") if calls["n"] == bad_call else loss

    trainer.parts.loss_fn = loss_fn
    return trainer


def test_divergence_stops_naming_the_step_and_keeps_the_last_good_checkpoint(data, tmp_path):
    trainer = _trainer_with_bad_loss(data, tmp_path / "run", bad_call=7)
    with pytest.raises(NonFiniteLoss, match="at step 7;"):  # the 7th step, steps counted from 1
        trainer.run()
    good = checkpoint.load(tmp_path / "run" / "last.pt")
    assert good["step"] == 6 and all(torch.isfinite(v).all() for v in good["model"].values() if v.is_floating_point())
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    assert rows[-1]["note"].startswith("stopped: non-finite") and rows[-1]["nonfinite_steps"] == "1"


def test_divergence_skip_setting_skips_and_counts(data, tmp_path):
    trainer = _trainer_with_bad_loss(data, tmp_path / "run", bad_call=7, extra=["run.nonfinite=skip"])
    trainer.run()
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    assert [int(r["nonfinite_steps"]) for r in rows] == [0, 1]
    assert all(torch.isfinite(v).all() for v in checkpoint.load(tmp_path / "run" / "last.pt")["model"].values()
               if v.is_floating_point())


def test_a_dying_ddp_process_is_restarted_by_torchrun_and_resumes(data, tmp_path):
    run = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--max-restarts=1",
           "--master_port=29541", *_args(data, run, workers=0)[1:], "train.batch_per_device=8"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if re.search(r"\bstep 3/", line):
            workers = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
            assert len(workers) == 2, workers
            os.kill(int(workers[-1]), signal.SIGKILL)
            break
    out, _ = proc.communicate(timeout=300)
    log = "".join(lines) + out
    assert proc.returncode == 0, log[-4000:]
    assert "resumed from" in log
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2"]
