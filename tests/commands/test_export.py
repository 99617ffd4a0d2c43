"""rsb.export: a run's weights in timm's Hub format, loaded back through timm's 'local-dir:' source; the upload up
to huggingface_hub's calls; the EMA weights under timm's checkpoint key."""
from __future__ import annotations

import json
from pathlib import Path

import huggingface_hub
import pytest
import timm
import torch
from huggingface_hub.errors import LocalTokenNotFoundError
from safetensors.torch import load_file
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, resolve_data_config

import train
from tests._tiny import TINY_OVERRIDES, tiny_data
from rsb.run import checkpoint
from rsb import export
from rsb.config.schema import ModelConfig, to_dict
from rsb.config.load import load_recipe
from rsb.models.factory import create_model


@pytest.fixture(scope="module")
def ema_run(tmp_path_factory):
    """A one-epoch resnet10t run with EMA on (decay 0.5, so the EMA weights differ from the model's)."""
    root = tmp_path_factory.mktemp("export")
    run = root / "run"
    torch.set_num_threads(1)
    assert train.main(["--recipe", "a3", "--data", str(tiny_data(root / "sample")), "--output", str(run),
                       "--workers", "0", "--quiet", *TINY_OVERRIDES, "model.name=resnet10t", "sched.epochs=1",
                       "sched.warmup_epochs=0", "train.ema=true", "train.ema_decay=0.5"]) == 0
    return run


def _plain_run(folder: Path, recipe: str, name: str = "last.pt", model: str = "resnet10t") -> dict:
    """A run folder holding one checkpoint of `recipe` built as the trainer builds it, without EMA."""
    config = to_dict(load_recipe(recipe))
    config["model"].update(name=model, num_classes=10)
    net = create_model(ModelConfig(name=model, num_classes=10))
    ckpt = {"model": net.state_dict(), "state_dict_ema": None, "epoch": 1, "epoch_step": 0, "step": 6,
            "config": config, "model_name": model, "format": "rsb-1"}
    folder.mkdir(parents=True)
    checkpoint.save_atomic(ckpt, folder / name)
    return ckpt


def _assert_same_weights(model: torch.nn.Module, state: dict) -> None:
    own = model.state_dict()
    assert own.keys() == state.keys()
    assert all(torch.equal(own[k], state[k]) for k in own)


def test_export_loads_through_timm_local_dir_with_the_run_weights_and_test_settings(ema_run, tmp_path, capsys):
    out = tmp_path / "exported"
    assert export.main([str(ema_run), str(out)]) == 0
    assert "best.pt" in capsys.readouterr().out  # a finished epoch leaves best.pt, exported by default
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    assert all(p.stat().st_mode & 0o044 == 0o044 for p in out.iterdir())  # readable by others: for sharing
    ckpt = checkpoint.load(ema_run / "best.pt")
    model = timm.create_model("local-dir:" + str(out), pretrained=True)
    _assert_same_weights(model, ckpt["model"])
    assert type(model).__name__ == "ResNet" and model.num_classes == 10
    cfg = model.pretrained_cfg
    assert tuple(cfg["input_size"]) == (3, 32, 32)  # the tiny run's data.test_size
    assert cfg["crop_pct"] == 0.95 and cfg["interpolation"] == "bicubic" and cfg["source"] == "local-dir"
    assert tuple(cfg["mean"]) == IMAGENET_DEFAULT_MEAN and tuple(cfg["std"]) == IMAGENET_DEFAULT_STD
    assert resolve_data_config(model=model) == {"input_size": (3, 32, 32), "interpolation": "bicubic",
                                                 "mean": cfg["mean"], "std": cfg["std"], "crop_pct": 0.95,
                                                 "crop_mode": "center"}
    doc = json.loads((out / "config.json").read_text())
    assert doc["architecture"] == "resnet10t" and doc["num_classes"] == 10
    assert doc["model_args"]["num_classes"] == 10
    assert doc["pretrained_cfg"]["tag"] == "a3"  # not timm's own weights' tag (c3_in1k)
    assert doc["rsb"] == {"recipe": "a3", "checkpoint": "best.pt", "epoch": 1, "weights": "model"}


def test_ema_export_holds_the_ema_weights(ema_run, tmp_path):
    out = tmp_path / "ema"
    assert export.main([str(ema_run), str(out), "--ema", "--checkpoint", "last.pt"]) == 0
    ckpt = checkpoint.load(ema_run / "last.pt")
    model = timm.create_model("local-dir:" + str(out), pretrained=True)
    _assert_same_weights(model, ckpt["state_dict_ema"])
    assert any(not torch.equal(ckpt["state_dict_ema"][k], ckpt["model"][k]) for k in ckpt["model"])
    doc = json.loads((out / "config.json").read_text())
    assert doc["rsb"]["weights"] == "ema" and doc["rsb"]["checkpoint"] == "last.pt"


def test_timm_load_checkpoint_reads_the_ema_weights_of_an_rsb_checkpoint(ema_run):
    ckpt = checkpoint.load(ema_run / "last.pt")
    model = timm.create_model("resnet10t", num_classes=10)
    timm.models.load_checkpoint(model, str(ema_run / "last.pt"), use_ema=True)  # torch.load(weights_only=True)
    _assert_same_weights(model, ckpt["state_dict_ema"])
    timm.models.load_checkpoint(model, str(ema_run / "last.pt"), use_ema=False)  # falls back to our "model"
    _assert_same_weights(model, ckpt["model"])


