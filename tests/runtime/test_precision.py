"""Precision chosen by the device: each branch, by faking what the CPU or GPU reports."""
from __future__ import annotations

import csv
import json

import pytest
import torch
import yaml

from tests._tiny import tiny_data
from rsb.run import checkpoint
from rsb.runtime import precision
from rsb.config.schema import TrainConfig
from rsb.training.plan import resolve
from rsb.training.run_config import build_config
from rsb.training.plan import print_config
from rsb.training.trainer import LaunchOptions, train

CPU = torch.device("cpu")


@pytest.fixture
def no_native(monkeypatch):
    monkeypatch.setattr(precision, "cpu_native_features", lambda: [])
    monkeypatch.setattr(precision, "cpu_capability", lambda: "AVX2")


@pytest.fixture
def native_bf16(monkeypatch):
    monkeypatch.setattr(precision, "cpu_native_features", lambda: ["AVX512_BF16", "AMX"])
    monkeypatch.setattr(precision, "cpu_capability", lambda: "AVX512")


def test_cpu_with_native_bf16_autocasts(native_bf16):
    p = precision.choose(True, "bfloat16", CPU)
    assert p.dtype == torch.bfloat16 and p.name == "bfloat16" and not p.needs_scaler
    assert "natively" in p.reason and "AVX512_BF16" in p.reason


def test_cpu_without_native_bf16_falls_back_to_float32_and_says_why(no_native):
    p = precision.choose(True, "bfloat16", CPU)
    assert p.dtype is None and p.name == "float32"
    assert "no native bfloat16" in p.reason and "AVX2" in p.reason and "amp_fallback=keep" in p.reason


def test_keep_fallback_autocasts_anyway(no_native):
    p = precision.choose(True, "bfloat16", CPU, fallback="keep")
    assert p.dtype == torch.bfloat16 and "slower" in p.reason


def test_amp_off_is_float32_whatever_the_device(native_bf16):
    p = precision.choose(False, "bfloat16", CPU)
    assert p.dtype is None and "train.amp is false" in p.reason


def test_float16_on_cpu_needs_amx_fp16(monkeypatch, no_native):
    assert precision.choose(True, "float16", CPU).dtype is None
    monkeypatch.setattr(precision, "cpu_native_features", lambda: ["AMX_FP16"])
    p = precision.choose(True, "float16", CPU)
    assert p.dtype == torch.float16 and p.needs_scaler


@pytest.fixture
def fake_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Fake GPU")
    state = {"bf16": True}
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: state["bf16"])
    return state


def test_cuda_with_bf16(fake_gpu):
    p = precision.choose(True, "bfloat16", torch.device("cuda", 0))
    assert p.dtype == torch.bfloat16 and "Fake GPU computes bfloat16 natively" in p.reason


def test_cuda_without_bf16_is_float32_and_points_to_float16(fake_gpu):
    fake_gpu["bf16"] = False
    p = precision.choose(True, "bfloat16", torch.device("cuda", 0))
    assert p.dtype is None and "train.amp_dtype=float16" in p.reason


def test_cuda_float16_keeps_its_gradient_scaler(fake_gpu):
    fake_gpu["bf16"] = False
    p = precision.choose(True, "float16", torch.device("cuda", 0))
    assert p.dtype == torch.float16 and p.needs_scaler


def test_this_machine_reports_its_capability():
    """Not faked: the reason names the real capability string, whichever branch this CPU takes."""
    p = precision.choose(True, "bfloat16", CPU)
    assert torch.backends.cpu.get_cpu_capability() in p.reason
    native = bool({"AVX512_BF16", "AMX"} & set(precision.cpu_native_features()))
    assert (p.dtype == torch.bfloat16) == native


def test_features_torch_does_not_use_do_not_count(monkeypatch):
    """A CPU with AVX512_BF16 on which torch runs its AVX2 kernels (ATEN_CPU_CAPABILITY=avx2) emulates bf16."""
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    monkeypatch.setattr(torch.cpu, "_is_amx_fp16_supported", lambda: False)
    monkeypatch.setattr(precision, "cpu_capability", lambda: "AVX512")
    assert precision.cpu_native_features() == ["AVX512_BF16", "AMX"]
    assert precision.choose(True, "bfloat16", CPU).dtype == torch.bfloat16
    monkeypatch.setattr(precision, "cpu_capability", lambda: "AVX2")
    assert precision.cpu_native_features() == []
    p = precision.choose(True, "bfloat16", CPU)
    assert p.dtype is None and "CPU capability AVX2" in p.reason


