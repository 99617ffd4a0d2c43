"""End-to-end runs of train.py at tiny scale: each recipe, seeds, resume, bad inputs, outputs."""
from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

import train
from tests._tiny import REPO, TINY_OVERRIDES, run_train, tiny_data


# For the tests about run mechanics (seeds, resume, bad images), a small ResNet: the recipes' ResNet-50 runs in
# test_each_recipe_runs_end_to_end and the README sample test.
SMALL = [*TINY_OVERRIDES, "model.name=resnet10t"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tiny_data(tmp_path_factory.mktemp("tiny") / "sample")


def _main(args):
    torch.set_num_threads(1)
    return train.main(args)


def _rows(run: Path):
    with open(run / "metrics.csv") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("recipe", ["a1", "a2", "a3", "a1_timm2021", "a2_timm2021", "a3_timm2021"])
def test_each_recipe_runs_end_to_end(recipe, data, tmp_path):
    out = tmp_path / "run"
    timm2021 = recipe.endswith("_timm2021")
    cooldown = ["sched.cooldown_epochs=1"] if timm2021 else []  # 2 epochs of the cosine, then 1 at the floor
    assert _main(["--recipe", recipe, "--data", str(data), "--output", str(out), "--workers", "0", "--quiet",
                  *TINY_OVERRIDES, *cooldown]) == 0
    for name in ("resolved.yaml", "metrics.csv", "last.pt", "best.pt", "summary.json", "curves.png"):
        assert (out / name).is_file(), name
    rows = _rows(out)
    last = 3 if timm2021 else 2
    assert [int(r["epoch"]) for r in rows] == list(range(1, last + 1))
    if timm2021:  # metrics.csv's lr of each epoch is timm's CosineLRScheduler's, configured as in 2021
        from timm.scheduler import CosineLRScheduler
        peak = yaml.safe_load((out / "resolved.yaml").read_text())["derived"]["lr"]
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=peak)
        timm_sched = CosineLRScheduler(opt, t_initial=2, lr_min=1e-6, warmup_t=1, warmup_lr_init=1e-4,
                                       warmup_prefix=False, t_in_epochs=True, cycle_limit=1)
        timm_lrs = []
        for epoch in range(3):
            timm_lrs.append(opt.param_groups[0]["lr"])
            timm_sched.step(epoch + 1)
        assert [float(r["lr"]) for r in rows] == timm_lrs and timm_lrs[0] == 1e-4 and timm_lrs[2] == 1e-6
    assert all(float(r["train_loss"]) > 0 and 0 <= float(r["val_top1"]) <= 100 for r in rows)
    resolved = yaml.safe_load((out / "resolved.yaml").read_text())
    assert resolved["config"]["name"] == recipe
    assert resolved["derived"]["steps_per_epoch"] == 6  # 100 images, 3 lanes of 34: 2 batches of 16 each
    summary = json.loads((out / "summary.json").read_text())
    assert summary["final_epoch"] == last and summary["final_val_top1"] == float(rows[-1]["val_top1"])
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The checkpoint loads safely and its weights load into timm's own model.
    import timm
    ckpt = torch.load(out / "last.pt", weights_only=True)
    model = timm.create_model("resnet50", num_classes=10)
    model.load_state_dict(ckpt["model"])
    assert ckpt["epoch"] == last and ckpt["config"]["name"] == recipe


