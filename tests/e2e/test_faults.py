"""Fault injection: real signals to real training processes, kill -9 (also mid checkpoint write), a full disk,
divergence, and a dying DDP process. The interrupted-and-resumed run must end bitwise equal to an
uninterrupted one, with the same records (metrics.csv, the progress line's running loss)."""
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
import yaml

from tests._processes import gone_within
from tests._tiny import REPO, tiny_data
from rsb.run import checkpoint
from rsb.training.engine import NonFiniteLoss
from rsb.training.run_config import build_config
from rsb.training.trainer import LaunchOptions, Trainer

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


def _interrupt_at_step(cmd, step: int, sig: int, env=None, whole_group: bool = False,
                       children: list | None = None) -> tuple[int, str]:
    """Start a run, send `sig` as soon as it reports step `step`, return (exit status, output). whole_group: to
    every process of the run (its loader workers too), as Slurm signals every process of a job step; children:
    gets the run's child processes (its loader workers) as they were just before the signal."""
    proc = subprocess.Popen(cmd, cwd=REPO, env=env or _env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=whole_group)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if re.search(rf"\bstep {step}/", line):
            if children is not None:
                children += [int(pid) for pid in subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                                                                text=True).stdout.split()]
            os.killpg(proc.pid, sig) if whole_group else proc.send_signal(sig)
            break
    out, _ = proc.communicate(timeout=240)
    return proc.returncode, "".join(lines) + (out or "")


TIMING = ("images_per_sec", "epoch_seconds", "note")  # the columns a resumed epoch may differ in


def _same_records(reference: Path, run: Path) -> list[dict]:
    """metrics.csv of a resumed run equals the uninterrupted run's (the losses exactly) but for timing and the
    note, which says where an epoch was resumed; the resumed run's rows."""
    ref, got = (list(csv.DictReader(open(r / "metrics.csv"))) for r in (reference, run))
    assert [{k: v for k, v in r.items() if k not in TIMING} for r in got] == \
           [{k: v for k, v in r.items() if k not in TIMING} for r in ref]
    assert all(r["note"] == "" for r in ref)
    return got


def _running_losses(log: str) -> dict[int, str]:
    """The progress line's running loss by global step."""
    return {int(m[1]): m[2] for m in re.finditer(r"\bstep (\d+)/\d+ loss (\S+)", log)}


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
    # As a Slurm task of one CPU on a node that does not bind CPUs (this machine's mask: all of them): torch's
    # threads come from the task (the interrupted runs get theirs from OMP_NUM_THREADS=1; equal counts, so the
    # results can be compared bitwise). It runs alongside the interrupted ones (they share nothing but the data).
    slurm = {k: v for k, v in _env(SLURM_CPUS_PER_TASK="1").items() if k != "OMP_NUM_THREADS"}
    ref_proc = subprocess.Popen(_args(data, reference), cwd=REPO, env=slurm, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)

    run = tmp_path / "interrupted"
    cmd = _args(data, run)
    # 1. kill -9 in the middle of epoch 1: its loader worker goes with it.
    workers = []
    code, log = _interrupt_at_step(cmd, 3, signal.SIGKILL, children=workers)
    assert code == -signal.SIGKILL, log
    assert len(workers) == 1 and gone_within(workers[0], 3), "the loader worker outlived its trainer"
    # 2. SIGTERM during the last step of epoch 1: the epoch completes, then a clean exit.
    code, log = _interrupt_at_step(cmd, 6, signal.SIGTERM)
    assert code == 128 + signal.SIGTERM and "resumed from" in log and "checkpoint saved" in log, log
    # 3. kill -9 in the middle of a checkpoint write: the half-written file is a temporary, last.pt is intact.
    log = _kill_during_checkpoint_write(cmd, tmp_path / "marker")
    assert list(run.glob(".last.pt.tmp*")), log
    before = checkpoint.load(run / "last.pt")
    assert before["step"] == 6
    # 4. SIGUSR1 (Slurm's warning before a time limit) to every process, the loader worker too, mid-epoch: one
    # "received" line (the trainer's), and a checkpoint with the position in the epoch and its running totals.
    code, log = _interrupt_at_step(cmd, 8, signal.SIGUSR1, whole_group=True)
    assert code == 128 + signal.SIGUSR1, log
    assert log.count("received SIGUSR1") == 1, log
    mid = checkpoint.load(run / "last.pt")
    # The signal lands during step 8's checkpoint or, on a slow machine, during step 9: the run stops after it.
    assert mid["epoch"] == 1 and mid["step"] in (8, 9) and mid["epoch_step"] == mid["step"] - 6
    # 5. The same command finishes the run.
    res = _run(cmd)
    assert res.returncode == 0, res.stdout + res.stderr
    assert not list(run.glob(".*.tmp*"))
    ref_log, _ = ref_proc.communicate(timeout=300)
    assert ref_proc.returncode == 0, ref_log
    assert yaml.safe_load((reference / "resolved.yaml").read_text())["environment"]["cpu"] == {
        "cpus": 1, "threads": 1, "workers": 1, "source": "SLURM_CPUS_PER_TASK=1; --workers 1"}
    assert ref_log.count("CPU budget: 1 CPU(s) for this process (SLURM_CPUS_PER_TASK=1; --workers 1): 1 "
                         "compute thread(s), 1 loader worker(s)\n") == 1
    ref, got = _weights(reference), _weights(run)
    assert got["step"] == ref["step"] == 12
    assert _same(ref["model"], got["model"]), "resumed weights differ from the uninterrupted run"
    assert _same(ref["optimizer"], got["optimizer"])
    # The records too: both epochs were resumed mid-way (after kill -9 from a periodic checkpoint, after SIGUSR1
    # from the stop's), and their rows are the uninterrupted run's, the losses bitwise.
    rows = _same_records(reference, run)
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert rows[0]["note"].startswith("resumed at step ") and rows[1]["note"].startswith(f"resumed at step "
                                                                                         f"{mid['step']}:")
    # The resumed session's progress line goes on with the epoch's running loss.
    resumed = _running_losses(res.stdout)
    assert resumed and resumed == {s: loss for s, loss in _running_losses(ref_log).items() if s in resumed}


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
    trainer = Trainer(cfg, LaunchOptions(data=data, output=out, workers=0, device="cpu", quiet=True))
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
    # A periodic checkpoint under DDP holds one process's share of the running totals only, so none is stored:
    # the epoch resumed from it says its numbers are partial.
    assert rows[0]["note"].startswith("partial: resumed at step "), rows[0]
