"""The hot loops: train_one_epoch and evaluate. Plain arguments only; no host synchronisation per step
(the running loss stays on the device and is read only when progress is shown)."""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass

import torch

from rsb import distributed
from rsb.errors import UserError
from rsb.model import unwrap


@dataclass
class EpochStats:
    loss: float
    lr: float
    images_per_sec: float
    seconds: float
    steps: int
    skipped_images: int


def autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def train_one_epoch(model, batches, prep, loss_fn, optimizer, schedule, *, device, first_step: int,
                    steps: int, accum_steps: int = 1, amp_dtype=None, scaler=None, clip_grad: float | None = None,
                    ema=None, progress=None, world_size: int = 1, stop_requested=lambda: False) -> EpochStats:
    """Run `steps` optimizer steps (each of `accum_steps` micro-batches) from global step `first_step`."""
    model.train()
    loss_sum = torch.zeros((), device=device)
    micro, seen, skipped, step, lr = 0, 0, 0, first_step, schedule.lr_at(first_step)
    start = time.perf_counter()
    for images, labels, bad in batches:
        if micro >= steps * accum_steps:
            break
        skipped += bad
        x, y = prep(images, labels, train=True)
        if micro % accum_steps == 0:
            lr = schedule.apply(optimizer, step)
        is_update = (micro + 1) % accum_steps == 0
        # Under DDP, skip the gradient all-reduce on accumulation micro-steps.
        sync = contextlib.nullcontext() if is_update or not hasattr(model, "no_sync") else model.no_sync()
        with sync:
            with autocast(device, amp_dtype):
                out = model(x)
            loss = loss_fn(out, y)
            (scaler.scale(loss / accum_steps) if scaler else loss / accum_steps).backward()
        if is_update:
            if clip_grad is not None:
                if scaler:
                    scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
            if scaler:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            if ema is not None:
                ema.update(unwrap(model), step=step)
        loss_sum += loss.detach()
        micro += 1
        seen += x.shape[0] * world_size
        if progress is not None and is_update:
            progress.step(step, lambda: (loss_sum / micro).item(), lr, seen)
        if is_update and stop_requested():
            break
    seconds = time.perf_counter() - start
    mean_loss = (loss_sum / max(micro, 1)).item()
    if not math.isfinite(mean_loss):
        raise UserError(f"the training loss became {mean_loss} before step {step}; the run is stopped and the "
                        f"last good checkpoint kept. Lower optim.lr or check the data.")
    return EpochStats(mean_loss, lr, seen / max(seconds, 1e-9), seconds, step - first_step, skipped)


@torch.no_grad()
def evaluate(model, loader, prep, *, device, amp_dtype=None, progress=None) -> dict:
    """Top-1 and top-5 accuracy (%) over the loader, summed over processes (each scores its own share)."""
    model.eval()
    counts = torch.zeros(3, device=device, dtype=torch.float64)  # correct@1, correct@5, images
    for images, labels, _ in loader:
        x, y = prep(images, labels)
        with autocast(device, amp_dtype):
            logits = model(x)
        top5 = logits.float().topk(min(5, logits.shape[1]), dim=1).indices
        hits = top5.eq(y.view(-1, 1))
        counts += torch.stack([hits[:, 0].sum(), hits.any(dim=1).sum(), torch.tensor(len(y), device=device)])
        if progress is not None:
            progress.eval_step(len(y))
    distributed.all_reduce_sum(counts)
    n = counts[2].item()
    return {"top1": 100.0 * counts[0].item() / max(n, 1), "top5": 100.0 * counts[1].item() / max(n, 1),
            "images": int(n)}
