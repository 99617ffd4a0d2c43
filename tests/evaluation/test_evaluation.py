"""The evaluator library (rsb.evaluation.run) through validate.py: a timm model scored with its own pretrained
config and flags over it, param_count and the error columns, --results-file and what a second run does to the
table; and the pieces the refactor shares with training (the one scoring loop, the one val-folder rule)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import timm
import torch

import validate
from rsb.data.batch import DeviceBatch
from rsb.data.layout import open_splits
from rsb.data.loader import eval_loader
from rsb.training.engine import evaluate
from rsb.errors import UserError
from rsb.evaluation import checkpoints, scoring, sets, table
from rsb.evaluation.checkpoints import EvalSettings
from rsb.models.factory import param_count_millions
from tests.evaluation.test_imagenet_v2 import GrayDecoder, _jpeg, _real_val, v2_tree

CLASSES = 10


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RSB_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def tiny(tmp_path):
    """A 10-image V2-layout set and a timm model's state_dict saved without pretrained weights."""
    v2 = v2_tree(tmp_path / "v2", CLASSES, per_class=1)

    def weights(name: str):
        torch.manual_seed(0)
        model = timm.create_model(name, pretrained=False, num_classes=CLASSES)
        torch.save(model.state_dict(), tmp_path / f"{name}.pth")
        return tmp_path / f"{name}.pth", model
    return v2, weights


def _run(args, capsys) -> str:
    assert validate.main([*map(str, args), "--workers", "0", "--quiet", "--device", "cpu"]) == 0, \
        capsys.readouterr().err
    return capsys.readouterr().out


def _weights_args(v2, path, name):
    return ["--model", name, "--weights", path, "--num-classes", CLASSES, "--imagenet-v2", v2,
            "--v2-per-class", 1, "--batch-size", 5]


# ---- a timm model's own test settings ---------------------------------------------------------------------------

def test_weights_are_scored_with_the_models_pretrained_config(tiny, tmp_path, capsys):
    v2, weights = tiny
    path, model = weights("test_vit")  # pretrained cfg: 160 px, crop 0.95, bicubic, mean = std = 0.5
    cfg = model.pretrained_cfg
    assert (cfg["input_size"], cfg["crop_pct"], cfg["mean"]) == ((3, 160, 160), 0.95, (0.5, 0.5, 0.5))
    out = _run([*_weights_args(v2, path, "test_vit"), "--results-file", tmp_path / "r.csv"], capsys)
    assert "test_vit (0.31M parameters), 160 px, crop 0.95, bicubic, mean (0.5, 0.5, 0.5), std (0.5, 0.5, 0.5)" \
        in out, out
    row = table.read_table(tmp_path / "r.csv")[0]
    assert (row["img_size"], row["crop_pct"], row["interpolation"], row["model"]) == (160, 0.95, "bicubic",
                                                                                      "test_vit")
    # Another model's config differs where test_vit's matches the RSB defaults (crop 0.875 vs 0.95).
    path10, _ = weights("resnet10t")
    s = checkpoints.from_weights("resnet10t", path10, CLASSES).settings
    assert (s.size, s.crop_pct, s.interpolation, s.mean) == (176, 0.875, "bicubic", (0.485, 0.456, 0.406))


def test_flags_override_the_pretrained_config(tiny, tmp_path, capsys):
    v2, weights = tiny
    path, _ = weights("test_vit")
    out = _run([*_weights_args(v2, path, "test_vit"), "--img-size", 48, "--crop-pct", 1.0, "--interpolation",
                "bilinear", "--mean", 0, 0, 0, "--std", 1, 1, 1, "--results-file", tmp_path / "r.csv"], capsys)
    assert "48 px, crop 1.0, bilinear, mean (0, 0, 0), std (1, 1, 1)" in out, out
    row = table.read_table(tmp_path / "r.csv")[0]
    assert (row["img_size"], row["crop_pct"], row["interpolation"]) == (48, 1.0, "bilinear")