@pytest.mark.parametrize("recipe", ["a1", "a2", "a3"])
def test_resnet50_recipes_export_their_test_settings(recipe, tmp_path):
    run = tmp_path / "run"
    ckpt = _plain_run(run, recipe, model="resnet50")
    out = tmp_path / "out"
    export.export(run, out)
    model = timm.create_model("local-dir:" + str(out), pretrained=True)
    _assert_same_weights(model, ckpt["model"])
    pretrained = json.loads((out / "config.json").read_text())["pretrained_cfg"]
    assert pretrained["input_size"] == [3, 224, 224]
    assert pretrained["crop_pct"] == 0.95 and pretrained["interpolation"] == "bicubic"
    # timm's resnet50.a1_in1k recommends testing at 288 / crop 1.0; the export states the recipe's settings only.
    assert "test_input_size" not in pretrained and "test_crop_pct" not in pretrained


def test_last_pt_is_exported_when_there_is_no_best_and_an_empty_out_dir_is_used(tmp_path):
    ckpt = _plain_run(tmp_path / "run", "a2")
    out = tmp_path / "out"
    out.mkdir()
    assert export.export(tmp_path / "run", out) == tmp_path / "run" / "last.pt"
    _assert_same_weights(timm.create_model("local-dir:" + str(out), pretrained=True), ckpt["model"])


def _error(argv, capsys) -> str:
    assert export.main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    return err


def test_user_errors_are_one_sentence(tmp_path, capsys):
    out = tmp_path / "out"
    err = _error([tmp_path / "missing", out], capsys)
    assert "run folder" in err and "does not exist" in err
    (tmp_path / "empty").mkdir()
    assert "has no best.pt or last.pt" in _error([tmp_path / "empty", out], capsys)
    _plain_run(tmp_path / "run", "a2")
    assert "has no epoch_0005.pt" in _error([tmp_path / "run", out, "--checkpoint", "epoch_0005.pt"], capsys)
    assert "holds no EMA weights" in _error([tmp_path / "run", out, "--ema"], capsys)
    out.mkdir()
    (out / "keep.txt").write_text("x")
    assert "exists and is not empty" in _error([tmp_path / "run", out], capsys)
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    assert not list(tmp_path.glob(".out.tmp*"))  # no half-written export left behind


class _FakeHub:
    """Stands in for the huggingface_hub calls timm's push_to_hf_hub makes; records what would be uploaded."""

    def __init__(self):
        self.uploaded, self.created = {}, []

    def create_repo(self, api, repo_id, private=False, exist_ok=False, **kw):
        self.created.append((repo_id, private, exist_ok))
        return huggingface_hub.RepoUrl(f"https://huggingface.co/{repo_id}")

    def file_exists(self, api, repo_id, filename, **kw):
        return False

    def upload_folder(self, api, repo_id, folder_path, **kw):
        folder = Path(folder_path)  # a temporary folder, gone after the call: read it now
        self.uploaded = {"repo_id": repo_id, "files": sorted(p.name for p in folder.iterdir()),
                         "config": json.loads((folder / "config.json").read_text()),
                         "weights": load_file(folder / "model.safetensors"), **kw}
        return "commit"


@pytest.fixture
def fake_hub(monkeypatch):
    hub = _FakeHub()
    for name in ("create_repo", "file_exists", "upload_folder"):
        method = getattr(hub, name)
        monkeypatch.setattr(huggingface_hub.HfApi, name, lambda api, *a, _m=method, **kw: _m(api, *a, **kw))
    return hub


def test_push_to_hub_uploads_what_the_local_export_holds(ema_run, tmp_path, fake_hub):
    out = tmp_path / "out"
    assert export.main([str(ema_run), str(out), "--ema", "--push-to-hub", "someone/resnet10t-a3"]) == 0
    assert fake_hub.created == [("someone/resnet10t-a3", False, True)]
    up = fake_hub.uploaded
    assert up["repo_id"] == "someone/resnet10t-a3"
    assert up["files"] == ["README.md", "config.json", "model.safetensors"]  # timm writes a model card
    assert up["config"] == json.loads((out / "config.json").read_text())
    ema = checkpoint.load(ema_run / "best.pt")["state_dict_ema"]
    assert up["weights"].keys() == ema.keys() and all(torch.equal(up["weights"][k], ema[k]) for k in ema)
    assert "a3" in up["commit_message"]


def test_push_failure_is_one_sentence_and_keeps_the_local_export(ema_run, tmp_path, fake_hub, monkeypatch,
                                                                  capsys):
    def no_token(api, *a, **kw):
        raise LocalTokenNotFoundError("Token is required (`token=True`), but no token found.")
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", no_token)
    err = _error([ema_run, tmp_path / "out", "--push-to-hub", "someone/x"], capsys)
    assert "pushing it to the Hub repository someone/x failed (Token is required" in err
    assert "hf auth login" in err and (tmp_path / "out" / "model.safetensors").is_file()
    assert fake_hub.uploaded == {}
