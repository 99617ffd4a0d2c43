"""The data layouts beyond class folders, each built here from the tiny sample data: tar shards (written by
rsb-shards), parquet files (written with pyarrow, as Hugging Face lays them out) and a flat val/ with its ground
truth in both formats. Each must give the folder layout's images and labels, train and validate end to end, keep
bitwise resume (shards), report a corrupt member by shard and key, and fail with one sentence when no layout
matches."""
from __future__ import annotations

import csv
import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from scipy.io import savemat

import train
import validate
from tests._tiny import REPO, TINY_OVERRIDES, tiny_data
from rsb.run import checkpoint
from rsb.data import tar_shards
from rsb.data.dataset import SourceDataset
from rsb.data.layout import open_splits, open_val
from rsb.data.sample import CLASS_IDS
from rsb.errors import UserError
from rsb.evaluation import real_labels, table
from rsb.shards import main as shards_main, parse_size

SMALL = [*TINY_OVERRIDES, "model.name=resnet10t", "sched.epochs=1", "sched.warmup_epochs=0"]
# The devkit's ILSVRC2012 ids are not the sorted order: here id k + 1 is the class in position 9 - k.
ILSVRC_ID = {wnid: len(CLASS_IDS) - i for i, wnid in enumerate(CLASS_IDS)}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    base = tmp_path_factory.mktemp("sources")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RSB_CACHE", str(base / "cache"))
        yield base


@pytest.fixture(scope="module")
def folder(env):
    return tiny_data(env / "folder")


