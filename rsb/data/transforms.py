"""Per-image transforms, run in the loader's worker processes. They stop at uint8 CHW tensors: normalising
(and Mixup/CutMix) happen on the device in rsb.data.batch, which moves 4x fewer bytes and frees the workers.

timm's create_transform already builds exactly the recipe's chain (RandomResizedCrop with the recipe's scale,
ratio and interpolation, flip, RandAugment with timm's hyper-parameters for the image size), so we reuse it; with
`run.fast_transform` (the default) the same chain runs on uint8 tensors with timm's random draws
(rsb.data.fast_transform), over 2x timm's images/s per core (benchmarks/RESULTS_speed.md).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from timm.data import create_transform
from torch.utils.data import default_collate

from rsb.config.schema import AugConfig, DataConfig
from rsb.data import decode, tensor_ops
from rsb.data.fast_transform import FastTrainTransform


def train_transform(data: DataConfig, aug: AugConfig, fast: bool = True):
    chain = create_transform(
        data.train_size, is_training=True, scale=tuple(aug.scale), ratio=tuple(aug.ratio), hflip=aug.hflip,
        auto_augment=aug.rand_augment or None, color_jitter=aug.color_jitter or None,
        interpolation=data.train_interpolation, re_prob=0.0,  # random erasing runs on the device
        use_prefetcher=True)  # use_prefetcher=True: end at uint8, no normalisation
    fast = FastTrainTransform.from_timm(chain) if fast else None
    return fast or chain  # a chain the fast path does not reproduce (e.g. colour jitter) stays timm's


BUILD_EXTENSIONS = ("to build them, install a C compiler and the libjpeg headers (Debian/Ubuntu: apt-get install "
                    "gcc libjpeg-dev) and reinstall rsb from its source folder: pip install --no-deps "
                    "--force-reinstall . (or pip install -e . in a checkout)")


@dataclass(frozen=True)
class TrainPipeline:
    """A train transform and the decoder whose output it takes, chosen together: the fast path takes what
    rsb.data.decode.load_for_crop returns (a JPEG it decodes by crop region, or an array); timm's chain takes a
    PIL image."""
    transform: Callable
    decode: Callable[[str], object]

    @property
    def fast(self) -> bool:
        return isinstance(self.transform, FastTrainTransform)

    def describe(self) -> str:
        """Which input path runs, for the start-up lines and resolved.yaml."""
        if not self.fast:
            return "timm's transform chain on PIL images (whole-image decode)"
        region = "by-region JPEG decode" if decode.region_decoder_available() else \
            "whole-image decode (the by-region JPEG decoder is not built)"
        ops = "C ops for Shear/Translate/Sharpness" if tensor_ops.compiled_ops_available() else \
            "torch fallback for Shear/Translate/Sharpness (the C ops are not built)"
        return f"fast uint8 transform, {region}, {ops}"


def train_pipeline(data: DataConfig, aug: AugConfig, fast: bool = True) -> TrainPipeline:
    tf = train_transform(data, aug, fast)
    return TrainPipeline(tf, decode.load_for_crop if isinstance(tf, FastTrainTransform) else decode.load_rgb)


def eval_transform(size: int, crop_pct: float, interpolation: str):
    """Resize the short side to floor(size / crop_pct), center-crop `size` (timm's and the paper's convention)."""
    return create_transform(size, is_training=False, crop_pct=crop_pct, interpolation=interpolation,
                            use_prefetcher=True)


def collate_uint8(batch):
    """Stack (uint8 CHW tensor or array, label, skipped) items into a uint8 tensor, labels and the total skipped."""
    images = [b[0] if isinstance(b[0], torch.Tensor) else torch.from_numpy(np.asarray(b[0])) for b in batch]
    # torch's default_collate stacks straight into shared memory when it runs in a loader worker, saving the
    # copy that sending a batch to the main process would otherwise make (~5% of loader throughput here).
    images = default_collate(images)
    labels = torch.tensor([b[1] for b in batch], dtype=torch.int64)
    skipped = sum(b[2] for b in batch) if len(batch[0]) > 2 else 0
    return images, labels, skipped
