"""The recipes of the original ResNet experiments end to end at tiny scale: cifar10_resnet (and ResNet-110's
error-ended warm-up) on the CIFAR-like sample, torchvision on the ImageNet-like one, the degradation study through
the sweep's local runner, and ResNet-18/34/101/152 scored by validate.py."""
from __future__ import annotations

import json

import pytest
import torch

import train
from rsb.data import cifar
from rsb.run.folder import read_metrics
from tests._tiny import TINY_OVERRIDES, tiny_data

CIFAR_TINY = ["model.name=cifar_resnet20", "train.batch_per_device=16", "data.val_holdout=20",
              "run.log_every=1"]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A small CIFAR-like sample where the built-in one is looked for (20 train, 5 test images per class)."""
    monkeypatch.setenv("RSB_CACHE", str(tmp_path / "cache"))
    cifar.ensure_cifar_sample(tmp_path / "cache" / f"cifar-sample-v{cifar.SAMPLE_VERSION}",
                              splits={"train": 20, "test": 5})


def test_cifar_recipe_runs_by_steps_with_a_short_last_epoch(tmp_path, cache, capsys):
    out = tmp_path / "run"
    # 180 train images at 16: 11 steps an epoch; 14 steps = one epoch and 3 steps; lr /10 at steps 5 and 12
    args = ["--recipe", "cifar10_resnet", "--output", str(out), *CIFAR_TINY, "sched.max_steps=14",
            "sched.milestones=[5,12]"]
    assert train.main(args) == 0
    assert "180 train images, 11 steps/epoch, 2 epochs, 14 steps" in capsys.readouterr().out
    rows = read_metrics(out)
    assert [(int(r["epoch"]), int(r["step"])) for r in rows] == [(1, 11), (2, 14)]
    assert [float(r["lr"]) for r in rows] == pytest.approx([0.1 * 16 / 128 / 10, 0.1 * 16 / 128 / 100])
    assert all(0 <= float(r["train_top1"]) <= 100 and r["val_top1"] for r in rows)
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["final_epoch"], summary["total_steps"], summary["val_images_scored"]) == (2, 14, 20)
    assert train.main(args) == 0 and "already finished" in capsys.readouterr().out


def test_validate_scores_a_cifar_checkpoint_on_the_test_set_as_training_did(tmp_path, cache, capsys):
    """The checkpoint carries the run's per-pixel mean image, so validate.py scores it alone, on CIFAR-10's test
    split (here the sample's 50 test images), and matches what training measured on the same images."""
    import csv

    import validate
    out = tmp_path / "run"
    assert train.main(["--recipe", "cifar10_resnet", "--output", str(out), "--quiet", *CIFAR_TINY,
                       "data.val_holdout=0", "sched.max_steps=6", "sched.milestones=[3,5]"]) == 0
    ckpt = torch.load(out / "last.pt", weights_only=True)
    assert ckpt["pixel_mean"].shape == (3, 32, 32) and 0 < float(ckpt["pixel_mean"].mean()) < 255
    results = tmp_path / "scores.csv"
    assert validate.main([str(out / "last.pt"), "--device", "cpu", "--workers", "0",
                          "--results-file", str(results)]) == 0
    assert "scoring 50 test images" in capsys.readouterr().out
    row = next(csv.DictReader(open(results)))
    trained = read_metrics(out)[-1]
    assert int(row["val_images"]) == 50
    assert float(row["val_top1"]) == pytest.approx(float(trained["val_top1"]), abs=1e-3)


def test_resnet110_warmup_ends_on_the_training_error_and_is_checkpointed(tmp_path, cache):
    out = tmp_path / "run110"
    # ResNet-110's recipe (its warm-up is the point; a 20-layer net keeps the test short)
    assert train.main(["--recipe", "cifar10_resnet110", "--output", str(out), *CIFAR_TINY, "--quiet",
                       "sched.max_steps=12", "sched.warmup_until_error=99.5"]) == 0
    ckpt = torch.load(out / "last.pt", weights_only=True)
    assert ckpt["schedule"] == {"warm_end": 10}  # the first error report (every 10 steps) was below 99.5%
    assert float(read_metrics(out)[-1]["lr"]) == pytest.approx(0.1 * 16 / 128)  # back to the peak


def test_cifar_archive_given_to_an_imagenet_recipe_is_one_sentence(tmp_path, cache, capsys):
    archive = tmp_path / cifar.ARCHIVE_NAME
    archive.write_bytes(b"not really")
    assert train.main(["--recipe", "a2", "--data", str(archive), "--output", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "looks like CIFAR-10" in err and "cifar10_resnet" in err


def test_torchvision_recipe_steps_down_by_epochs(tmp_path, monkeypatch):
    monkeypatch.setenv("RSB_CACHE", str(tmp_path / "cache"))
    data = tiny_data(tmp_path / "data")
    out = tmp_path / "tv"
    assert train.main(["--recipe", "torchvision", "--data", str(data), "--output", str(out), "--workers", "0",
                       "--quiet", *TINY_OVERRIDES, "model.name=resnet10t", "sched.warmup_epochs=0",
                       "sched.milestones=[1]"]) == 0
    rows = read_metrics(out)
    lr = 0.1 * (16 / 256) ** 0.5
    assert [float(r["lr"]) for r in rows] == pytest.approx([lr, lr / 10])
    assert all(r["train_top1"] for r in rows)


def test_degradation_study_through_the_sweep_runner(tmp_path, cache, monkeypatch):
    from rsb.study import run_degradation
    from rsb.sweep.spec import Executor
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    lines = []
    overrides = ["train.batch_per_device=20", "sched.max_steps=12", "sched.milestones=[6,9]", "run.log_every=1"]
    models = ("cifar_plain20", "cifar_resnet20")
    seeds = [0, 1]  # the two seeds run at once: each its own process, as on a machine with many cores
    done = run_degradation(tmp_path / "study", None, seeds, Executor(cluster="local", max_parallel=2, workers=0),
                           overrides, models=models, log=lines.append)
    assert done is not None, lines
    assert (tmp_path / "study" / "figure6.png").stat().st_size > 10_000
    rows = {r["model"]: r for r in done["rows"]}
    assert set(rows) == set(models)
    assert rows["cifar_resnet20"]["paper_test_error"] == 8.75 and rows["cifar_resnet20"]["params_m"] == 0.27
    assert rows["cifar_plain20"]["seeds"] == 2 and rows["cifar_plain20"]["iterations"] == 12
    assert all(0 <= r["test_error"] <= 100 and r["test_error_std"] is not None for r in rows.values())
    assert "| cifar_resnet20 | 0.27M | 2 | 12 |" in (tmp_path / "study" / "report.md").read_text()
    spec = json.loads((tmp_path / "study" / "cifar_plain20" / "sweep.json").read_text())
    assert "data.val_holdout=0" in spec["overrides"] and "model.name=cifar_plain20" in spec["overrides"]
    lines.clear()  # a second call trains nothing and draws again
    assert run_degradation(tmp_path / "study", None, seeds, Executor(cluster="local"), overrides,
                           models=models, log=lines.append) is not None
    assert any("skipping 2 finished seed(s)" in line for line in lines)


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet101", "resnet152"])
def test_resnet_family_trains_with_any_recipe_and_validate_scores_it(name, tmp_path, monkeypatch):
    import timm

    import validate
    from rsb.training.run_config import build_config
    from rsb.data.sample import default_sample_root, ensure_sample_dataset
    from rsb.evaluation import table
    from rsb.models.factory import create_model
    monkeypatch.setenv("RSB_CACHE", str(tmp_path / "cache"))
    for recipe in ("a1", "a3", "torchvision"):
        assert build_config(recipe, [f"model.name={name}"], sample=False).model.name == name
    model = create_model(build_config("a2", [f"model.name={name}"], sample=True).model)
    weights = tmp_path / f"{name}.pt"
    torch.save(model.state_dict(), weights)
    ensure_sample_dataset(default_sample_root(), splits={"train": 1, "val": 2, "v2": 1})
    assert validate.main(["--model", name, "--weights", str(weights), "--num-classes", "10", "--img-size", "32",
                          "--workers", "0", "--quiet", "--out-dir", str(tmp_path / "out")]) == 0
    row = table.read_table(tmp_path / "out")[0]
    expected = sum(p.numel() for p in timm.create_model(name, num_classes=10).parameters()) / 1e6
    assert row["model"] == name and row["param_count"] == pytest.approx(round(expected, 2))
    assert row["val_images"] == 20 and 0 <= row["val_top1"] <= 100
