"""The hot loops: train_one_epoch and evaluate. Plain arguments only; no host synchronisation per step
(the running loss stays on the device and is read only when progress is shown)."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from rsb.runtime import distributed
from rsb.errors import UserError
from rsb.models.factory import unwrap
from rsb.training.tally import EpochTally


@dataclass
class EpochStats:
    loss: float
    lr: float
    images_per_sec: float
    seconds: float
    steps: int                       # optimizer steps this call ran
    skipped_images: int
    nonfinite_skipped: int = 0
    train_top1: float | None = None  # % of training samples classified right as trained on; None under Mixup
    samples: int = 0                 # this process's training samples in the epoch
    note: str = ""                   # metrics.csv's note: an epoch resumed mid-way says so (EpochTally.note)


NONFINITE_CHECK_EVERY = 20  # optimizer steps between reads of the recorded first non-finite step (one sync each)
ERROR_FEEDBACK_EVERY = 10   # optimizer steps between training-error reports to a schedule waiting for one

class NonFiniteLoss(UserError):
    def __init__(self, step: int):
        self.step = step
        super().__init__(f"training became non-finite (NaN or inf) at step {step}; the run is stopped "
                         f"and the last good checkpoint kept. Lower optim.lr, check the data, or set "
                         f"run.nonfinite=skip to skip such steps.")



def autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _check_finite(first_bad: torch.Tensor) -> None:
    """Raise NonFiniteLoss naming the first step (1-based) whose loss was not finite, if any (one sync)."""
    bad = int(first_bad.item())
    if bad >= 0:
        raise NonFiniteLoss(bad)


def train_one_epoch(model, batches, prep, loss_fn, optimizer, schedule, *, device, first_step: int,
                    steps: int, accum_steps: int = 1, amp_dtype=None, scaler=None, clip_grad: float | None = None,
                    ema=None, progress=None, world_size: int = 1, skip_nonfinite: bool = False,
                    after_step=lambda step: False, seed_micro_batch=None, tally: EpochTally | None = None
                    ) -> EpochStats:
    """Run `steps` optimizer steps (each of `accum_steps` micro-batches) from global step `first_step`.
    This loop is where optimizer steps are counted: `after_step(step)` runs after every one with the global step
    reached (the trainer records it, checkpoints, checks signals); True stops the epoch.
    `seed_micro_batch(step, k)` runs before the k-th micro-batch of optimizer step `step`: the random draws on
    the device (Mixup/CutMix, random erasing, stochastic depth) then depend on where the run is, not on the
    history of the process's generators, so a run resumed mid-epoch draws what an uninterrupted one draws, on
    every DDP rank (a checkpoint holds one process's generator state only).

    Non-finite losses: by default the first bad step is recorded on the device (no per-step sync) and raised
    every NONFINITE_CHECK_EVERY steps and at the end, on every process alike (a NaN reaches every rank through
    the gradient all-reduce, so they stop together); with skip_nonfinite, each micro-batch's loss is checked (one
    sync per step) and a bad one is left out of the gradient and counted.
    The epoch's mean loss is averaged over processes, as DeiT's and timm's logs do. Training top-1 is counted on
    the device for integer labels (not under Mixup/CutMix); a schedule waiting for the training error
    (schedule.waiting_for_error) gets that of the last ERROR_FEEDBACK_EVERY steps, one sync per report.
    The epoch's totals go into `tally` (rsb.training.tally; a fresh one when None): a run resumed mid-epoch
    passes the totals its checkpoint carried, so the returned statistics cover the whole epoch, and the trainer
    reads the tally after any step for a mid-epoch checkpoint."""
    model.train()
    tally = tally if tally is not None else EpochTally.start(device, world_size)
    accuracy = _TrainAccuracy(device, tally.hits)
    first_bad = torch.full((), -1, device=device, dtype=torch.int64)
    micro, seen, step, lr = 0, 0, first_step, schedule.lr_at(first_step)  # micro, seen: this call's
    tally.start_clock()
    for images, labels, bad_images in batches:
        if micro >= steps * accum_steps:
            break
        tally.skipped_images += bad_images
        if seed_micro_batch is not None:
            seed_micro_batch(step, micro % accum_steps)
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
            finite = torch.isfinite(loss)
            accuracy.add(out, y)
            dropped = False
            if skip_nonfinite and not _finite_everywhere(finite, world_size):
                tally.nonfinite += 1
                # Under DDP this step's accumulated gradients are all-reduced by the last micro-batch's backward;
                # when every process skips it, they were never averaged, so the step is dropped on all of them.
                dropped = is_update and world_size > 1
            else:
                (scaler.scale(loss / accum_steps) if scaler else loss / accum_steps).backward()
                first_bad = torch.where(finite | (first_bad >= 0), first_bad, step + 1)  # 1-based, as in progress
        if is_update:
            if not dropped:
                _update(model, optimizer, scaler, clip_grad)
            optimizer.zero_grad(set_to_none=True)
            step += 1
            if ema is not None:
                ema.update(unwrap(model), step=step)
        tally.loss_sum += torch.where(finite, loss.detach(), 0.0)
        micro += 1
        tally.micro_batches += 1
        tally.samples += x.shape[0]
        seen += x.shape[0] * world_size
        if is_update:
            tally.tick()
            if (step - first_step) % NONFINITE_CHECK_EVERY == 0:
                _check_finite(first_bad)
            if schedule.waiting_for_error and step % ERROR_FEEDBACK_EVERY == 0:
                accuracy.report_error(schedule, step, world_size)
            if progress is not None:
                progress.step(step, tally.running_loss, lr, seen)  # the epoch's loss so far, this session's rate
            if after_step(step):
                break
    _check_finite(first_bad)
    tally.tick()
    totals = tally.sum_over_processes()
    mean_loss = (totals[0] / totals[1].clamp(min=1)).item()
    top1 = 100.0 * (totals[2] / totals[3]).item() if totals[3] > 0 else None
    images, seconds = tally.samples * world_size, tally.seconds
    return EpochStats(mean_loss, lr, images / max(seconds, 1e-9), seconds, step - first_step, tally.skipped_images,
                      tally.nonfinite, top1, tally.samples, tally.note())


class _TrainAccuracy:
    """Training top-1 counted on the device for integer labels (Mixup/CutMix targets are not counted): the
    epoch's (correct, counted), and a window since the last report to a schedule waiting for the training error."""

    def __init__(self, device, epoch: torch.Tensor | None = None):
        self.epoch = epoch if epoch is not None else torch.zeros(2, device=device)  # added to in place
        self.window = torch.zeros(2, device=device)

    def add(self, out: torch.Tensor, y: torch.Tensor) -> None:
        if y.ndim == 1:
            hits = torch.stack([(out.detach().argmax(1) == y).sum().float(), torch.tensor(float(y.numel()),
                                                                                          device=y.device)])
            self.epoch += hits
            self.window += hits

    def report_error(self, schedule, step: int, world_size: int) -> None:
        """One sync (and, under DDP, one all-reduce on every process alike) per report."""
        if world_size > 1:
            distributed.all_reduce_sum(self.window)
        if self.window[1] > 0:
            schedule.observe_error(step, 100.0 * (1 - (self.window[0] / self.window[1]).item()))
        self.window.zero_()


