"""Optimizer with weight-decay parameter groups, and the per-step cosine schedule with linear warmup."""
from __future__ import annotations

import math

import torch
from timm.optim import Lamb, param_groups_weight_decay

from rsb.config import OptimConfig, SchedConfig


def create_optimizer(model: torch.nn.Module, cfg: OptimConfig, lr: float) -> torch.optim.Optimizer:
    # timm's grouping: no weight decay on 1-d parameters (biases, norm scales and shifts).
    groups = param_groups_weight_decay(model, cfg.weight_decay)
    if cfg.name == "lamb":
        # max_grad_norm is Lamb's own global clipping (timm default 1.0, which the released weights used).
        return Lamb(groups, lr=lr, betas=tuple(cfg.betas), eps=cfg.eps, weight_decay=cfg.weight_decay,
                    max_grad_norm=cfg.max_grad_norm)
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(cfg.betas), eps=cfg.eps, weight_decay=cfg.weight_decay)


def clips_gradients_itself(optimizer: torch.optim.Optimizer) -> bool:
    return isinstance(optimizer, Lamb)


class WarmupCosine:
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

    def apply(self, optimizer: torch.optim.Optimizer, step: int) -> float:
        lr = self.lr_at(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr
