"""The training transform of timm, run on uint8 tensors: the same random draws, the same pixels up to rounding.

timm's chain (RandomResizedCrop, flip, RandAugment, to uint8 tensor) spends most of its time after decoding in
two Pillow calls: the crop's antialiased bicubic resize (~1.3 ms per image at 224 on one core) and RandAugment's
affine ops (~3 ms each time Shear or Translate is drawn). Here the crop is resized by torch's uint8 antialiased
kernel (the same filter as Pillow's, vectorised: ~0.25 ms), RandAugment runs rsb.data.tensor_ops, and a JPEG
is decoded only where the crop falls (rsb.data.decode).

Everything random is still drawn by timm's own objects, in timm's order, from the same generators: the crop
box by timm's RandomResizedCropAndInterpolation.get_params, the flip by torch.rand(1) as torchvision's flip,
RandAugment's op choice and magnitudes by timm's RandAugment and AugmentOp themselves (only each op's image
function is swapped). So for a given seed the crop, flip, ops and magnitudes are exactly timm's, and
tests/data/test_fast_transform.py checks the images agree (the resize's one-level differences can grow where a later
op thresholds, as Solarize and Posterize do, at a few pixels).

FastTrainTransform.from_timm() accepts only a chain it knows how to reproduce; for anything else (colour
jitter, random interpolation, other auto-augment policies) it returns None and rsb keeps timm's transform.
"""
from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from timm.data.auto_augment import RandAugment
from timm.data.transforms import MaybePILToTensor, RandomResizedCropAndInterpolation
from torchvision import transforms as T
from torchvision.transforms import InterpolationMode

from rsb.data.decode import EncodedJpeg
from rsb.data.tensor_ops import NAME_TO_TENSOR_OP

_RESIZE_MODES = {InterpolationMode.BICUBIC: "bicubic", InterpolationMode.BILINEAR: "bilinear"}


def _tensor_rand_augment(ra: RandAugment) -> RandAugment | None:
    """A copy of timm's RandAugment whose ops call the tensor versions of their image functions."""
    ops = []
    for op in ra.ops:
        fn = NAME_TO_TENSOR_OP.get(op.name)
        if fn is None or isinstance(op.kwargs.get("resample"), (list, tuple)):
            return None  # an op we do not have, or random interpolation (drawn per op by timm)
        tensor_op = copy.copy(op)
        tensor_op.aug_fn = fn
        ops.append(tensor_op)
    out = copy.copy(ra)
    out.ops = ops
    return out


class FastTrainTransform:
    """PIL image or HxWx3 uint8 array -> uint8 CHW tensor, distributed as the timm train transform it was built
    from."""

    def __init__(self, crop: RandomResizedCropAndInterpolation, hflip: float, vflip: float,
                 rand_augment: RandAugment | None):
        self.crop = crop
        self.mode = _RESIZE_MODES[crop.interpolation]
        self.hflip, self.vflip = hflip, vflip
        self.rand_augment = rand_augment

    @classmethod
    def from_timm(cls, chain: T.Compose) -> FastTrainTransform | None:
        """Build from timm's create_transform(..., is_training=True, use_prefetcher=True) Compose, or None when
        the chain holds a step this class does not reproduce."""
        steps = list(chain.transforms)
        if len(steps) < 2 or not isinstance(steps[0], RandomResizedCropAndInterpolation) \
                or not isinstance(steps[-1], MaybePILToTensor):
            return None
        crop, steps = steps[0], steps[1:-1]
        if crop.interpolation not in _RESIZE_MODES:
            return None  # 'random' interpolation is a tuple; nearest and others are not worth a path
        hflip = vflip = 0.0
        rand_augment = None
        for step in steps:
            if isinstance(step, T.RandomHorizontalFlip) and not hflip and rand_augment is None:
                hflip = step.p
            elif isinstance(step, T.RandomVerticalFlip) and not vflip and rand_augment is None:
                vflip = step.p
            elif isinstance(step, RandAugment) and rand_augment is None:
                rand_augment = _tensor_rand_augment(step)
                if rand_augment is None:
                    return None
            else:
                return None
        return cls(crop, hflip, vflip, rand_augment)

    def __call__(self, img) -> torch.Tensor:
        """img: a PIL image, an HxWx3 uint8 array, or an rsb.data.decode.EncodedJpeg (decoded here, by region)."""
        if isinstance(img, EncodedJpeg):
            i, j, h, w = self.crop.get_params(img.size_probe, self.crop.scale, self.crop.ratio)
            region = img.region(j, i, w, h)
        elif isinstance(img, np.ndarray):
            i, j, h, w = self.crop.get_params(torch.from_numpy(img).permute(2, 0, 1), self.crop.scale,
                                             self.crop.ratio)
            region = np.ascontiguousarray(img[i:i + h, j:j + w])
        else:
            i, j, h, w = self.crop.get_params(img, self.crop.scale, self.crop.ratio)
            region = np.array(img.convert("RGB").crop((j, i, j + w, i + h)))
        x = torch.from_numpy(region).permute(2, 0, 1).unsqueeze(0)  # NCHW view of HWC memory: channels_last
        x = self._resize(x)[0]
        # torchvision's flips draw torch.rand(1) < p; drawn the same way so the torch stream stays in step.
        if self.hflip > 0 and torch.rand(1) < self.hflip:
            x = x.flip(2)
        if self.vflip > 0 and torch.rand(1) < self.vflip:
            x = x.flip(1)
        x = x.contiguous()  # planar CHW, the layout rsb.data.tensor_ops work in
        if self.rand_augment is not None:
            x = self.rand_augment(x)
        return x

    def _resize(self, x: torch.Tensor) -> torch.Tensor:
        """Pillow's resize (as timm's crop calls it) with torch's antialiased uint8 kernel: the same filter
        (support widened when shrinking; a=-0.5 cubic), a level or two apart on under 1% of pixels. Both resample
        one axis, round to uint8, then the other; torch goes horizontal first, Pillow 13 vertical first when
        h_in > h_out and h_in - h_out > 2 (w_in - w_out) (found by comparing both orders with Pillow over a grid
        of shapes; tests/data/test_fast_transform.py checks it against the installed Pillow). The order matters where
        the first pass overshoots and is clipped: up to ~20 levels on noisy images."""
        h_out, w_out = self.crop.size
        h, w = x.shape[-2:]
        if h > h_out and w != w_out and h - h_out > 2 * (w - w_out):
            x = F.interpolate(x, size=(h_out, w), mode=self.mode, antialias=True)
        return F.interpolate(x, size=(h_out, w_out), mode=self.mode, antialias=True)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(crop={self.crop!r}, hflip={self.hflip}, vflip={self.vflip}, "
                f"rand_augment={self.rand_augment!r})")