class InputRecorder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.means = []

    def forward(self, x):
        self.means.append(x.mean().item())
        return torch.zeros(x.shape[0], 3)


def test_mean_and_std_reach_the_pixels(tmp_path):
    s = sets.v2_set(v2_tree(tmp_path / "v2", 3), 3, per_class=1)  # gray 128 images
    cpu = torch.device("cpu")
    for mean, std, want in (((0, 0, 0), (1, 1, 1), 128 / 255),
                            ((0.5, 0.5, 0.5), (0.25, 0.25, 0.25), (128 / 255 - 0.5) / 0.25),
                            (None, None, np.mean([(128 / 255 - m) / d for m, d in zip((0.485, 0.456, 0.406),
                                                                                      (0.229, 0.224, 0.225))]))):
        model = InputRecorder()
        settings = EvalSettings(8, 1.0, "bilinear").overridden(mean=mean, std=std)
        scoring.score_set(model, s, settings, device=cpu, batch_size=3, workers=0, progress=False)
        assert model.means == [pytest.approx(want, abs=2 / 255)], (mean, std)  # JPEG may move a level or two


def test_mean_and_std_must_be_three_positive_values(tiny, capsys):
    v2, weights = tiny
    path, _ = weights("test_vit")
    assert validate.main([*map(str, _weights_args(v2, path, "test_vit")), "--std", "1", "0", "1"]) == 2
    assert capsys.readouterr().err.strip() == "error: --std values must be positive, got 1.0 0.0 1.0."
    with pytest.raises(SystemExit):  # argparse: --mean takes exactly three numbers
        validate.parse_args(["--mean", "0.5", "0.5"])


# ---- param_count and the error columns --------------------------------------------------------------------------

def test_param_count_and_error_columns_as_in_timms_results(tiny, tmp_path, capsys):
    v2, weights = tiny
    path, model = weights("resnet10t")
    _run([*_weights_args(v2, path, "resnet10t"), "--img-size", 32, "--results-file", tmp_path / "r.csv"], capsys)
    row = table.read_table(tmp_path / "r.csv")[0]
    assert row["param_count"] == round(sum(p.numel() for p in model.parameters()) / 1e6, 2) == 4.93
    assert param_count_millions(model) == row["param_count"]
    assert row["v2_top1_err"] == pytest.approx(100 - row["v2_top1"], abs=1e-9)
    assert row["v2_top5_err"] == pytest.approx(100 - row["v2_top5"], abs=1e-9)
    assert row["val_top1"] is None and row["val_top1_err"] is None and row["real_top5_err"] is None
    header = (tmp_path / "r.csv").read_text().splitlines()[0].split(",")
    for name in ("param_count", "v2_top1_err", "v2_top5_err", "val_top1_err", "real_top1_err"):
        assert name in header
    assert header.index("v2_top1_err") == header.index("v2_top1") + 1  # each error beside its accuracy
    r = table.make_row(checkpoint="x", val_top1=79.8344, val_top5=94.9)
    assert (r["val_top1"], r["val_top1_err"], r["val_top5_err"]) == (79.834, 20.166, 5.1)


# ---- --results-file and a second run ----------------------------------------------------------------------------

def test_a_second_run_adds_to_the_table_and_replaces_only_the_same_scoring(tiny, tmp_path, capsys):
    v2, weights = tiny
    path, _ = weights("resnet10t")
    base = _weights_args(v2, path, "resnet10t")
    results = tmp_path / "tables" / "resnet10t.csv"
    out = _run([*base, "--img-size", 32, "--results-file", results], capsys)
    assert f"results written to {results} and {results.with_suffix('.json')}\n" in out
    first = table.read_table(results)
    assert json.loads(results.with_suffix(".json").read_text())["rows"] == first  # the JSON twin
    out = _run([*base, "--img-size", 48, "--results-file", results.with_suffix(".json")], capsys)  # either name
    assert "(1 earlier row(s) kept, 0 replaced)" in out
    rows = table.read_table(results)
    assert [r["img_size"] for r in rows] == [32, 48] and rows[0] == first[0]
    out = _run([*base, "--img-size", 32, "--results-file", results], capsys)  # the first scoring again
    assert "(1 earlier row(s) kept, 1 replaced)" in out
    rows = table.read_table(results)
    assert [r["img_size"] for r in rows] == [48, 32]
    assert table.read_table(results.with_suffix(".json")) == rows


