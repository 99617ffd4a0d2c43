"""timm's RandAugment image ops on uint8 CHW tensors, computing what Pillow computes.

Why our own: timm's ops run Pillow, whose affine transform is a generic per-pixel bicubic loop in double
precision, ~3 ms for one 224x224 image on one core, so Shear and Translate dominate RandAugment's cost. Here each
op takes the same arguments as timm's Pillow op (level values, fillcolor, resample) and follows Pillow's
arithmetic: the affine ops sample like Pillow's Geometry.c (pixel centres at +0.5, fill where the source point
falls outside the image, Pillow's a=-1 cubic with edge clamping, truncation to uint8), the enhance ops blend like
Pillow's Image.blend (single precision, truncate), the table ops build Pillow's tables; Rotate runs Pillow
itself. tests/data/test_tensor_ops.py checks every op against timm's on the same arguments: equal, except Shear and
Translate (Pillow's formulas evaluated here in single precision, by Pillow in double), which may land one level
apart where the exact value sits on an integer, on a few percent of pixels at most.

Images are contiguous uint8 tensors of shape (C, H, W) with C = 3 (planar, so every per-row or per-plane
operation runs along the contiguous last axis); each op returns a new tensor.

Each op has one implementation, whichever was fastest (benchmarks/RESULTS_speed.md, the RandAugment table):
rsb/data/_augment.c for Shear and Translate (shift_lines, 7-10x Pillow) and Sharpness (sharpness, ~4x Pillow),
where one C pass replaces 5 to 12 full-image tensor passes; the torch/numpy code here for every other op (the
table ops, Posterize, Invert and the Color, Contrast and Brightness blends: a few passes each; C passes for them
ran at 0.7-1.4x Pillow's speed, not worth a second implementation, and this code beats running timm's Pillow op
through _via_pillow, whose conversion alone is ~0.17 ms); Pillow itself for Rotate. The torch code of _shift
and of Sharpness is the fallback where the C extension cannot be built; the tests run both.
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

try:  # one-pass C versions of _shift and of Sharpness (rsb/data/_augment.c); optional
    from rsb.data import _augment as _compiled
except ImportError:
    _compiled = None



def compiled_ops_available() -> bool:
    return _compiled is not None


_BICUBIC, _BILINEAR = Image.Resampling.BICUBIC, Image.Resampling.BILINEAR


def _from_bytes(buffer: bytearray, shape) -> torch.Tensor:
    """A uint8 tensor over what an rsb/data/_augment.c function returned (no copy)."""
    return torch.frombuffer(buffer, dtype=torch.uint8).view(shape)


def _via_pillow(img: torch.Tensor, fn) -> torch.Tensor:
    # Through single-band images: merging and splitting planes is ~5x cheaper than an interleaving copy.
    pil = Image.merge("RGB", [Image.fromarray(plane) for plane in img.numpy()])
    return torch.from_numpy(np.stack([np.asarray(band) for band in fn(pil).split()]))


# ---------------------------------------------------------------- table ops


def _apply_luts(img: torch.Tensor, luts: np.ndarray) -> torch.Tensor:
    """luts: (C, 256) uint8, one table per plane."""
    a = img.numpy()
    return torch.from_numpy(np.stack([np.take(luts[c], a[c]) for c in range(a.shape[0])]))


def _same_lut(lut: np.ndarray, channels: int) -> np.ndarray:
    return np.broadcast_to(lut.astype(np.uint8), (channels, 256))


def _histograms(img: torch.Tensor) -> np.ndarray:
    # torch.bincount counts uint8 directly (numpy's converts to intp first: ~2.5x slower here)
    return torch.stack([torch.bincount(plane.view(-1), minlength=256) for plane in img]).numpy()


def auto_contrast(img, **_):
    luts = []
    for h in _histograms(img):
        nonzero = np.flatnonzero(h)
        lo, hi = nonzero[0], nonzero[-1]
        if hi <= lo:
            luts.append(np.arange(256))
            continue
        scale = 255.0 / (hi - lo)
        offset = -lo * scale
        luts.append(np.clip(np.trunc(np.arange(256) * scale + offset), 0, 255))  # Pillow's int() truncates
    return _apply_luts(img, np.asarray(luts, dtype=np.uint8))


def equalize(img, **_):
    luts = []
    for h in _histograms(img):
        used = h[h > 0]
        step = (int(used.sum()) - int(used[-1])) // 255 if len(used) > 1 else 0
        if not step:
            luts.append(np.arange(256))
            continue
        # Pillow: lut[i] = n // step, n starting at step // 2 and growing by h[i] after each entry.
        luts.append((step // 2 + np.concatenate([[0], np.cumsum(h)[:-1]])) // step)
    return _apply_luts(img, np.clip(np.asarray(luts), 0, 255).astype(np.uint8))


def invert(img, **_):
    return 255 - img


def posterize(img, bits_to_keep, **_):
    if bits_to_keep >= 8:
        return img.clone()
    return img & (~(2 ** (8 - bits_to_keep) - 1) & 0xFF)


def solarize(img, thresh, **_):
    lut = np.arange(256)
    return _apply_luts(img, _same_lut(np.where(lut < thresh, lut, 255 - lut), img.shape[0]))


def solarize_add(img, add, thresh=128, **_):
    lut = np.arange(256)
    return _apply_luts(img, _same_lut(np.where(lut < thresh, np.minimum(255, lut + add), lut), img.shape[0]))


# ---------------------------------------------------------------- enhance ops (Pillow's Image.blend)


def _blend(degenerate, img: torch.Tensor, factor: float) -> torch.Tensor:
    """Pillow's Image.blend(degenerate, img, factor): (UINT8)(in1 + alpha * (in2 - in1)) in single precision,
    clipped when extrapolating. `degenerate` may be a float tensor that broadcasts against img, or a number."""
    out = img.float().sub_(degenerate).mul_(np.float32(factor)).add_(degenerate)
    return out.clamp_(0, 255).to(torch.uint8)  # float -> uint8 truncates, as Pillow's cast does


def _luminance(img: torch.Tensor) -> torch.Tensor:
    """Pillow's RGB -> L, (R*19595 + G*38470 + B*7471 + 0x8000) >> 16, as float32 (H, W). Exact: every
    intermediate is an integer below 2**24."""
    f = img.float()
    return f[0].mul(19595).add_(f[1], alpha=38470).add_(f[2], alpha=7471).add_(0x8000).div_(65536).floor_()


def color(img, factor, **_):
    return _blend(_luminance(img), img, factor)


def contrast(img, factor, **_):
    return _blend(float(int(_luminance(img).double().mean().item() + 0.5)), img, factor)


def brightness(img, factor, **_):
    # _blend with degenerate 0: (v - 0) * f + 0 is v * f exactly
    return img.float().mul_(np.float32(factor)).clamp_(0, 255).to(torch.uint8)


def sharpness(img, factor, **_):
    if _compiled is not None:
        return _from_bytes(_compiled.sharpness(img.numpy(), *img.shape, float(factor)), img.shape)
    # Pillow's SMOOTH filter: 3x3 kernel [1 1 1; 1 5 1; 1 1 1] / 13, +0.5 then truncate; the outermost rows and
    # columns are copied unfiltered.
    f = img.float()
    ring = (f[:, :-2, :-2] + f[:, :-2, 1:-1] + f[:, :-2, 2:] + f[:, 1:-1, :-2] + f[:, 1:-1, 2:]
            + f[:, 2:, :-2] + f[:, 2:, 1:-1] + f[:, 2:, 2:])
    inner = ring.mul_(np.float32(1 / 13)).add_(f[:, 1:-1, 1:-1] * np.float32(5 / 13)).add_(0.5)
    smooth = f.clone()
    smooth[:, 1:-1, 1:-1] = inner.clamp_(0, 255).trunc_()
    return _blend(smooth, img, factor)


# ---------------------------------------------------------------- affine ops (Pillow's Image.transform)


def _shift(img: torch.Tensor, shifts: np.ndarray, axis: int, resample, fill) -> torch.Tensor:
    """Pillow's affine transform for a matrix that moves pixels along one axis only: along rows (axis 2, x) by
    shifts[y] per row, or along columns (axis 1, y) by shifts[x] per column. An output pixel at index i of its
    line samples the line at Pillow position i + 0.5 + shift, or is `fill` where that is outside the line. The
    other axis's weight is then exactly 1 on the pixel's own line, so each line needs one fractional offset and
    the taps are one gather of edge-clamped positions."""
    channels = img.shape[0]
    n = img.shape[axis]  # length of a line
    shift = np.clip(shifts, -n - 4, n + 4)  # beyond one length every pixel is filled anyway
    if _compiled is not None and resample in (_BICUBIC, _BILINEAR):
        return _from_bytes(_compiled.shift_lines(img.numpy(), channels, img.shape[1], img.shape[2], axis,
                                                 np.ascontiguousarray(shift, dtype=np.float64),
                                                 int(resample == _BICUBIC), fill), img.shape)
    base = np.floor(shift)
    d = torch.from_numpy(shift - base).float()
    if resample == _BICUBIC:
        first, taps = -1, 4
    elif resample == _BILINEAR:
        first, taps = 0, 2
    else:
        raise ValueError(f"unsupported resample filter {resample!r} (bicubic and bilinear are)")
    offsets = torch.arange(first, first + n + taps - 1)
    base_t = torch.from_numpy(base.astype(np.int64))
    position = np.arange(n) + 0.5
    if axis == 2:  # lines are rows: index (H, W + taps - 1), one d per row
        index = base_t.unsqueeze(1) + offsets
        d = d.unsqueeze(1)
        outside = position[None, :] + shifts[:, None]
    else:  # lines are columns: index (H + taps - 1, W), one d per column
        index = base_t.unsqueeze(0) + offsets.unsqueeze(1)
        outside = position[:, None] + shifts[None, :]
    index = index.clamp_(0, n - 1)
    gathered = torch.gather(img, axis, index.expand(channels, *index.shape)).float()
    v = [gathered.narrow(axis, k, n) for k in range(taps)]
    # Pillow's own arithmetic order, which is exact on flat areas: BILINEAR v = a + (b - a) d;
    # BICUBIC (taps v0..v3) v = v1 + d (p2 + d (p3 + d p4)) with p2 = v2 - v0, p3 = 2 (v0 - v1) + v2 - v3,
    # p4 = v1 - v0 + v3 - v2.
    if taps == 2:
        out = torch.addcmul(v[0], v[1] - v[0], d)
    else:
        a = v[1] - v[0]
        p3 = (v[2] - v[3]).sub_(a, alpha=2)
        p4 = a.sub_(v[2]).add_(v[3])
        p2 = (v[2] - v[0]).addcmul_(p3.addcmul_(p4, d), d)
        out = torch.addcmul(v[1], p2, d)
    outside = torch.from_numpy((outside < 0) | (outside >= n))
    for c in range(channels):
        out[c].masked_fill_(outside, fill[c])
    return out.clamp_(0, 255).to(torch.uint8)  # Pillow clips then truncates


def affine(img: torch.Tensor, matrix, resample=_BICUBIC, fillcolor=None) -> torch.Tensor:
    """Pillow's img.transform(img.size, Image.AFFINE, matrix, resample, fillcolor=fillcolor). Shifts and shears
    along one axis (Translate, Shear: Pillow's weight along the other axis is then exactly 1 on the pixel's own
    row or column) run vectorised; any other matrix runs Pillow itself."""
    channels, h, w = img.shape
    a0, a1, a2, a3, a4, a5 = (float(v) for v in matrix)
    fill = tuple(fillcolor) if fillcolor is not None else (0,) * channels
    if resample in (_BICUBIC, _BILINEAR) and a0 == 1 and a4 == 1:
        if a3 == 0 and a5 == 0:  # x_src = x + a1 * y + a2
            return _shift(img, a1 * (np.arange(h) + 0.5) + a2, 2, resample, fill)
        if a1 == 0 and a2 == 0:  # y_src = y + a3 * x + a5
            return _shift(img, a3 * (np.arange(w) + 0.5) + a5, 1, resample, fill)
    return _via_pillow(img, lambda im: im.transform(im.size, Image.AFFINE, matrix, resample=resample,
                                                    fillcolor=fillcolor))


def shear_x(img, factor, **kwargs):
    return affine(img, (1, factor, 0, 0, 1, 0), **kwargs)


def shear_y(img, factor, **kwargs):
    return affine(img, (1, 0, 0, factor, 1, 0), **kwargs)


def translate_x_rel(img, pct, **kwargs):
    return affine(img, (1, 0, pct * img.shape[2], 0, 1, 0), **kwargs)


def translate_y_rel(img, pct, **kwargs):
    return affine(img, (1, 0, 0, 0, 1, pct * img.shape[1]), **kwargs)


def translate_x_abs(img, pixels, **kwargs):
    return affine(img, (1, 0, pixels, 0, 1, 0), **kwargs)


def translate_y_abs(img, pixels, **kwargs):
    return affine(img, (1, 0, 0, 0, 1, pixels), **kwargs)


def rotate(img, degrees, resample=_BICUBIC, fillcolor=None, **_):
    # Rotation needs Pillow's full 2-D neighbourhood per pixel, which does not vectorise cheaply here; it is
    # drawn for about one image in fifteen, so it stays in Pillow.
    return _via_pillow(img, lambda im: im.rotate(degrees, resample=resample, fillcolor=fillcolor))


# timm's op names (timm.data.auto_augment.NAME_TO_OP) -> the tensor op with the same signature.
NAME_TO_TENSOR_OP = {
    "AutoContrast": auto_contrast,
    "Equalize": equalize,
    "Invert": invert,
    "Rotate": rotate,
    "Posterize": posterize,
    "PosterizeIncreasing": posterize,
    "PosterizeOriginal": posterize,
    "Solarize": solarize,
    "SolarizeIncreasing": solarize,
    "SolarizeAdd": solarize_add,
    "Color": color,
    "ColorIncreasing": color,
    "Contrast": contrast,
    "ContrastIncreasing": contrast,
    "Brightness": brightness,
    "BrightnessIncreasing": brightness,
    "Sharpness": sharpness,
    "SharpnessIncreasing": sharpness,
    "ShearX": shear_x,
    "ShearY": shear_y,
    "TranslateX": translate_x_abs,
    "TranslateY": translate_y_abs,
    "TranslateXRel": translate_x_rel,
    "TranslateYRel": translate_y_rel,
}
