"""Optimizer with weight-decay parameter groups, and the learning-rate schedules, all pure functions of the
optimizer step: the per-step cosine with linear warmup (A1-A3), timm 2021's per-epoch cosine with its cooldown (the
_timm2021 recipes), and the step schedule of the 2015 ResNet paper and torchvision's classic recipe (lr divided by
10 at milestones), with the 2015 paper's constant warm-up."""
from __future__ import annotations

import math

import torch
from timm.optim import Lamb, param_groups_weight_decay

from rsb.config.schema import OptimConfig, SchedConfig


def create_optimizer(model: torch.nn.Module, cfg: OptimConfig, lr: float) -> torch.optim.Optimizer:
    if cfg.decay_biases_and_norms:  # one group: the 2015 paper's and torchvision's classic recipe decay everything
        groups = [{"params": [p for p in model.parameters() if p.requires_grad], "weight_decay": cfg.weight_decay}]
    else:  # timm's grouping: no weight decay on 1-d parameters (biases, norm scales and shifts).
        groups = param_groups_weight_decay(model, cfg.weight_decay)
    if cfg.name == "lamb":
        # max_grad_norm is Lamb's own global clipping (timm's default 1.0; that the released weights clipped at
        # 1.0 is inferred from this default, their optimizer flags are not published). rsb has no second clip
        # outside LAMB, as timm's --clip-grad adds (clip_grad below is for optimizers that do not clip).
        return Lamb(groups, lr=lr, betas=tuple(cfg.betas), eps=cfg.eps, weight_decay=cfg.weight_decay,
                    max_grad_norm=cfg.max_grad_norm)
    if cfg.name == "sgd":  # torch's SGD: the decay is added to the gradient before momentum (L2), as in 2015
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(cfg.betas), eps=cfg.eps, weight_decay=cfg.weight_decay)


def clips_gradients_itself(optimizer: torch.optim.Optimizer) -> bool:
    return isinstance(optimizer, Lamb)


