"""Batch work on the device: uint8 to float, normalise, channels_last, Mixup/CutMix, random erasing."""
from __future__ import annotations

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, Mixup
from timm.data.random_erasing import RandomErasing

from rsb.config import AugConfig


class DeviceBatch:
    """Turns a loader's uint8 batch into the model's input on `device` (and mixed targets when training)."""

    def __init__(self, device: torch.device, channels_last: bool, aug: AugConfig | None = None,
                 num_classes: int = 1000, mean=IMAGENET_DEFAULT_MEAN, std=IMAGENET_DEFAULT_STD):
        self.device = device
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        # mean and std on the 0..1 scale (timm's convention); another model's own values when scoring it
        self.mean = torch.tensor([255 * m for m in mean], device=device).view(1, 3, 1, 1)
        self.std = torch.tensor([255 * s for s in std], device=device).view(1, 3, 1, 1)
        self.mixup = None
        self.erasing = None
        if aug is not None and (aug.mixup_alpha > 0 or aug.cutmix_alpha > 0):
            # label_smoothing=0: smoothing belongs to the loss, which applies it before or after the
            # BCE threshold as the recipe says (rsb.loss).
            self.mixup = Mixup(mixup_alpha=aug.mixup_alpha, cutmix_alpha=aug.cutmix_alpha, prob=aug.mix_prob,
                               switch_prob=aug.mix_switch_prob, mode="batch", label_smoothing=0.0,
                               num_classes=num_classes)
        if aug is not None and aug.random_erasing > 0:
            self.erasing = RandomErasing(aug.random_erasing, mode="pixel", device=str(device))

    def __call__(self, images: torch.Tensor, labels: torch.Tensor, train: bool = False):
        images = images.to(self.device, non_blocking=True)
        labels = labels.to(self.device, non_blocking=True)
        x = images.float().sub_(self.mean).div_(self.std).contiguous(memory_format=self.memory_format)
        if train and self.erasing is not None:
            x = self.erasing(x)
        if train and self.mixup is not None:
            x, labels = self.mixup(x, labels)  # labels become dense (B, num_classes) soft targets
        return x, labels
