"""The validate part: validate.py's scoring path (rsb.evaluation.scoring.score_set) in float32 and in bf16
(--amp), against timm's eval pipeline, each figure from the call to the last result, loader start-up included."""
from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from .jpegs import jpegs_ready

if TYPE_CHECKING:
    from .worker import Ctx


def timm_eval(ctx: Ctx, model, root: Path, size: int, batch: int, workers: int, amp) -> float:
    """timm's evaluation pipeline (validate.py: create_dataset, create_loader with its prefetcher) feeding the
    channels_last model (timm's --channels-last); images/s from the first batch requested to the last result."""
    import torch
    from timm.data import create_dataset, create_loader
    loader = create_loader(create_dataset("", root=str(root)), input_size=(3, size, size), batch_size=batch,
                           is_training=False, use_prefetcher=True, interpolation="bicubic", crop_pct=0.95,
                           num_workers=workers, pin_memory=ctx.cuda, device=ctx.device, persistent_workers=False)
    t = time.perf_counter()
    n, correct = 0, 0
    with torch.no_grad():
        for x, y in loader:
            x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(ctx.device.type, dtype=amp or torch.bfloat16, enabled=amp is not None):
                out = model(x)
            correct += int((out.argmax(1) == y).sum())  # timm's validate.py reads its accuracy every batch
            n += len(y)
    ctx.sync()
    return n / (time.perf_counter() - t)


def warm_up(ctx: Ctx, model, batch: int, amp) -> None:
    """One forward pass of a whole batch: cudnn.benchmark's choice for this batch and precision."""
    import torch
    size = ctx.sizes.eval_size
    with torch.no_grad():
        x = torch.zeros(batch, 3, size, size, device=ctx.device).contiguous(memory_format=torch.channels_last)
        with torch.autocast(ctx.device.type, dtype=amp or torch.bfloat16, enabled=amp is not None):
            model(x)
        del x
    ctx.sync()


def val_pair(ctx: Ctx, model, use_amp: bool) -> dict:
    from rsb.data.folder import ImageFolderIndex
    from rsb.evaluation import scoring
    from rsb.evaluation.checkpoints import EvalSettings
    from rsb.evaluation.sets import EvalSet
    from rsb.runtime import precision
    from rsb.runtime.cpus import default_workers
    jpegs_ready(ctx)
    s = ctx.sizes
    root = ctx.jpegs / "val"
    index = ImageFolderIndex(root, use_cache=False)
    eval_set = EvalSet("val", str(root), index, index.labels)
    prec = precision.choose(use_amp, "bfloat16", ctx.device)  # what validate.py picks for --amp (or not)
    if use_amp and prec.dtype is None:
        raise RuntimeError(prec.reason)
    amp = prec.dtype
    workers = default_workers()   # validate.py's default
    batch = s.eval_batch          # validate.py's default on CUDA is 256
    warm_up(ctx, model, batch, amp)
    t = time.perf_counter()
    res = scoring.score_set(model, eval_set, EvalSettings(s.eval_size, 0.95, "bicubic"), device=ctx.device,
                            amp_dtype=amp, batch_size=batch, workers=workers, channels_last=True, progress=False)
    ctx.sync()
    ours = res["images"] / (time.perf_counter() - t)
    theirs = timm_eval(ctx, model, root, s.eval_size, batch, workers, amp)
    return {"rsb": f"{ours:.0f} img/s", "timm": f"{theirs:.0f} img/s", "ratio": f"{ours / theirs:.2f}",
            "detail": f"{res['images']} images, {workers} workers, batch {res['batch_size']}; "
                      + (prec.reason if use_amp else "float32 (no --amp)"),
            "values": {"rsb": ours, "timm": theirs}}


def part_validate(ctx: Ctx) -> None:
    from rsb.config.schema import ModelConfig
    from rsb.evaluation import scoring
    from rsb.models.factory import create_model
    # as validate.py prepares a model: on the device, channels_last, in eval mode
    model = scoring.prepare_model(create_model(ModelConfig(name=ctx.sizes.model, num_classes=1000)), ctx.device,
                                  channels_last=True)
    ctx.row("val_fp32", lambda: val_pair(ctx, model, use_amp=False))
    if ctx.cuda:
        ctx.row("val_bf16", lambda: val_pair(ctx, model, use_amp=True))
    else:
        ctx.report("val_bf16", "skipped (no CUDA)")
