"""validate.py end to end on a checkpoint of a tiny sample run: sample and explicit data, overrides, several
checkpoints in one table, timm weights files, user errors; and the eval transform against a hand computation."""
from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

import train
import validate
from rsb.run.checkpoint import save_atomic
from rsb.data.sample import default_sample_root, ensure_sample_dataset
from rsb.data.transforms import eval_transform
from rsb.errors import UserError
from rsb.evaluation import checkpoints, table

# A small ResNet: the recipe's ResNet-50 would make every checkpoint these tests read, copy and score ~280 MB.
TINY_RUN = ["--recipe", "a2", "--workers", "0", "--quiet", "model.name=resnet10t", "model.num_classes=10",
            "data.train_size=32", "data.test_size=32", "sched.epochs=1", "sched.warmup_epochs=0",
            "train.batch_per_device=16", "optim.batch_rule=sqrt"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A one-epoch A2 run on a tiny sample set drawn where the sample data lives under $RSB_CACHE."""
    base = tmp_path_factory.mktemp("validate")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RSB_CACHE", str(base / "cache"))
        root = ensure_sample_dataset(default_sample_root(), splits={"train": 8, "val": 4, "v2": 2})
        assert train.main(["--data", str(root), "--output", str(base / "run"), *TINY_RUN]) == 0
    return SimpleNamespace(root=root, run=base / "run", cache=base / "cache")


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RSB_CACHE", str(tmp_path / "cache"))


def _validate(args, out: Path) -> list[dict]:
    assert validate.main([*map(str, args), "--workers", "0", "--quiet", "--out-dir", str(out)]) == 0
    return table.read_table(out)


def test_sample_run_checkpoint_scored_with_no_data_flags(trained, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RSB_CACHE", str(trained.cache))  # where train.py's sample data is found
    rows = _validate([trained.run / "last.pt", "--batch-size", "16"], tmp_path / "out")
    out = capsys.readouterr().out
    assert "no --data or --imagenet-v2 given: scoring the built-in sample data" in out
    assert len(rows) == 1
    r = rows[0]
    assert 0 <= r["val_top1"] <= r["val_top5"] <= 100 and 0 <= r["v2_top1"] <= r["v2_top5"] <= 100
    assert r["gap"] == pytest.approx(r["val_top1"] - r["v2_top1"], abs=1e-3)
    assert (r["val_images"], r["v2_images"], r["v2_set"]) == (40, 20, "sample")  # v2: 2 per class, per COMPLETE.json
    assert (r["img_size"], r["crop_pct"], r["interpolation"]) == (32, 0.95, "bicubic")  # the run's test settings
    assert (r["epoch"], r["seed"], r["recipe"], r["model"], r["run"]) == (1, 0, "a2", "resnet10t", "run")
    # The same weights, transform and autocast as the run's own end-of-epoch evaluation: the same score
    # (within one image, as bfloat16 kernels may round differently).
    import csv
    with open(trained.run / "metrics.csv") as f:
        train_val = float(list(csv.DictReader(f))[-1]["val_top1"])
    assert abs(r["val_top1"] - train_val) <= 2.5 + 1e-6
    print(f"\nsample run: val top-1 {r['val_top1']:.2f} top-5 {r['val_top5']:.2f}, "
          f"V2 top-1 {r['v2_top1']:.2f} top-5 {r['v2_top5']:.2f}")


def test_explicit_data_flags_and_test_setting_overrides(trained, tmp_path):
    rows = _validate([trained.run / "last.pt", "--data", trained.root, "--imagenet-v2", trained.root / "v2",
                      "--img-size", "48", "--crop-pct", "1.0", "--interpolation", "bilinear"], tmp_path / "out")
    r = rows[0]
    assert (r["img_size"], r["crop_pct"], r["interpolation"]) == (48, 1.0, "bilinear")
    assert (r["val_images"], r["v2_images"]) == (40, 20)
    assert r["real_top1"] is None and r["real_images"] is None


def test_three_processes_score_each_image_once(trained, tmp_path):
    """Under torchrun (gloo, CPU) each process scores its contiguous share: 20 V2 images over 3 processes are
    7 + 7 + 6 (a DistributedSampler would pad them to 21). Counts and scores equal one process's."""
    import os
    import socket
    import subprocess
    import sys
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = [str(trained.run / "last.pt"), "--imagenet-v2", str(trained.root / "v2"), "--workers", "0", "--quiet",
            "--device", "cpu"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=3", f"--master_port={port}",
           str(Path(validate.__file__)), *args, "--out-dir", str(tmp_path / "ddp")]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path,
                         env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "3 process(es)" in res.stdout and res.stdout.count("results written to") == 1  # rank 0 only
    ddp = table.read_table(tmp_path / "ddp")[0]
    single = _validate(args[:3], tmp_path / "single")[0]
    assert ddp["v2_images"] == single["v2_images"] == 20
    assert (ddp["v2_top1"], ddp["v2_top5"]) == (single["v2_top1"], single["v2_top5"])


def test_several_checkpoints_give_one_table_in_csv_and_json(trained, tmp_path, capsys):
    ckpt = torch.load(trained.run / "last.pt", weights_only=True)
    for seed, epoch in ((1, 3), (2, 5)):
        ckpt["config"]["train"]["seed"], ckpt["epoch"] = seed, epoch
        (tmp_path / "runs" / f"seed{seed}").mkdir(parents=True)
        save_atomic(ckpt, tmp_path / "runs" / f"seed{seed}" / "last.pt")  # re-digests if checkpoints carry one
    out = tmp_path / "table"
    rows = _validate([f"{tmp_path}/runs/seed*", "--data", trained.root, "--imagenet-v2", trained.root / "v2"], out)
    assert [(r["seed"], r["epoch"], r["run"]) for r in rows] == [(1, 3, "seed1"), (2, 5, "seed2")]
    assert rows[0]["val_top1"] == rows[1]["val_top1"] and rows[0]["v2_top1"] == rows[1]["v2_top1"]  # same weights
    # Both files are written, hold every column, and read back to the same typed rows.
    assert (out / "results.csv").read_text().splitlines()[0] == ",".join(table.COLUMNS)
    doc = json.loads((out / "results.json").read_text())
    assert doc["format"] == table.FORMAT and doc["columns"] == table.COLUMNS and len(doc["rows"]) == 2
    assert table.read_table(out / "results.csv") == table.read_table(out / "results.json") == rows
    printed = capsys.readouterr().out
    assert "seed1/last.pt" in printed and "seed2/last.pt" in printed and "v2_top1" in printed


def test_table_round_trip_and_reader_errors(tmp_path):
    rows = [table.make_row(checkpoint="a/last.pt", epoch=300, seed=1, val_top1=79.834567, v2_top1=67.81,
                           v2_set="matched-frequency", img_size=224, crop_pct=0.95, interpolation="bicubic"),
            table.make_row(checkpoint="b/last.pt", epoch=300, seed=2, real_top1=85.45, real_images=46837)]
    table.write_table(rows, tmp_path)
    back = table.read_table(tmp_path)
    assert back == table.read_table(tmp_path / "results.csv") == rows
    assert back[0]["val_top1"] == 79.835 and back[0]["gap"] == pytest.approx(12.025)
    assert back[1]["val_top1"] is None and back[1]["real_images"] == 46837
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(UserError, match="is not a validation results table"):
        table.read_table(tmp_path / "x.json")
    with pytest.raises(UserError, match="does not exist"):
        table.read_table(tmp_path / "missing.csv")


def test_checkpoint_arguments_expand_paths_globs_and_run_folders(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("last.pt", "best.pt", "epoch_0001.pt"):
        (run / name).write_bytes(b"x")
    (tmp_path / "empty").mkdir()
    assert checkpoints.expand([str(run)]) == [run / "last.pt", run / "best.pt"]
    assert checkpoints.expand([str(run / "*.pt"), str(run / "last.pt")]) == \
        [run / "best.pt", run / "epoch_0001.pt", run / "last.pt"]  # glob order, no repeats
    with pytest.raises(UserError, match=r"no checkpoints matched '.*nothing\*'"):
        checkpoints.expand([str(tmp_path / "nothing*")])
    with pytest.raises(UserError, match="run folder .*empty has no last.pt or best.pt"):
        checkpoints.expand([str(tmp_path / "empty")])
    with pytest.raises(UserError, match="checkpoint .*nope.pt does not exist"):
        checkpoints.expand([str(tmp_path / "nope.pt")])


def test_timm_weights_files_score_like_the_checkpoint(trained, tmp_path):
    from safetensors.torch import save_file
    # .contiguous(): a run saves channels_last weights, which safetensors refuses to write as they are.
    state = torch.load(trained.run / "last.pt", weights_only=True)["model"]
    state = {k: v.contiguous() for k, v in state.items()}
    save_file(state, str(tmp_path / "w.safetensors"))
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "w.pth")  # DDP-style
    item = checkpoints.from_weights("resnet10t", tmp_path / "w.safetensors", num_classes=10)
    # timm's pretrained config of resnet10t (resnet10t.c3_in1k): 176 px, crop 0.875, bicubic
    assert (item.settings.size, item.settings.crop_pct, item.settings.interpolation) == (176, 0.875, "bicubic")
    from_pth = checkpoints.load_weights_file(tmp_path / "w.pth")  # wrapper and "module." prefix removed
    assert from_pth.keys() == state.keys() and all(torch.equal(from_pth[k], state[k]) for k in state)
    # Both scored at the run's test settings (32 px, the recipe's crop 0.95, bicubic): the same scores.
    rows = _validate([trained.run / "last.pt", "--model", "resnet10t", "--weights", tmp_path / "w.safetensors",
                      "--num-classes", "10", "--img-size", "32", "--crop-pct", "0.95", "--data", trained.root],
                     tmp_path / "a")
    assert [r["checkpoint"].rsplit("/", 1)[-1] for r in rows] == ["last.pt", "w.safetensors"]
    assert rows[0]["val_top1"] == rows[1]["val_top1"] and rows[0]["val_top5"] == rows[1]["val_top5"]
    assert rows[1]["epoch"] is None and rows[1]["model"] == "resnet10t" and rows[1]["img_size"] == 32


def test_real_labels_reach_the_table(tmp_path, monkeypatch):
    """--data with --real-labels through the command line, on test_imagenet_v2's hand-computed ReaL case."""
    from tests.evaluation.test_imagenet_v2 import GrayDecoder, _real_val
    root, real = _real_val(tmp_path)
    (tmp_path / "fake.pt").write_bytes(b"")
    fake = checkpoints.Scorable(tmp_path / "fake.pt", GrayDecoder(), 6, checkpoints.EvalSettings(16, 1.0, "bilinear"),
                                None, False, {"run": "r", "model": "gray", "epoch": 1, "seed": 3})
    monkeypatch.setattr(checkpoints, "from_checkpoint", lambda path, ema=False: fake)
    r = _validate([tmp_path / "fake.pt", "--data", root, "--real-labels", real], tmp_path / "out")[0]
    assert (r["real_top1"], r["real_top5"], r["real_images"]) == (40.0, 80.0, 5)
    assert (r["val_top1"], r["val_images"], r["v2_top1"], r["gap"]) == (50.0, 6, None, None)


def _user_error(args, capsys) -> str:
    assert validate.main([*map(str, args), "--workers", "0", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and err.endswith("."), err
    return err


def test_user_errors_are_one_sentence_with_exit_2(trained, tmp_path, capsys):
    ckpt = trained.run / "last.pt"
    (tmp_path / "corrupt.pt").write_bytes(ckpt.read_bytes()[:1000])
    (tmp_path / "wnid" / "n01440764").mkdir(parents=True)
    (tmp_path / "bad.tar.gz").write_bytes(b"not really an archive")
    assert "does not exist" in _user_error([tmp_path / "missing.pt"], capsys)
    assert "cannot be read" in _user_error([tmp_path / "corrupt.pt"], capsys)
    assert "no checkpoints matched" in _user_error([f"{tmp_path}/runs/*/last.pt"], capsys)
    assert "give at least one checkpoint" in _user_error([], capsys)
    assert "--model needs --weights" in _user_error([ckpt, "--model", "resnet50"], capsys)
    assert "needs --data" in _user_error([ckpt, "--real-labels", tmp_path / "real.json"], capsys)
    assert "WordNet-id class folders" in _user_error([ckpt, "--imagenet-v2", tmp_path / "wnid"], capsys)
    err = _user_error([ckpt, "--imagenet-v2", tmp_path / "bad.tar.gz"], capsys)
    assert "not one of the published ImageNet-V2 archives" in err
    assert "data folder" in _user_error([ckpt, "--data", tmp_path / "nodata"], capsys)
    assert "--crop-pct must be positive" in _user_error([ckpt, "--crop-pct", "0"], capsys)
    # With no data flags the sample data is used, which only fits a 10-class model.
    import timm
    small = timm.create_model("resnet10t", num_classes=1000)
    torch.save({"model": small.state_dict(), "config": {"model": {"name": "resnet10t", "num_classes": 1000}}},
               tmp_path / "imagenet.pt")
    err = _user_error([tmp_path / "imagenet.pt"], capsys)
    assert "sample data has 10 classes but the model has 1000" in err


def test_eval_transform_matches_a_hand_computed_resize_and_center_crop():
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8))  # 400 wide, 300 high
    out = np.asarray(eval_transform(224, 0.95, "bicubic")(img))  # uint8 CHW (a tensor or an array)
    assert out.dtype == np.uint8 and out.shape == (3, 224, 224)
    # By hand: short side -> floor(224 / 0.95) = 235, long side 400 * 235 / 300 = 313.3 -> 313; center crop
    # 224 at left round(89 / 2) = 44 and top round(11 / 2) = 6 (Python's round: halves to even).
    assert math.floor(224 / 0.95) == 235
    resized = np.asarray(img.resize((313, 235), Image.BICUBIC))
    expected = resized[6:6 + 224, 44:44 + 224].transpose(2, 0, 1)
    assert np.array_equal(out, expected)
    # One pixel off in either direction is a different image: the check pins the crop position.
    assert not np.array_equal(out, resized[6:230, 45:269].transpose(2, 0, 1))
    assert not np.array_equal(out, resized[5:229, 44:268].transpose(2, 0, 1))


def test_float32_by_default_and_amp_only_where_native(trained, tmp_path, capsys, monkeypatch):
    """As timm's validate.py, scores are float32 unless --amp asks for autocast, which the device must have."""
    from rsb.runtime import precision
    monkeypatch.setenv("RSB_CACHE", str(trained.cache))  # where train.py's sample data is found
    _validate([trained.run / "last.pt", "--batch-size", "16"], tmp_path / "a")
    assert "float32" in capsys.readouterr().out
    monkeypatch.setattr(precision, "cpu_native_features", lambda: [])
    _validate([trained.run / "last.pt", "--batch-size", "16", "--amp"], tmp_path / "b")
    assert "note: float32 instead of the recipe's bfloat16 autocast" in capsys.readouterr().out
    monkeypatch.setattr(precision, "cpu_native_features", lambda: ["AMX"])
    rows = _validate([trained.run / "last.pt", "--batch-size", "16", "--amp"], tmp_path / "c")
    out = capsys.readouterr().out
    assert "bfloat16 autocast" in out and rows[0]["val_images"] == 40, out


def test_interpolation_choices_are_the_recipes_test_interpolations(capsys):
    from rsb import validate as command
    from rsb.config.schema import CHOICES
    for name in CHOICES["data.test_interpolation"]:
        assert command.parse_args(["last.pt", "--interpolation", name]).interpolation == name
    with pytest.raises(SystemExit) as refused:
        command.parse_args(["last.pt", "--interpolation", "random"])  # a training-only choice
    assert refused.value.code == 2 and "invalid choice: 'random'" in capsys.readouterr().err