def test_same_seed_same_losses_and_other_seed_differs(data, tmp_path):
    losses = {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        out = tmp_path / name
        assert _main(["--recipe", "a2", "--data", str(data), "--output", str(out), "--workers", "0", "--quiet",
                      *SMALL, "sched.epochs=1", "sched.warmup_epochs=0", f"train.seed={seed}"]) == 0
        losses[name] = _rows(out)[0]["train_loss"]
    assert losses["a"] == losses["b"]
    assert losses["a"] != losses["c"]


def test_rerun_of_finished_run_does_nothing_and_resume_flag(data, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["--recipe", "a3", "--data", str(data), "--output", str(out), "--workers", "0", *SMALL,
            "sched.epochs=1", "sched.warmup_epochs=0"]
    assert _main(args + ["--quiet"]) == 0
    assert _main(args + ["run.log_every=3", "run.checkpoint_every_minutes=1"]) == 0
    printed = capsys.readouterr().out
    assert "already finished" in printed
    assert "changed recipe values" not in printed  # run policy may change between a run and its resume
    before = (out / "last.pt").read_bytes()
    assert _main(args + ["optim.lr=0.001"]) == 2  # a recipe value may not: refused, naming the key and the ways on
    err = capsys.readouterr().err
    assert "other recipe values (optim.lr)" in err and "new --output" in err and "--resume-changed" in err
    assert (out / "last.pt").read_bytes() == before
    assert _main(args + ["optim.lr=0.001", "--resume-changed"]) == 0
    assert "with changed recipe values, as --resume-changed asks: optim.lr" in capsys.readouterr().out
    # --resume PATH continues a run from an explicit checkpoint into another folder, for more epochs (a recipe
    # value: on purpose, with --resume-changed).
    out2 = tmp_path / "longer"
    longer = ["--recipe", "a3", "--data", str(data), "--output", str(out2), "--workers", "0", "--quiet",
              "--resume", str(out / "last.pt"), *SMALL, "sched.epochs=2"]
    assert _main(longer) == 2 and "sched.epochs" in capsys.readouterr().err
    assert _main(longer + ["--resume-changed"]) == 0
    assert [int(r["epoch"]) for r in _rows(out2)] == [2]


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 240) -> None:
    start = time.time()
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() - start < timeout, f"{path} never appeared"
        time.sleep(0.2)


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_interrupted_run_resumes_with_the_same_command(how, data, tmp_path):
    out = tmp_path / "run"
    args = ["--recipe", "a2", "--data", str(data), "--output", str(out), "--workers", "0", *SMALL,
            "sched.epochs=3", "run.log_every=1"]
    cmd = [sys.executable, str(REPO / "train.py"), *args]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    _wait_for(out / "last.pt", proc)  # the first epoch's checkpoint
    time.sleep(1.0)  # now inside epoch 2
    proc.send_signal(signal.SIGTERM if how == "sigterm" else signal.SIGKILL)
    log, _ = proc.communicate(timeout=120)
    if how == "sigterm":
        assert proc.returncode == 128 + signal.SIGTERM, log
        assert "checkpoint saved" in log
    ckpt = torch.load(out / "last.pt", weights_only=True)
    assert ckpt["epoch"] >= 1
    again = run_train(args)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "resumed from" in again.stdout
    assert [int(r["epoch"]) for r in _rows(out)] == [1, 2, 3]
    assert torch.load(out / "last.pt", weights_only=True)["step"] == 3 * 6


def test_corrupt_images_are_skipped_and_too_many_stop_the_run(data, tmp_path):
    import shutil
    bad = tmp_path / "bad"
    shutil.copytree(data, bad)
    victim = sorted((bad / "train").glob("*/*.JPEG"))[0]
    victim.write_bytes(b"")  # zero-byte image
    ok = run_train(["--recipe", "a2", "--data", str(bad), "--output", str(tmp_path / "r1"), "--workers", "0",
                    "--quiet", *SMALL, "sched.epochs=1", "sched.warmup_epochs=0", "aug.repeated_aug=1",
                    "run.max_bad_image_fraction=0.5"])  # no repeats: every image is read once
    assert ok.returncode == 0, ok.stderr
    assert str(victim) in ok.stderr
    for p in sorted((bad / "train").glob("*/*.JPEG"))[:30]:
        p.write_bytes(b"not a jpeg")
    stop = run_train(["--recipe", "a2", "--data", str(bad), "--output", str(tmp_path / "r2"), "--workers", "0",
                      "--quiet", *SMALL, "sched.epochs=1", "sched.warmup_epochs=0"])
    assert stop.returncode == 2
    assert "unreadable images" in stop.stderr and "Traceback" not in stop.stderr


def _error_of(args, tmp_path, capsys=None):
    """The one error line of train.py: in a real process, or (capsys given) through train.main in this one,
    which runs the same code without paying for a fresh interpreter and torch import."""
    args = args + ["--output", str(tmp_path / "err")]
    if capsys is None:
        res = run_train(args)
        code, stderr, stdout = res.returncode, res.stderr, res.stdout
    else:
        capsys.readouterr()
        code = _main(args)
        stdout, stderr = capsys.readouterr()
    assert code == 2, stdout + stderr
    assert "Traceback" not in stderr
    lines = [l for l in stderr.splitlines() if l.startswith("error:")]
    assert len(lines) == 1, stderr
    return lines[0]


def test_bad_inputs_give_one_clear_sentence(data, tmp_path, capsys):
    assert "does not exist" in _error_of(["--data", str(tmp_path / "nope")], tmp_path)  # a real process
    empty = tmp_path / "empty"
    (empty / "train" / "n01").mkdir(parents=True)
    (empty / "val" / "n01").mkdir(parents=True)
    assert "no images" in _error_of(["--data", str(empty)], tmp_path, capsys)
    assert "available: a1, a1_timm2021, a2, a2_timm2021, a3" in _error_of(["--recipe", "b7"], tmp_path, capsys)
    assert "did you mean 'optim.lr'" in _error_of(["optim.lrr=1"], tmp_path, capsys)
    assert "must be of type int" in _error_of(["sched.epochs=ten"], tmp_path, capsys)
    # A checkpoint of another model.
    import timm
    other = tmp_path / "r18.pt"
    torch.save({"model": timm.create_model("resnet18", num_classes=10).state_dict()}, other)
    msg = _error_of(["--data", str(data), "--resume", str(other), *TINY_OVERRIDES], tmp_path, capsys)
    assert "another model" in msg
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00" * 100)
    assert "cannot be read" in _error_of(["--data", str(data), "--resume", str(garbage), *TINY_OVERRIDES],
                                         tmp_path, capsys)


def test_print_config_shows_resolved_values_without_data(tmp_path):
    res = run_train(["--recipe", "a1", "--data", str(tmp_path / "not-read"), "--print-config",
                     "train.batch_per_device=128"])
    assert res.returncode == 0, res.stderr
    doc = yaml.safe_load(res.stdout)
    assert doc["config"]["optim"]["lr"] == 5e-3 and doc["config"]["sched"]["epochs"] == 600
    d = doc["derived"]
    assert d["accum_steps"] == 16 and d["global_batch"] == 2048 and d["lr"] == 5e-3
    assert d["train_images"] == 1281167 and d["steps_per_epoch"] == 1281167 // 128 // 16
    assert not (tmp_path / "not-read").exists()


def test_ema_option_is_evaluated(data, tmp_path):
    out = tmp_path / "ema"
    assert _main(["--recipe", "a3", "--data", str(data), "--output", str(out), "--workers", "0", "--quiet",
                  *SMALL, "sched.epochs=1", "sched.warmup_epochs=0", "train.ema=true",
                  "train.ema_decay=0.5"]) == 0
    row = _rows(out)[0]
    assert 0 <= float(row["ema_top1"]) <= 100
    ckpt = torch.load(out / "last.pt", weights_only=True)
    assert ckpt["state_dict_ema"] is not None and "ema" not in ckpt
    assert any(not torch.equal(ckpt["state_dict_ema"][k], ckpt["model"][k]) for k in ckpt["model"] if "weight" in k)


@pytest.mark.slow
def test_compile_option_trains(data, tmp_path):
    out = tmp_path / "compiled"
    assert _main(["--recipe", "a3", "--data", str(data), "--output", str(out), "--workers", "0", "--quiet",
                  *SMALL, "sched.epochs=1", "sched.warmup_epochs=0", "model.compile=true"]) == 0
    assert float(_rows(out)[0]["train_loss"]) > 0