class _Schedule:
    """What the training loop sees of a schedule: lr_at(step), apply(optimizer, step), and the error feedback
    hook (only the step schedule's error-ended warm-up uses it)."""

    waiting_for_error = False  # True while the lr depends on the training error (the loop then reports it)

    def apply(self, optimizer: torch.optim.Optimizer, step: int) -> float:
        lr = self.lr_at(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr

    def observe_error(self, step: int, error: float) -> None:
        pass

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class WarmupCosine(_Schedule):
    """Learning rate as a pure function of the optimizer step: linear from warmup_lr to peak over
    warmup_steps, then cosine from peak to min_lr at the last step. Updated every step, stateless, so resuming
    needs only the step count."""

    def __init__(self, sched: SchedConfig, peak_lr: float, total_steps: int, warmup_steps: int):
        self.peak, self.total, self.warmup = peak_lr, total_steps, warmup_steps
        self.warmup_lr, self.min_lr = sched.warmup_lr, sched.min_lr

    def lr_at(self, step: int) -> float:
        if step < self.warmup:
            return self.warmup_lr + (self.peak - self.warmup_lr) * step / self.warmup
        span = max(1, self.total - 1 - self.warmup)
        progress = min(1.0, (step - self.warmup) / span)
        return self.min_lr + 0.5 * (self.peak - self.min_lr) * (1 + math.cos(math.pi * progress))


class PerEpochCosine(_Schedule):
    """timm's CosineLRScheduler as timm's train.py of 2021 (commit cc9bedf3) configured it: t_initial=sched.epochs,
    lr_min=min_lr, warmup_t=warmup_epochs, warmup_lr_init=warmup_lr, warmup_prefix=False, t_in_epochs=True,
    cycle_limit=1, no noise, k_decay=1. One lr per epoch t (train.py stepped it with step(epoch + 1) after each
    epoch): linear from warmup_lr while t < warmup_epochs, the cosine of t / epochs otherwise (the warmup lies
    inside the cosine, so the cosine's peak is never reached), min_lr from epoch `epochs` on: the cooldown epochs
    that train.py added after the cycle (num_epochs = cycle length + cooldown_epochs).

    Why not timm's object: it writes the optimizer's lr itself and is stepped by the epoch loop; here the lr is a
    function of the optimizer step, which the engine applies, so a mid-epoch resume needs only the step count.
    The arithmetic is timm's, term for term; tests/training/test_optim.py checks it against timm's scheduler."""

    def __init__(self, sched: SchedConfig, peak_lr: float, steps_per_epoch: int):
        self.peak, self.per_epoch, self.epochs = peak_lr, steps_per_epoch, sched.epochs
        self.warmup, self.warmup_lr, self.min_lr = sched.warmup_epochs, sched.warmup_lr, sched.min_lr

    def lr_of_epoch(self, t: int) -> float:
        if t < self.warmup:
            return self.warmup_lr + t * ((self.peak - self.warmup_lr) / self.warmup)
        if t >= self.epochs:
            return self.min_lr
        return self.min_lr + 0.5 * (self.peak - self.min_lr) * (1 + math.cos(math.pi * t / self.epochs))

    def lr_at(self, step: int) -> float:
        return self.lr_of_epoch(step // self.per_epoch)


class StepDecay(_Schedule):
    """peak x gamma^k after the k-th milestone (milestones in optimizer steps, or in epochs: at the first step of
    that epoch, as torch's MultiStepLR stepped once per epoch). Warm-up, the 2015 paper's kind: warmup_lr held
    for warmup_steps, or (warmup_until_error > 0) until the training error first falls below it ("0.01 until the
    training error is below 80%", about 400 iterations for ResNet-110). Milestones count from step 0 either way.

    Why not torch's MultiStepLR: it is stateful per call, and here the lr must be a function of the step so a
    resume (mid-epoch too) needs only the step count, plus the step the error warm-up ended, kept in checkpoints."""

    def __init__(self, sched: SchedConfig, peak_lr: float, steps_per_epoch: int, warmup_steps: int,
                 lr_scale: float = 1.0):
        """`lr_scale`: the batch rule's factor on the recipe's lr (Derived.lr_scale), applied to warmup_lr too, so the
        warm-up keeps its ratio to the peak (0.01 to 0.1) at any batch."""
        per = steps_per_epoch if sched.unit == "epochs" else 1
        self.milestones = [round(m * per) for m in sched.milestones]
        self.peak, self.gamma, self.warmup = peak_lr, sched.gamma, warmup_steps
        self.warmup_lr = sched.warmup_lr * lr_scale
        self.until_error = sched.warmup_until_error
        self.warm_end: int | None = None  # the step the error warm-up ended at; None while it lasts

    @property
    def waiting_for_error(self) -> bool:
        return self.until_error > 0 and self.warm_end is None

    def lr_at(self, step: int) -> float:
        if step < self.warmup or (self.until_error > 0 and (self.warm_end is None or step < self.warm_end)):
            return self.warmup_lr
        return self.peak * self.gamma ** sum(step >= m for m in self.milestones)

    def observe_error(self, step: int, error: float) -> None:
        if self.waiting_for_error and error < self.until_error:
            self.warm_end = step

    def state_dict(self) -> dict:
        return {"warm_end": self.warm_end}

    def load_state_dict(self, state: dict) -> None:
        self.warm_end = state.get("warm_end")


def create_schedule(sched: SchedConfig, peak_lr: float, total_steps: int, warmup_steps: int,
                    steps_per_epoch: int, lr_scale: float = 1.0) -> _Schedule:
    if sched.name == "step":
        return StepDecay(sched, peak_lr, steps_per_epoch, warmup_steps, lr_scale)
    if sched.name == "cosine_per_epoch":
        return PerEpochCosine(sched, peak_lr, steps_per_epoch)
    return WarmupCosine(sched, peak_lr, total_steps, warmup_steps)
