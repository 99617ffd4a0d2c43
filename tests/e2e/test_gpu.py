"""CUDA paths, checked on a real GPU (marked `gpu`: skipped where CUDA is absent; the GPU check,
`python -m benchmarks.gpu_check`, runs them with `pytest -m gpu tests/e2e/test_gpu.py`):

- bf16 and float16 training steps on CUDA through rsb's trainer and engine: bf16 autocast without a gradient
  scaler, float16 autocast with one (scale, step and update used every step, its state checkpointed);
- channels_last kept through the model in training (every convolution's input and weight);
- the evaluator's batch halving on a real CUDA out-of-memory (most of the GPU's memory taken first), scoring the
  same as a run at a batch that fits;
- a checkpoint saved by a run on the GPU, resumed by a process that sees no GPU at all, which finishes the run.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import math
from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image

from tests._tiny import TINY_OVERRIDES, run_train, tiny_data

pytestmark = pytest.mark.gpu

CUDA = torch.device("cuda", 0)


def override(key: str, value) -> str:
    """`section.key=value` for a config field, wherever its section is (run policy moved between sections)."""
    from rsb.config.schema import Config
    for section in dataclasses.fields(Config):
        if section.default_factory is not dataclasses.MISSING:
            if key in {f.name for f in dataclasses.fields(section.default_factory())}:
                return f"{section.name}.{key}={value}"
    raise KeyError(key)


def tiny_cuda_trainer(tmp_path, extra: list[str], model: str = "resnet50"):
    """A set-up Trainer of one epoch (6 optimizer steps) on the tiny sample data, on the GPU."""
    from rsb.training.run_config import build_config
    from rsb.training.trainer import LaunchOptions, Trainer
    cfg = build_config("a2", [*TINY_OVERRIDES, f"model.name={model}", "sched.epochs=1", "sched.warmup_epochs=0",
                              override("checkpoint_every_minutes", 0), *extra], sample=False)
    trainer = Trainer(cfg, LaunchOptions(data=tiny_data(tmp_path / "data"), output=tmp_path / "run", workers=0,
                                  device="cuda", quiet=True))
    trainer.setup()
    assert trainer.dist.device.type == "cuda"
    return trainer


def watch_convs(model) -> dict:
    """Forward hooks on every convolution, recording in training: output dtypes, and whether each input and
    output is channels_last (a tensor with one channel or 1x1 pixels counts as both formats)."""
    seen = {"dtypes": Counter(), "inputs_cl": Counter(), "outputs_cl": Counter(), "calls": 0}

    def hook(module, inputs, output):
        if not module.training:
            return
        seen["calls"] += 1
        seen["dtypes"][output.dtype] += 1
        seen["inputs_cl"][inputs[0].is_contiguous(memory_format=torch.channels_last)] += 1
        seen["outputs_cl"][output.is_contiguous(memory_format=torch.channels_last)] += 1

    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.register_forward_hook(hook)
    return seen


def run_and_summarise(trainer) -> dict:
    from rsb.runtime import distributed
    try:
        summary = trainer.run()
    finally:
        distributed.cleanup()
    with open(trainer.out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows and all(math.isfinite(float(r["train_loss"])) for r in rows), rows
    assert all(torch.isfinite(p).all() for p in trainer.parts.model.parameters())
    return summary


def test_bf16_training_on_cuda_autocasts_without_a_scaler(tmp_path):
    if not torch.cuda.is_bf16_supported(including_emulation=False):
        pytest.skip(f"{torch.cuda.get_device_name()} has no native bfloat16")
    trainer = tiny_cuda_trainer(tmp_path, ["train.amp=true", "train.amp_dtype=bfloat16"])
    assert trainer.precision.dtype == torch.bfloat16 and not trainer.precision.needs_scaler
    assert trainer.parts.scaler is None  # bfloat16 has float32's range: no loss scaling
    seen = watch_convs(trainer.parts.model)
    before = [p.detach().clone() for p in trainer.parts.model.parameters()]
    summary = run_and_summarise(trainer)
    assert summary["precision"] == "bfloat16"
    assert seen["calls"] > 0 and set(seen["dtypes"]) == {torch.bfloat16}, seen["dtypes"]
    changed = sum(not torch.equal(a, b) for a, b in zip(before, trainer.parts.model.parameters()))
    assert changed > len(before) // 2  # the optimizer stepped


def test_float16_training_on_cuda_uses_the_gradient_scaler(tmp_path):
    from rsb.run import checkpoint
    trainer = tiny_cuda_trainer(tmp_path, ["train.amp=true", "train.amp_dtype=float16"])
    assert trainer.precision.dtype == torch.float16 and trainer.precision.needs_scaler
    scaler = trainer.parts.scaler
    assert isinstance(scaler, torch.amp.GradScaler) and scaler.is_enabled()
    calls = Counter()
    for name in ("scale", "step", "update"):
        original = getattr(scaler, name)

        def counted(*a, _original=original, _name=name, **k):
            calls[_name] += 1
            return _original(*a, **k)
        setattr(scaler, name, counted)
    seen = watch_convs(trainer.parts.model)
    summary = run_and_summarise(trainer)
    steps = trainer.derived.steps_per_epoch
    assert summary["precision"] == "float16"
    assert calls["scale"] == steps * trainer.derived.accum_steps and calls["step"] == calls["update"] == steps
    assert set(seen["dtypes"]) == {torch.float16}, seen["dtypes"]
    assert math.isfinite(scaler.get_scale()) and scaler.get_scale() > 0
    saved = checkpoint.load(trainer.out / "last.pt")
    assert saved["scaler"] and saved["scaler"]["scale"] > 0  # the scaler's state travels with the checkpoint


def test_channels_last_is_kept_through_the_model_in_training(tmp_path):
    trainer = tiny_cuda_trainer(tmp_path, ["model.channels_last=true", "data.train_size=64", "data.test_size=64"])
    convs = [m for m in trainer.parts.model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs)
    seen = watch_convs(trainer.parts.model)
    run_and_summarise(trainer)
    assert seen["calls"] > 0
    assert seen["inputs_cl"] == Counter({True: seen["calls"]}), seen["inputs_cl"]
    assert seen["outputs_cl"] == Counter({True: seen["calls"]}), seen["outputs_cl"]
    # six optimizer steps later the weights are still channels_last (the optimizer updates them in place)
    assert all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs)


def small_jpeg_set(root, classes: int = 4, per_class: int = 32):
    """An evaluation set of small JPEGs in class folders (upscaled to the test size by the eval transform)."""
    from rsb.data.folder import ImageFolderIndex
    from rsb.evaluation.sets import EvalSet
    rng = np.random.default_rng(0)
    for c in range(classes):
        folder = root / f"n{c:08d}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(folder / f"{i}.JPEG")
    index = ImageFolderIndex(root, use_cache=False)
    return EvalSet("val", str(root), index, index.labels)


def test_evaluator_halves_the_batch_on_a_real_cuda_out_of_memory(tmp_path, monkeypatch):
    import timm

    from rsb.evaluation import scoring
    from rsb.evaluation.checkpoints import EvalSettings
    eval_set = small_jpeg_set(tmp_path / "val")
    n = len(eval_set.index)  # 128
    settings = EvalSettings(224, 0.95, "bicubic")
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)  # as validate.py sets it on CUDA
    torch.manual_seed(0)
    model = scoring.prepare_model(timm.create_model("resnet50", num_classes=4), CUDA, channels_last=True)
    # Each batch size's forward once, to load its kernels and make cudnn.benchmark's choice (whose trials take
    # memory) now; then once more, to measure the memory it reserves (what a full GPU must find free).
    sizes, reserved = (n, n // 2, n // 4, n // 8, n // 16), {}
    with torch.no_grad():
        for b in sizes:
            model(torch.zeros(b, 3, 224, 224, device=CUDA).contiguous(memory_format=torch.channels_last))
        for b in sizes:
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_reserved()
            model(torch.zeros(b, 3, 224, 224, device=CUDA).contiguous(memory_format=torch.channels_last))
            torch.cuda.synchronize()
            reserved[b] = torch.cuda.max_memory_reserved() - before
    ref = scoring.score_set(model, eval_set, settings, device=CUDA, batch_size=8, workers=0, progress=False)
    assert ref["batch_size"] == 8 and ref["images"] == n
    step = reserved[32] - reserved[16]
    assert step > 32 << 20, f"activations do not grow with the batch: {reserved}"
    # Room for a batch of 16 and then some, not 32: the requested batch of 128 cannot fit, 16 can.
    room = reserved[16] + step // 2 + (32 << 20)
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    free, total = torch.cuda.mem_get_info()
    assert free > room + (1 << 30), f"only {free / 2**30:.1f} GiB free on the GPU"
    ballast = torch.empty(free - room, dtype=torch.uint8, device=CUDA)  # most of the GPU's memory, taken
    logs = []
    try:
        res = scoring.score_set(model, eval_set, settings, device=CUDA, batch_size=n, workers=0, progress=False,
                                log=logs.append)
    finally:
        del ballast
        torch.cuda.empty_cache()
    detail = (f"reserved per batch size {({b: f'{v / 2**20:.0f} MiB' for b, v in reserved.items()})}, room left "
              f"{room / 2**20:.0f} MiB, logs {logs}")
    assert 1 <= res["batch_size"] < n, detail
    assert logs and "out of memory" in logs[0] and logs[0].endswith(f"batch size {n // 2}"), detail
    assert len(logs) == int(math.log2(n // res["batch_size"])), detail  # halved once per out-of-memory
    assert res["images"] == ref["images"] == n
    # Same scores as the run at a batch that fits (one image of slack for a logit tie between kernels).
    assert res["top1"] == pytest.approx(ref["top1"], abs=100 / n + 1e-9)
    assert res["top5"] == pytest.approx(ref["top5"], abs=100 / n + 1e-9)


def test_checkpoint_saved_on_gpu_resumes_on_a_cpu_only_process(tmp_path):
    from rsb.run import checkpoint
    data = tiny_data(tmp_path / "data")
    common = ["--data", str(data), "--workers", "1", *TINY_OVERRIDES, "model.name=resnet10t",
              override("keep_checkpoints", 2), override("checkpoint_every_minutes", 0)]  # 2 epochs of 6 steps
    gpu_run, cpu_run = tmp_path / "gpu", tmp_path / "cpu"
    r = run_train([*common, "--output", str(gpu_run), "--device", "cuda"])
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "process(es) on cuda" in r.stdout
    saved = checkpoint.load(gpu_run / "epoch_0001.pt")  # loads to the CPU (map_location="cpu")
    assert saved["epoch"] == 1 and "cuda" in saved["rng"]  # written by a process that had the GPU
    assert all(t.device.type == "cpu" for t in saved["model"].values())
    r = run_train([*common, "--output", str(cpu_run), "--device", "cpu", "--resume", str(gpu_run / "epoch_0001.pt")],
                  env={"CUDA_VISIBLE_DEVICES": ""})  # a process that sees no GPU, as on a CPU-only machine
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "process(es) on cpu" in r.stdout and "resumed from" in r.stdout
    assert "changed recipe values" not in r.stdout  # the same settings: nothing reported as changed
    summary = json.loads((cpu_run / "summary.json").read_text())
    assert summary["final_epoch"] == 2 and summary["final_val_top1"] is not None
    with open(cpu_run / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [2] and math.isfinite(float(rows[0]["train_loss"]))
    resumed = checkpoint.load(cpu_run / "last.pt")
    assert resumed["epoch"] == 2 and resumed["step"] == 2 * saved["step"]
