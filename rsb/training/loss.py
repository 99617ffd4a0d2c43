"""Losses: binary cross-entropy with a target threshold (the recipes), soft-target cross-entropy (the usual
alternative). Both take integer labels or dense (mixed) targets.

Why not timm's BinaryCrossEntropy: it smooths only integer labels, so with Mixup the smoothing must happen inside
Mixup (timm's mixup_target), before the threshold. There it leaves no soft target but moves the threshold: with
smoothing 0.1 and 1000 classes a class mixed in with weight lambda gets 0.0001 + 0.9 lambda, above 0.2 only when
lambda > 0.1999 / 0.9 = 0.2221 (tests/training/test_loss.py checks this against mixup_target). The paper's text
sets mixed targets to 1 or a smoothed 1 - eps; `smoothing_after_threshold` chooses the paper's order (True) or
timm's (False).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rsb.config.schema import LossConfig


def _smooth(target: torch.Tensor, eps: float) -> torch.Tensor:
    return target * (1.0 - eps) + eps / target.shape[-1]


class ThresholdedBCE(nn.Module):
    def __init__(self, num_classes: int, target_threshold: float | None = 0.2, smoothing: float = 0.0,
                 smoothing_after_threshold: bool = True):
        super().__init__()
        self.num_classes, self.threshold = num_classes, target_threshold
        self.smoothing, self.after = smoothing, smoothing_after_threshold

    def targets(self, target: torch.Tensor) -> torch.Tensor:
        """The 0/1 (or smoothed) targets the loss compares against; exposed for tests and inspection."""
        if target.ndim == 1:
            target = F.one_hot(target, self.num_classes).float()
        target = target.float()
        if self.smoothing and not self.after:
            target = _smooth(target, self.smoothing)
        if self.threshold is not None:
            target = (target > self.threshold).float()
        if self.smoothing and self.after:
            target = _smooth(target, self.smoothing)
        return target

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits.float(), self.targets(target))


class SoftTargetCE(nn.Module):
    def __init__(self, num_classes: int, smoothing: float = 0.0):
        super().__init__()
        self.num_classes, self.smoothing = num_classes, smoothing

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if target.ndim == 1:
            target = F.one_hot(target, self.num_classes).float()
        target = _smooth(target.float(), self.smoothing) if self.smoothing else target.float()
        return torch.sum(-target * F.log_softmax(logits.float(), dim=-1), dim=-1).mean()


def create_loss(cfg: LossConfig, num_classes: int) -> nn.Module:
    if cfg.name == "bce":
        return ThresholdedBCE(num_classes, cfg.target_threshold, cfg.label_smoothing, cfg.smoothing_after_threshold)
    return SoftTargetCE(num_classes, cfg.label_smoothing)
