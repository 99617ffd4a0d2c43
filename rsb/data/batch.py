"""Batch work on the device: uint8 to float, normalise (per channel, or by a mean image), the CIFAR pad-crop-flip,
channels_last, Mixup/CutMix, random erasing."""
from __future__ import annotations

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, Mixup
from timm.data.random_erasing import RandomErasing

from rsb.config.schema import AugConfig


class DeviceBatch:
    """Turns a loader's uint8 batch into the model's input on `device` (and mixed targets when training)."""

    def __init__(self, device: torch.device, channels_last: bool, aug: AugConfig | None = None,
                 num_classes: int = 1000, mean=IMAGENET_DEFAULT_MEAN, std=IMAGENET_DEFAULT_STD,
                 mean_image: torch.Tensor | None = None, flip_on_device: bool = False):
        """`mean_image` (3, H, W, 0..255 scale): subtract it and scale by 1/255 instead of the per-channel mean and
        std (the 2015 paper's per-pixel mean). `flip_on_device`: aug.hflip runs here (the CIFAR path, whose
        loader has no per-image transform); aug.pad_crop always does."""
        self.device = device
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        # mean and std on the 0..1 scale (timm's convention); another model's own values when scoring it
        self.mean = torch.tensor([255 * m for m in mean], device=device).view(1, 3, 1, 1)
        self.std = torch.tensor([255 * s for s in std], device=device).view(1, 3, 1, 1)
        if mean_image is not None:
            self.mean, self.std = mean_image.to(device).unsqueeze(0), torch.full((1, 1, 1, 1), 255.0, device=device)
        self.pad = aug.pad_crop if aug is not None else 0
        self.hflip = aug.hflip if aug is not None and flip_on_device else 0.0
        self.mixup = None
        self.erasing = None
        if aug is not None and (aug.mixup_alpha > 0 or aug.cutmix_alpha > 0):
            # label_smoothing=0: smoothing belongs to the loss, which applies it before or after the
            # BCE threshold as the recipe says (rsb.training.loss).
            self.mixup = Mixup(mixup_alpha=aug.mixup_alpha, cutmix_alpha=aug.cutmix_alpha, prob=aug.mix_prob,
                               switch_prob=aug.mix_switch_prob, mode="batch", label_smoothing=0.0,
                               num_classes=num_classes)
        if aug is not None and aug.random_erasing > 0:
            self.erasing = RandomErasing(aug.random_erasing, mode="pixel", device=str(device))

    def __call__(self, images: torch.Tensor, labels: torch.Tensor, train: bool = False):
        images = images.to(self.device, non_blocking=True)
        labels = labels.to(self.device, non_blocking=True)
        x = images.float().sub_(self.mean).div_(self.std)
        if train and (self.pad or self.hflip):
            x = pad_crop_flip(x, self.pad, self.hflip)
        x = x.contiguous(memory_format=self.memory_format)
        if train and self.erasing is not None:
            x = self.erasing(x)
        if train and self.mixup is not None:
            x, labels = self.mixup(x, labels)  # labels become dense (B, num_classes) soft targets
        return x, labels


def pad_crop_flip(x: torch.Tensor, pad: int, hflip: float) -> torch.Tensor:
    """Per image: zero-pad `pad` px on each side, crop back to the input size at a random offset, flip with
    probability `hflip` (the 2015 paper's CIFAR augmentation), for the whole batch at once on its device. Draws
    come from torch's generator on that device, seeded per micro-batch by the training loop as Mixup's are."""
    b, _, h, w = x.shape
    if pad:
        x = torch.nn.functional.pad(x, (pad, pad, pad, pad))
        dy = torch.randint(0, 2 * pad + 1, (b, 1), device=x.device)
        dx = torch.randint(0, 2 * pad + 1, (b, 1), device=x.device)
    else:
        dy = dx = torch.zeros((b, 1), dtype=torch.int64, device=x.device)
    rows = dy + torch.arange(h, device=x.device)   # (b, h)
    cols = dx + torch.arange(w, device=x.device)   # (b, w)
    if hflip:
        flip = torch.rand(b, 1, device=x.device) < hflip
        cols = torch.where(flip, cols.flip(1), cols)
    batch = torch.arange(b, device=x.device)[:, None, None]
    return x[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)  # (b, h, w, c) -> (b, c, h, w)