def test_resolve_and_print_config_carry_the_precision(no_native):
    cfg = build_config("a2", [], sample=False)
    d = resolve(cfg, 1, 1_281_167, precision.for_config(cfg.train, "cpu"))
    assert d.precision == "float32" and "AVX2" in d.precision_reason
    doc = yaml.safe_load(print_config(cfg, sample=False, device="cpu"))
    assert doc["derived"]["precision"] == "float32"


def test_amp_fallback_is_a_checked_choice():
    from rsb.errors import UserError
    with pytest.raises(UserError, match=r"train\.amp_fallback must be one of float32, keep"):
        build_config("a2", ["train.amp_fallback=kep"], sample=False)
    assert TrainConfig().amp_fallback == "float32"


TINY = ["model.name=resnet10t", "model.num_classes=10", "data.train_size=32", "data.test_size=32",
        "sched.epochs=1", "sched.warmup_epochs=0", "train.batch_per_device=16", "optim.batch_rule=sqrt",
        "run.checkpoint_every_minutes=0"]


@pytest.mark.parametrize("branch", ["native_bf16", "no_native"])
def test_run_records_the_precision_it_used(branch, request, tmp_path, capsys):
    """resolved.yaml, the checkpoint, summary.json and metrics.csv name the precision the run computed in."""
    request.getfixturevalue(branch)
    data = tiny_data(tmp_path / "data")
    out = tmp_path / "run"
    train(build_config("a2", TINY, sample=False), LaunchOptions(data=data, output=out, workers=0, device="cpu"))
    want = "bfloat16" if branch == "native_bf16" else "float32"
    printed = capsys.readouterr().out
    assert f"precision: {want}" in printed
    assert yaml.safe_load((out / "resolved.yaml").read_text())["derived"]["precision"] == want
    assert json.loads((out / "summary.json").read_text())["precision"] == want
    assert checkpoint.load(out / "last.pt")["derived"]["precision"] == want
    with open(out / "metrics.csv") as f:
        assert [row["precision"] for row in csv.DictReader(f)] == [want]


# ---- the _timm2021 recipes: float16 with a gradient scaler, as the released runs on V100s ----------------------
TIMM2021 = ["a1_timm2021", "a2_timm2021", "a3_timm2021"]


@pytest.mark.parametrize("recipe", TIMM2021)
def test_timm2021_recipes_take_float16_with_its_scaler_where_the_device_has_it(recipe, monkeypatch, fake_gpu):
    cfg = build_config(recipe, [], sample=False)
    fake_gpu["bf16"] = True  # a GPU with bf16 too still gets the recipe's float16
    on_gpu = precision.for_config(cfg.train, torch.device("cuda", 0))
    assert on_gpu.dtype == torch.float16 and on_gpu.needs_scaler and "Fake GPU computes float16" in on_gpu.reason
    monkeypatch.setattr(precision, "cpu_native_features", lambda: ["AMX_FP16"])
    on_cpu = precision.for_config(cfg.train, CPU)
    assert on_cpu.dtype == torch.float16 and on_cpu.needs_scaler and "AMX_FP16" in on_cpu.reason
    monkeypatch.setattr(precision, "cpu_native_features", lambda: ["AVX512_BF16", "AMX"])  # bf16, no float16
    elsewhere = precision.for_config(cfg.train, CPU)
    assert elsewhere.dtype is None and "float32 instead of the recipe's float16 autocast" in elsewhere.reason


def test_timm2021_run_trains_in_float16_with_a_gradient_scaler(monkeypatch, tmp_path, capsys):
    """A run of the recipe on a device that computes float16 natively (faked) steps through the gradient scaler:
    its state is in the checkpoint, and every record names float16."""
    monkeypatch.setattr(precision, "cpu_native_features", lambda: ["AMX_FP16"])
    data = tiny_data(tmp_path / "data")
    out = tmp_path / "run"
    cfg = build_config("a3_timm2021", [*TINY, "sched.cooldown_epochs=0"], sample=False)
    train(cfg, LaunchOptions(data=data, output=out, workers=0, device="cpu"))
    assert "precision: float16 autocast: the CPU computes float16 natively (AMX_FP16" in capsys.readouterr().out
    last = checkpoint.load(out / "last.pt")
    assert last["scaler"] is not None and last["scaler"]["scale"] > 0
    assert last["derived"]["precision"] == "float16"
