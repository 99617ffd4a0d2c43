"""Scoring one set: training's own scoring loop (rsb.training.engine.score_batches) with what validate.py adds around it:
the set's test settings, ReaL counts, a progress line, and on CUDA out-of-memory a retry at half the batch.
Under DDP each process scores its own contiguous share (rsb.data.loader.eval_loader, no padded duplicates) and
the counts are summed over processes.

ReaL needs to know which file each prediction belongs to. The loader is given the file's own position as its
"label" (ImageFolderDataset(labels=...)), so a batch carries file indices; true labels and ReaL lists are then
looked up by index. This stays right even when an unreadable file is replaced by the next one, because the
dataset returns the label of the file it actually read.
"""
from __future__ import annotations

import sys
import time

import numpy as np
import torch

from rsb.runtime import distributed
from rsb.models import factory as model_prep
from rsb.data.batch import DeviceBatch
from rsb.data.loader import eval_loader
from rsb.training.engine import score_batches
from rsb.errors import UserError
from rsb.evaluation.real_labels import real_hits


class EvalProgress:
    """One line rewritten in place on a terminal; in logs, a line at every tenth of the set."""

    def __init__(self, enabled: bool, label: str, total: int, stream=None):
        self.enabled, self.label, self.total = enabled, label, total
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.done, self.next_log, self.start = 0, total / 10, time.perf_counter()

    def rate(self) -> float:
        return self.done / max(time.perf_counter() - self.start, 1e-9)

    def update(self, n: int) -> None:
        self.done += n
        if not self.enabled:
            return
        line = f"{self.label}: {self.done}/{self.total} images, {self.rate():.1f} img/s"
        if self.tty:
            print("\r" + line, end="", file=self.stream, flush=True)
        elif self.done >= self.next_log and self.done < self.total:
            print(line, file=self.stream, flush=True)
            self.next_log += self.total / 10

    def close(self) -> None:
        if self.enabled and self.tty:
            print("\r" + " " * 72 + "\r", end="", file=self.stream, flush=True)


def prepare_model(model: torch.nn.Module, device: torch.device, channels_last: bool) -> torch.nn.Module:
    """As training prepares it (rsb.models.factory.prepare_model), in eval mode."""
    return model_prep.prepare_model(model, device, channels_last).eval()


def _score_once(model, eval_set, settings, *, device, amp_dtype, batch_size, workers, rank, world,
                channels_last, progress) -> torch.Tensor:
    n = len(eval_set.index)
    loader = eval_loader(eval_set.index, settings.size, settings.crop_pct, settings.interpolation, batch_size,
                         workers, labels=np.arange(n), rank=rank, world=world)
    labels = torch.as_tensor(eval_set.labels, dtype=torch.int64, device=device)
    real = eval_set.real.to(device) if eval_set.real is not None else None
    prep = DeviceBatch(device, channels_last, mean=settings.mean, std=settings.std)
    real_counts = torch.zeros(3, dtype=torch.float64, device=device)  # ReaL correct@1, correct@5, images scored
    bar = EvalProgress(progress, f"{eval_set.key} ({eval_set.where})", len(loader.dataset))

    def per_batch(top5: torch.Tensor, idx: torch.Tensor) -> None:
        if real is not None:
            real_counts.add_(torch.stack([h.sum() for h in real_hits(top5, real[idx])]).to(torch.float64))
        bar.update(len(idx))

    try:
        counts = score_batches(model, loader, prep, device=device, amp_dtype=amp_dtype, targets=labels,
                               on_batch=per_batch)
    finally:
        bar.close()
    return torch.cat([counts, real_counts])  # correct@1, correct@5, images, CE sum, then the ReaL three


def score_set(model, eval_set, settings, *, device: torch.device, amp_dtype: torch.dtype | None = None,
              batch_size: int = 128, workers: int = 2, rank: int = 0, world: int = 1, channels_last: bool = True,
              progress: bool = True, log=print) -> dict:
    """Top-1/top-5 (%) of `model` on `eval_set` (and ReaL top-1/top-5 when the set has ReaL labels), summed
    over DDP processes. On CUDA out-of-memory the set is scored again from the start at half the batch."""
    while True:
        oom = False
        try:
            counts = _score_once(model, eval_set, settings, device=device, amp_dtype=amp_dtype,
                                 batch_size=batch_size, workers=workers, rank=rank, world=world,
                                 channels_last=channels_last, progress=progress)
            break
        except torch.cuda.OutOfMemoryError:
            oom = True  # handled outside the except block, once the traceback's tensors are freed
        if oom:
            if batch_size == 1:
                raise UserError(f"out of GPU memory scoring {eval_set.key} even at batch size 1.")
            batch_size //= 2
            if device.type == "cuda":
                torch.cuda.empty_cache()
            log(f"warning: out of memory on {eval_set.key}; scoring it again at batch size {batch_size}")
    distributed.all_reduce_sum(counts)
    c = counts.tolist()
    pct = lambda a, b: 100.0 * a / b if b else None  # noqa: E731
    out = {"top1": pct(c[0], c[2]), "top5": pct(c[1], c[2]), "loss": c[3] / c[2] if c[2] else None,
           "images": int(c[2]), "batch_size": batch_size}
    if eval_set.real is not None:
        out.update(real_top1=pct(c[4], c[6]), real_top5=pct(c[5], c[6]), real_images=int(c[6]))
    return out


def score_cifar(model, split, pixel_mean: torch.Tensor | None, *, device: torch.device, amp_dtype=None,
                batch_size: int = 128, rank: int = 0, world: int = 1, channels_last: bool = True) -> dict:
    """Top-1/top-5 (%) on a CIFAR-10 split (rsb.data.cifar.ArraySplit) as training scores it: 32x32 as stored, the
    run's per-pixel mean image subtracted (or ImageNet's channel mean and std when the run had none)."""
    from rsb.data.cifar import array_eval_loader
    loader = array_eval_loader(split, batch_size, rank=rank, world=world)
    prep = DeviceBatch(device, channels_last, mean_image=pixel_mean)
    counts = score_batches(model, loader, prep, device=device, amp_dtype=amp_dtype)
    distributed.all_reduce_sum(counts)
    c = counts.tolist()
    return {"top1": 100.0 * c[0] / c[2], "top5": 100.0 * c[1] / c[2], "images": int(c[2]),
            "batch_size": batch_size}