def _update(model, optimizer, scaler, clip_grad: float | None) -> None:
    """One optimizer step on the accumulated gradients: unscale (float16), clip, step."""
    if clip_grad is not None:
        if scaler:
            scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
    if scaler:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()


def _finite_everywhere(finite: torch.Tensor, world_size: int) -> bool:
    """Whether the loss is finite on every process: under DDP all must skip the same micro-batch, or their
    gradient all-reduces would no longer pair up (a hang until the process-group timeout)."""
    flag = finite.to(torch.float32).reshape(1)
    if world_size > 1:
        distributed.all_reduce_sum(flag)
    return int(flag.item()) == world_size


def hit_counts(top5: torch.Tensor, targets: torch.Tensor) -> list[torch.Tensor]:
    """[correct@1, correct@5, images] of one batch, as device tensors (no host synchronisation)."""
    hits = top5.eq(targets.view(-1, 1))
    return [hits[:, 0].sum(), hits.any(dim=1).sum(), torch.tensor(len(targets), device=top5.device)]


@torch.no_grad()
def score_batches(model, batches, prep, *, device, amp_dtype=None, targets: torch.Tensor | None = None,
                  on_batch=None) -> torch.Tensor:
    """The one scoring loop (training-time evaluation and validate.py): [correct@1, correct@5, images, summed
    cross-entropy] of this process's share as float64 device tensors, not yet summed over processes (the callers
    do that once, after validate.py's out-of-memory retries, which are per process).

    With `targets` (one class per file, on the device) the loader's labels are file positions and the true
    class is targets[position]: ReaL needs to know which file each prediction is for. `on_batch(top5, labels)`
    sees each batch's predictions and the loader's labels (ReaL counts, progress)."""
    model.eval()
    counts = torch.zeros(4, device=device, dtype=torch.float64)
    for images, labels, _ in batches:
        x, y = prep(images, labels)
        with autocast(device, amp_dtype):
            logits = model(x)
        logits = logits.float()
        top5 = logits.topk(min(5, logits.shape[1]), dim=1).indices
        truth = y if targets is None else targets[y]
        loss = F.cross_entropy(logits, truth, reduction="sum")  # eval loss: plain CE on the true class, as timm's
        counts += torch.stack([*hit_counts(top5, truth), loss]).to(torch.float64)
        if on_batch is not None:
            on_batch(top5, y)
    return counts


def evaluate(model, loader, prep, *, device, amp_dtype=None) -> dict:
    """Top-1 and top-5 accuracy (%) and the mean cross-entropy over the loader, summed over processes (each
    scores its own share)."""
    counts = score_batches(model, loader, prep, device=device, amp_dtype=amp_dtype)
    distributed.all_reduce_sum(counts)
    n = counts[2].item()
    return {"top1": 100.0 * counts[0].item() / max(n, 1), "top5": 100.0 * counts[1].item() / max(n, 1),
            "loss": counts[3].item() / max(n, 1), "images": int(n)}
