"""The built-in sample data set: ten procedurally drawn classes in ImageNet's folder layouts.

Why synthetic: tests and first runs must work with no download. Why this design: the recipe's augmentations
(RandomResizedCrop down to 8% of the image, RandAugment, Mixup/CutMix) destroy shape cues at low resolution,
so a class is carried by something that survives a small crop: its colour palette, spread over the whole image
as a textured background. Random distractor shapes in random colours, hue jitter and noise keep the task from
being trivial. The "v2" split is drawn from a shifted distribution (more distractors, wider jitter) so that, as
with ImageNet-V2, it scores below val.

Layout written (same rules as the real data sets):
  <root>/train/<wnid>/*.JPEG, <root>/val/<wnid>/*.JPEG   ImageNet layout, classes in sorted wnid order
  <root>/v2/<class index>/<40 hex>.jpeg                  ImageNet-V2 layout, label = int(folder name)
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from PIL import Image

from rsb.run import folder as run_folder

NUM_CLASSES = 10
# Synthetic WordNet-style ids; sorted order equals class index, as in ImageNet-1k.
CLASS_IDS = [f"n9000{i:04d}" for i in range(NUM_CLASSES)]
IMAGE_SIZE = 64
SPLITS = {"train": 260, "val": 50, "v2": 10}  # images per class
VERSION = 3  # bump when the drawing changes, so cached copies are rebuilt


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectorised HSV (all in [0, 1]) to RGB in [0, 1]."""
    i = np.floor(h * 6.0).astype(np.int64) % 6
    f = h * 6.0 - np.floor(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    choices = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    rgb = np.zeros(h.shape + (3,))
    for k, (r, g, b) in enumerate(choices):
        m = i == k
        rgb[m, 0], rgb[m, 1], rgb[m, 2] = r[m], g[m], b[m]
    return rgb


def draw_image(label: int, rng: np.random.Generator, shift: float = 0.0) -> np.ndarray:
    """One HxWx3 uint8 image of class `label`; `shift` > 0 draws from the harder, V2-like distribution."""
    n = IMAGE_SIZE
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float64)
    # Hue jitter overlaps neighbouring classes (spacing 0.1) a little, so even a perfect model is not at 100%:
    # about 1% of val images (sd 0.02) and 10% of v2 images (sd 0.03) lie nearer a neighbour's hue. (Version 2's
    # sd of 0.03 capped val near 90%, which the 3-epoch sample scale could not approach; see sample_scale.yaml.)
    hue = label / NUM_CLASSES + rng.normal(0, 0.02 + 0.01 * shift)
    # Background: a grating of random orientation and period between two shades of the class hue.
    theta = rng.uniform(0, np.pi)
    period = rng.uniform(5, 20)
    wave = 0.5 + 0.5 * np.sin(2 * np.pi * (xx * np.cos(theta) + yy * np.sin(theta)) / period + rng.uniform(0, 6.3))
    sat = np.clip(rng.uniform(0.5, 0.95) - 0.25 * wave * rng.uniform(0, 1), 0, 1)
    val = np.clip(rng.uniform(0.45, 0.9) + 0.3 * (wave - 0.5), 0, 1)
    rgb = _hsv_to_rgb(np.full((n, n), hue % 1.0), sat, val)
    # Distractors: discs and bars in random colours, covering part of the image.
    for _ in range(rng.integers(1, 4 + int(3 * shift))):
        colour = _hsv_to_rgb(np.array([rng.uniform()]), np.array([rng.uniform(0.3, 1)]),
                             np.array([rng.uniform(0.3, 1)]))[0]
        cx, cy, r = rng.uniform(0, n), rng.uniform(0, n), rng.uniform(4, 12 + 4 * shift)
        if rng.uniform() < 0.5:
            mask = (xx - cx) ** 2 + (yy - cy) ** 2 < r ** 2
        else:
            mask = (np.abs(xx - cx) < r) & (np.abs(yy - cy) < r / 3)
        rgb[mask] = colour
    rgb += rng.normal(0, 0.03 + 0.02 * shift, rgb.shape)
    return (np.clip(rgb, 0, 1) * 255).astype(np.uint8)


def _write_split(root: Path, split: str, per_class: int, seed: int) -> None:
    shift = 1.0 if split == "v2" else 0.0
    for label, wnid in enumerate(CLASS_IDS):
        folder = root / split / (str(label) if split == "v2" else wnid)
        folder.mkdir(parents=True, exist_ok=True)
        # One generator per (split, class) so each split is reproducible on its own.
        rng = np.random.default_rng([seed, label, list(SPLITS).index(split)])
        for i in range(per_class):
            img = Image.fromarray(draw_image(label, rng, shift))
            if split == "v2":
                name = hashlib.sha1(f"{label}-{i}".encode()).hexdigest() + ".jpeg"
            else:
                name = f"{split}_{wnid}_{i:05d}.JPEG"
            img.save(folder / name, quality=90)


def default_sample_root() -> Path:
    return run_folder.cache_root() / f"sample-v{VERSION}"


def ensure_sample_dataset(root: str | Path | None = None, seed: int = 0, splits: dict | None = None) -> Path:
    """Return the sample data folder, drawing it first if it is missing or incomplete (a few seconds).
    `splits` (images per class per split) lets tests draw a smaller set of the same kind."""
    splits = splits or SPLITS
    root = Path(root) if root is not None else default_sample_root()
    marker = root / "COMPLETE.json"
    if marker.exists():
        return root
    # Drawn whole, then renamed: a concurrent or interrupted build never leaves a half folder.
    with run_folder.atomic_folder(root, complete=lambda f: (f / "COMPLETE.json").exists()) as tmp:
        for split, per_class in splits.items():
            _write_split(tmp, split, per_class, seed)
        (tmp / "COMPLETE.json").write_text(json.dumps({"version": VERSION, "seed": seed, "splits": splits}))
    return root