def _flat(env, folder, fmt: str) -> Path:
    """train/ as in the folder layout, val/ flat as ILSVRC2012_val_%08d.JPEG (numbered in a shuffled order, so
    file order is not class order) and the ground truth beside it."""
    root = env / f"flat-{fmt}"
    if root.exists():
        return root
    (root / "val").mkdir(parents=True)
    os.symlink(folder / "train", root / "train")
    files = sorted((folder / "val").glob("*/*.JPEG"))
    order = np.random.default_rng(1).permutation(len(files))
    truth = {}
    for number, k in enumerate(order, start=1):
        stem = f"ILSVRC2012_val_{number:08d}"
        shutil.copy(files[k], root / "val" / f"{stem}.JPEG")
        truth[stem] = files[k].parent.name
    if fmt == "kaggle":
        with open(root / "LOC_val_solution.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["ImageId", "PredictionString"])
            for stem, wnid in truth.items():
                w.writerow([stem, f"{wnid} 1 2 30 40 {wnid} 5 6 20 20"])
    else:
        kit = root / "ILSVRC2012_devkit_t12" / "data"
        kit.mkdir(parents=True)
        (kit / "ILSVRC2012_validation_ground_truth.txt").write_text(
            "".join(f"{ILSVRC_ID[truth[s]]}\n" for s in sorted(truth)))
        synsets = np.array([(ILSVRC_ID[w], w, 0) for w in CLASS_IDS] + [(len(CLASS_IDS) + 1, "n00001740", 10)],
                           dtype=[("ILSVRC2012_ID", "O"), ("WNID", "O"), ("num_children", "O")])
        savemat(kit / "meta.mat", {"synsets": synsets})
    return root


@pytest.fixture(scope="module")
def layouts(env, folder):
    shards = env / "shards"
    assert shards_main([str(folder), str(shards), "--shard-size", "20KB"]) == 0
    parquet = env / "parquet"
    (parquet / "data").mkdir(parents=True)
    for split, source in zip(("train", "validation"), open_splits(folder)):
        rows = [{"bytes": source.read(i), "path": source.name(i)} for i in range(len(source))]
        t = pa.table({"image": pa.array(rows, pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
                      "label": pa.array(source.labels, pa.int64())})
        # Hugging Face's file names; small row groups, so an image is read from the middle of a file.
        pq.write_table(t, parquet / "data" / f"{split}-00000-of-00001.parquet", row_group_size=16)
    return SimpleNamespace(folder=folder, shards=shards, parquet=parquet, kaggle=_flat(env, folder, "kaggle"),
                           devkit=_flat(env, folder, "devkit"))


def _content(source) -> list:
    return sorted((source.name(i).split(".")[0], int(source.labels[i]), source.read(i)) for i in range(len(source)))


@pytest.mark.parametrize("kind", ["shards", "parquet", "kaggle", "devkit"])
def test_each_layout_gives_the_folder_layouts_images_and_labels(layouts, kind):
    ref_train, ref_val = open_splits(layouts.folder)
    train_src, val_src = open_splits(getattr(layouts, kind))
    if kind in ("kaggle", "devkit"):  # train/ is the folder's; val is renamed, so compare by content
        assert _content(train_src) == _content(ref_train)
        assert sorted((l, b) for _, l, b in _content(val_src)) == sorted((l, b) for _, l, b in _content(ref_val))
    else:
        assert _content(train_src) == _content(ref_train) and _content(val_src) == _content(ref_val)
    assert train_src.num_classes == 10 and len(val_src) == 40
    decoded = SourceDataset(val_src)[3][0]
    assert decoded.size == (64, 64) and decoded.mode == "RGB"


def test_devkit_ids_go_through_meta_mat_to_sorted_wordnet_ids(layouts):
    # Read as if the ids were positions, every label would be wrong: the mapping is what makes them right.
    val = open_splits(layouts.devkit)[1]
    kaggle = open_splits(layouts.kaggle)[1]
    assert [val.name(i) for i in range(len(val))] == [kaggle.name(i) for i in range(len(kaggle))]
    np.testing.assert_array_equal(val.labels, kaggle.labels)
    raw = np.array([int(x) for x in (layouts.devkit / "ILSVRC2012_devkit_t12" / "data" /
                                     "ILSVRC2012_validation_ground_truth.txt").read_text().split()])
    assert (raw - 1 != val.labels).mean() > 0.8


def test_shard_index_is_cached_and_rebuilt_when_a_shard_changes(layouts, monkeypatch):
    files = sorted(layouts.shards.glob("imagenet1k-train-*.tar"))
    info = json.loads((layouts.shards / "_info.json").read_text())
    assert info["splits"]["train"]["filenames"] == [f.name for f in files]  # the file timm's wds reader reads
    assert sum(info["splits"]["train"]["shard_lengths"]) == 100 and len(files) > 1
    assert all(f.stat().st_size <= parse_size("20KB") for f in files)
    open_splits(layouts.shards)
    with monkeypatch.context() as m:
        m.setattr(tar_shards, "scan_shard", lambda p: pytest.fail("a cached index was scanned again"))
        again = open_splits(layouts.shards)[0]
    assert len(again) == 100
    os.utime(files[0], ns=(1, 1))
    scanned = []
    real = tar_shards.scan_shard
    monkeypatch.setattr(tar_shards, "scan_shard", lambda p: scanned.append(p) or real(p))
    assert len(open_splits(layouts.shards)[0]) == 100 and len(scanned) == len(files)


def test_real_labels_match_shard_keys(layouts, env):
    # Shards written from the flat val keep the ILSVRC2012_val_ names as keys: ReaL finds each image by them.
    shards = env / "flat-shards"
    assert shards_main([str(layouts.kaggle), str(shards), "--shard-size", "1MB"]) == 0
    flat, sharded = open_val(layouts.kaggle), open_val(shards)
    real = [[(n * 7) % 10, (n * 3) % 10] for n in range(len(flat))]
    by_name = {flat.name(i).split(".")[0]: row for i, row in
               enumerate(real_labels.real_targets(real, flat).tolist())}
    got = real_labels.real_targets(real, sharded).tolist()
    assert got == [by_name[sharded.name(i).split(".")[0]] for i in range(len(sharded))]


@pytest.mark.parametrize("kind", ["shards", "parquet", "kaggle", "devkit"])
def test_tiny_training_and_validation_on_each_layout(layouts, kind, tmp_path):
    torch.set_num_threads(1)
    data = getattr(layouts, kind)
    run = tmp_path / "run"
    assert train.main(["--recipe", "a2", "--data", str(data), "--output", str(run), "--workers", "0", "--quiet",
                       *SMALL]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["final_epoch"] == 1 and 0 <= summary["final_val_top1"] <= 100
    out = tmp_path / "scores"
    assert validate.main([str(run / "last.pt"), "--data", str(data), "--workers", "0", "--quiet",
                          "--out-dir", str(out)]) == 0
    row = table.read_table(out)[0]
    assert int(row["val_images"]) == 40
    assert float(row["val_top1"]) == pytest.approx(summary["final_val_top1"])  # the same 40 images and labels


def _args(data, out, workers=1):
    return [sys.executable, str(REPO / "train.py"), "--recipe", "a2", "--data", str(data), "--output", str(out),
            "--workers", str(workers), "--device", "cpu", *TINY_OVERRIDES, "model.name=resnet10t",
            "run.deterministic=true", "run.checkpoint_every_steps=1", "run.log_every=1"]


def _env():
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")


def test_shard_run_killed_mid_epoch_resumes_bitwise_equal(layouts, tmp_path):
    reference = tmp_path / "reference"
    # The uninterrupted run alongside the interrupted one (they share nothing but the data).
    ref_proc = subprocess.Popen(_args(layouts.shards, reference), cwd=REPO, env=_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
    run = tmp_path / "interrupted"
    proc = subprocess.Popen(_args(layouts.shards, run), cwd=REPO, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
        if "step 8/" in line:  # epoch 2, step 2 of 6: a mid-epoch checkpoint was written at step 8
            proc.send_signal(signal.SIGKILL)
            break
    proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL
    mid = checkpoint.load(run / "last.pt")
    assert mid["epoch"] == 1 and 0 < mid["epoch_step"] < 6
    res = subprocess.run(_args(layouts.shards, run), cwd=REPO, env=_env(), capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0 and "resumed from" in res.stdout, res.stdout + res.stderr
    out, _ = ref_proc.communicate(timeout=300)
    assert ref_proc.returncode == 0, out
    ref, got = checkpoint.load(reference / "last.pt"), checkpoint.load(run / "last.pt")
    assert got["step"] == ref["step"] == 12
    assert all(torch.equal(ref["model"][k], got["model"][k]) for k in ref["model"])


def _corrupt(shards: Path, picks) -> list[str]:
    """Overwrite the image bytes of members `picks` of the train split in place; their where() strings."""
    source = open_splits(shards)[0]
    where = []
    for i in picks:
        shard, at = source.shards[source._shard[i]], int(source._offset[i])
        with open(shard, "r+b") as f:
            f.seek(at)
            f.write(b"\x00" * int(source._size[i]))
        where.append(source.where(i))
    return where


def test_a_corrupt_member_is_reported_by_shard_and_key_and_skipped(layouts, env, tmp_path, capsys):
    bad = env / "bad-shards"
    if not bad.exists():
        shutil.copytree(layouts.shards, bad)
    [where] = _corrupt(bad, [5])
    assert ".tar:" in where and where.endswith(".jpg")
    source = open_splits(bad)[0]
    img, label, skipped = SourceDataset(source)[5]
    assert skipped == 1 and label == int(source.labels[6])
    assert f"skipping unreadable image {where}" in capsys.readouterr().err
    # In training: skipped under run.max_bad_image_fraction, named in the warnings; too many stop the run.
    ok = tmp_path / "ok"
    assert train.main(["--recipe", "a2", "--data", str(bad), "--output", str(ok), "--workers", "0", "--quiet",
                       *SMALL, "aug.repeated_aug=1", "run.max_bad_image_fraction=0.5"]) == 0
    assert where in capsys.readouterr().err
    _corrupt(bad, range(0, 100, 2))
    assert train.main(["--recipe", "a2", "--data", str(bad), "--output", str(tmp_path / "stop"), "--workers", "0",
                       "--quiet", *SMALL]) == 2
    err = capsys.readouterr().err
    assert "unreadable images" in err and "Traceback" not in err


def _error(call) -> str:
    with pytest.raises(UserError) as e:
        call()
    return str(e.value)


def test_layout_detection_errors_are_one_sentence(layouts, env, tmp_path):
    (tmp_path / "empty").mkdir()
    msg = _error(lambda: open_splits(tmp_path / "empty"))
    assert "has no 'train' folder" in msg and "tar shards" in msg and "parquet" in msg and "flat val/" in msg
    only_train = tmp_path / "only-train"
    only_train.mkdir()
    for f in layouts.shards.glob("*train*.tar"):
        os.symlink(f, only_train / f.name)
    assert "none named for the val split" in _error(lambda: open_splits(only_train))
    no_truth = tmp_path / "no-truth"
    no_truth.mkdir()
    os.symlink(layouts.kaggle / "train", no_truth / "train")
    os.symlink(layouts.kaggle / "val", no_truth / "val")
    assert "--val-labels" in _error(lambda: open_splits(no_truth))
    assert len(open_splits(no_truth, val_labels=layouts.kaggle / "LOC_val_solution.csv")[1]) == 40
    lone = tmp_path / "ILSVRC2012_validation_ground_truth.txt"
    lone.write_text("1\n" * 40)
    assert "meta.mat" in _error(lambda: open_splits(no_truth, val_labels=lone))
    gz = tmp_path / "gz"
    gz.mkdir()
    for split in ("train", "validation"):
        (gz / f"imagenet1k-{split}-0000.tar").write_bytes(gzip.compress(b"x" * 1000))
    assert "not an uncompressed tar" in _error(lambda: open_splits(gz))
    assert "does not exist" in _error(lambda: open_splits(tmp_path / "nope"))


def test_rsb_shards_command_line(layouts, tmp_path, capsys):
    assert shards_main([str(layouts.folder), str(layouts.shards)]) == 2  # it already holds shards
    assert "already holds .tar files" in capsys.readouterr().err
    assert shards_main([str(layouts.folder), str(tmp_path / "x"), "--shard-size", "big"]) == 2
    assert "not a size" in capsys.readouterr().err
    res = subprocess.run([sys.executable, "-m", "rsb.shards", "--help"], cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0 and "imagenet1k-train-0000.tar" in res.stdout