def test_results_file_errors(tiny, tmp_path, capsys):
    v2, weights = tiny
    path, _ = weights("resnet10t")
    base = [*map(str, _weights_args(v2, path, "resnet10t")), "--workers", "0", "--quiet"]
    notes = tmp_path / "notes.csv"
    notes.write_text("name,value\na,1\n")
    assert validate.main([*base, "--results-file", str(notes)]) == 2
    err = capsys.readouterr().err
    assert "is not a validation results table" in err and "not overwritten: name another --results-file" in err
    assert notes.read_text() == "name,value\na,1\n"
    assert validate.main([*base, "--results-file", str(tmp_path / "r.txt")]) == 2
    assert "must end in .csv or .json" in capsys.readouterr().err
    assert validate.main([*base, "--results-file", str(tmp_path / "r.csv"), "--out-dir", str(tmp_path)]) == 2
    assert "give --out-dir or --results-file, not both." in capsys.readouterr().err


def test_a_version_1_table_is_added_to(tmp_path):
    old = {c: None for c in table.COLUMNS if not c.endswith("_err") and c != "param_count"}
    old.update(checkpoint="a/last.pt", img_size=224, crop_pct=0.95, interpolation="bicubic", val_top1=80.0)
    (tmp_path / "r.json").write_text(json.dumps({"format": "rsb-validation-1", "columns": list(old),
                                                 "rows": [old]}))
    earlier = table.existing_rows(tmp_path / "r.csv")
    merged, replaced = table.merge_rows(earlier, [table.make_row(checkpoint="b/last.pt", val_top1=70.0)])
    assert replaced == [] and [r["checkpoint"] for r in merged] == ["a/last.pt", "b/last.pt"]
    assert merged[0]["val_top1_err"] == 20.0  # filled in for the old row


# ---- what training and validate.py now share --------------------------------------------------------------------

def test_training_evaluation_and_validate_share_one_scoring_loop(tmp_path):
    """engine.evaluate (labels from the loader) and score_set (file positions looked up in the set's labels)
    count the same on the hand-computed ReaL case, through engine.score_batches."""
    root, real = _real_val(tmp_path)
    s = sets.val_set(root, 6, real)
    cpu = torch.device("cpu")
    settings = EvalSettings(16, 1.0, "bilinear")
    loader = eval_loader(s.index, 16, 1.0, "bilinear", 4, 0)
    ours = evaluate(GrayDecoder(), loader, DeviceBatch(cpu, False), device=cpu)
    theirs = scoring.score_set(GrayDecoder(), s, settings, device=cpu, batch_size=4, workers=0, progress=False)
    assert ours == {"top1": theirs["top1"], "top5": theirs["top5"], "loss": theirs["loss"], "images": theirs["images"]}
    assert ours["loss"] > 0
    assert (ours["top1"], ours["images"]) == (50.0, 6) and theirs["real_top1"] == pytest.approx(40.0)


def test_training_and_validate_find_the_val_folder_by_one_rule(tmp_path):
    data = tmp_path / "imagenet"
    for split in ("train", "val"):
        (data / split / "n00000000").mkdir(parents=True)
        (data / split / "n00000000" / "a.JPEG").write_bytes(_jpeg())
    train, val = open_splits(data)
    assert val.root == sets.val_set(data, 1).index.root == data / "val"
    assert sets.val_set(data / "val", 1).index.root == data / "val"  # validate.py also takes the folder itself
    (tmp_path / "empty").mkdir()
    for call in (lambda: open_splits(tmp_path / "empty"), lambda: sets.val_set(tmp_path / "empty", 1)):
        with pytest.raises(UserError, match="data folder .*empty has no '(train|val)' folder"):
            call()
