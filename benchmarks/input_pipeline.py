#!/usr/bin/env python
"""Input pipeline throughput on the CPU: rsb's training transform and loader against timm's, same JPEG files,
same machine, same run.

  python benchmarks/input_pipeline.py            # 300 JPEGs of 500x375 (quality 90), 3 alternating rounds
  python benchmarks/input_pipeline.py --quick    # 100 JPEGs, 2 rounds (under a minute on 2 cores)

The script writes its own JPEGs: 500x375, quality 90, photo-like content (multi-scale 1/f colour noise, a
lighting gradient, a few hard-edged shapes, sensor noise), about the size and entropy of ImageNet photos.

Per core (one process, torch at 1 thread, as in a loader worker), for A2 (224, rand-m7-mstd0.5-inc1) and A3
(160, rand-m6-mstd0.5-inc1), both with scale (0.08, 1), ratio (3/4, 4/3), hflip 0.5, bicubic:
  timm: timm.data.ImageDataset(root, transform=create_transform(..., use_prefetcher=True)), items by index.
  rsb:  rsb.data.loader.train_dataset(recipe, ImageFolderIndex(root)) (the loader's dataset),
        items by (index, sample seed) as rsb's RepeatedAugSampler gives them (the per-sample reseed is counted). With
        the recipes' defaults that is rsb.data.fast_transform.FastTrainTransform (timm's draws, torch resize,
        rsb.data.tensor_ops RandAugment) fed by rsb.data.decode.load_for_crop (the JPEG decoded only where the
        crop falls, by rsb.data._jpeg_region).
The two alternate in chunks of 25 images; each figure is total images / total seconds. "decode only" shows the
decoder's share: Pillow (open, load, convert to RGB, as timm) and rsb's whole-image decoder (load_rgb_array,
simplejpeg). The draft line bounds what decoding at reduced DCT scale (PIL Image.draft) could give: the share of
crops (timm's get_params on these files) that stay >= the output size at 1/2 scale or less, times the decode time
saved, against timm's per-image time.

Full loader (workers = usable cores, batch 32, uint8 batches, no pin_memory), A2, over a folder holding each
JPEG --loader-copies times (hard links: 1,200 items by default, so an epoch outlasts worker start-up):
  timm: create_loader(ImageDataset, is_training=True, the recipe's settings, use_prefetcher=True) and its inner
        DataLoader iterated (fast_collate uint8 batches; the prefetcher's normalisation runs on the GPU in timm's
        train.py, and rsb normalises on the device too, so neither side is charged for it).
  rsb:  rsb.data.loader.TrainLoader(recipe a2: repeated augmentation 3, seeded samples) for one epoch.
Both keep their workers across epochs (timm's create_loader default, and rsb's). Each round runs both (order
alternating) for one epoch; figures from iter() to the last batch (the first round includes worker start-up) and
in steady state (from the first batch to the last).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine_header, table
from rsb.runtime.cpus import usable_cpus

RECIPES = {"A2": ("a2", 224, "rand-m7-mstd0.5-inc1"), "A3": ("a3", 160, "rand-m6-mstd0.5-inc1")}


def photo_like(rng: np.random.Generator, w: int = 500, h: int = 375) -> np.ndarray:
    """An HxWx3 uint8 image with photographic statistics: 1/f multi-scale colour noise, a lighting gradient,
    hard-edged shapes and fine sensor noise."""
    img = np.zeros((h, w, 3), np.float32)
    for octave, cells in enumerate((2, 4, 8, 16, 32, 64, 128, 250)):
        field = rng.normal(0, 1, (max(2, cells * h // w), cells, 3)).astype(np.float32)
        up = np.stack([np.asarray(Image.fromarray(field[..., c]).resize((w, h), Image.BICUBIC)) for c in range(3)], -1)
        img += up * (90.0 / (1.15 ** octave))  # slow decay: texture-rich, ~110 KiB files as ImageNet's
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    img += (np.cos(angle) * xx / w + np.sin(angle) * yy / h)[..., None] * rng.uniform(40, 120)
    img += rng.uniform(60, 190, 3)
    for _ in range(rng.integers(3, 9)):  # objects: discs and boxes with their own colour and texture
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(15, 120)
        mask = ((xx - cx) ** 2 + (yy - cy) ** 2 < r ** 2) if rng.uniform() < 0.5 else \
            ((np.abs(xx - cx) < r) & (np.abs(yy - cy) < r * rng.uniform(0.3, 1.0)))
        img[mask] = img[mask] * 0.35 + rng.uniform(0, 255, 3) * 0.65
    img += rng.normal(0, 10, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_jpegs(root: Path, n: int, classes: int = 4, seed: int = 0) -> float:
    """n JPEGs in class folders; returns the mean file size in KiB."""
    rng = np.random.default_rng(seed)
    total = 0
    for i in range(n):
        folder = root / f"n{i % classes:08d}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"img_{i:05d}.JPEG"
        Image.fromarray(photo_like(rng)).save(path, quality=90)
        total += path.stat().st_size
    return total / n / 1024


def recipe_cfg(name: str):
    from rsb.config.load import load_recipe
    return load_recipe(name)


def timm_dataset(root: Path, size: int, ra: str):
    from timm.data import ImageDataset, create_transform
    tf = create_transform(size, is_training=True, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), hflip=0.5,
                          auto_augment=ra, color_jitter=0.0, interpolation="bicubic", re_prob=0.0,
                          use_prefetcher=True)
    return ImageDataset(str(root), transform=tf)


def rsb_dataset(root: Path, recipe: str):
    from rsb.data.folder import ImageFolderIndex
    from rsb.data.loader import train_dataset
    return train_dataset(recipe_cfg(recipe), ImageFolderIndex(root, use_cache=False))


def decode_only(paths, i):
    with Image.open(paths[i]) as img:
        img.load()
        return img.convert("RGB")


def decode_array(paths, i):
    from rsb.data.decode import load_rgb_array
    return load_rgb_array(paths[i])


def per_core(contenders: dict, n: int, rounds: int, chunk: int = 25) -> dict:
    """Images/s of each contender (a callable of the item number), alternating chunks, several rounds."""
    names = list(contenders)
    seconds = dict.fromkeys(names, 0.0)
    count = dict.fromkeys(names, 0)
    for name in names:  # warm-up: first-call costs (imports, caches) out of the figures
        for i in range(3):
            contenders[name](i)
    for r in range(rounds):
        for start in range(0, n, chunk):
            order = names if (r + start // chunk) % 2 == 0 else names[::-1]
            for name in order:
                t = time.perf_counter()
                for i in range(start, min(n, start + chunk)):
                    contenders[name](i)
                seconds[name] += time.perf_counter() - t
                count[name] += min(n, start + chunk) - start
    return {k: count[k] / seconds[k] for k in names}


def draft_ceiling(paths, size: int, pipeline_ips: float, draws: int = 5000) -> dict:
    """Upper bound of the reduced-DCT-scale decode (PIL Image.draft) for this recipe: the share of crops, drawn
    by timm's own RandomResizedCropAndInterpolation.get_params on the real image sizes, that stay at least `size`
    at a decode scale of 1/2 or less, times the decode time that scale saves, against the pipeline's time."""
    import random

    from timm.data.transforms import RandomResizedCropAndInterpolation as RRC
    state = random.getstate()
    random.seed(0)
    scales = []
    for k in range(draws):
        with Image.open(paths[k % len(paths)]) as img:
            _, _, h, w = RRC.get_params(img, (0.08, 1.0), (3 / 4, 4 / 3))
        scales.append(next((c for c in (8, 4, 2) if w / c >= size and h / c >= size), 1))
    random.setstate(state)

    def decode_ms(scale: int) -> float:
        t = time.perf_counter()
        for path in paths:
            with Image.open(path) as img:
                if scale > 1:
                    img.draft("RGB", (img.size[0] // scale, img.size[1] // scale))
                img.load()
        return (time.perf_counter() - t) / len(paths) * 1e3

    full = min(decode_ms(1) for _ in range(2))
    saved = 0.0
    for c in (2, 4, 8):
        share = scales.count(c) / draws
        if share:
            saved += share * (full - min(decode_ms(c) for _ in range(2)))
    per_image = 1e3 / pipeline_ips
    return {"share": sum(s > 1 for s in scales) / draws, "full_ms": full, "saved_ms": saved,
            "ceiling": per_image / (per_image - saved)}


def loader_round(make_iter) -> tuple[float, float]:
    """Images/s of one epoch from iter() to the last batch (worker start-up included), and in steady state
    (after the first batch)."""
    t = time.perf_counter()
    n, first = 0, None
    for batch in make_iter():
        n += len(batch[1])
        if first is None:
            first, n_first = time.perf_counter(), n
    end = time.perf_counter()
    return n / (end - t), (n - n_first) / (end - first)


def link_copies(root: Path, dest: Path, copies: int) -> None:
    """A larger folder for the loader: `copies` hard links (or copies) of every file of root, so an epoch is
    long enough that worker start-up does not dominate; the bytes decoded are the same files'."""
    for path in sorted(root.rglob("*.JPEG")):
        folder = dest / path.parent.name
        folder.mkdir(parents=True, exist_ok=True)
        for c in range(copies):
            target = folder / f"{path.stem}_{c}.JPEG"
            try:
                os.link(path, target)
            except OSError:
                shutil.copyfile(path, target)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=300)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--workers", type=int, default=usable_cpus())
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--loader-copies", type=int, default=4, help="the loader's folder holds each JPEG this often")
    p.add_argument("--quick", action="store_true", help="100 images, 2 rounds, loader copies 3")
    args = p.parse_args(argv)
    if args.quick:
        args.images, args.rounds, args.loader_copies = 100, 2, 3
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "train"
        t = time.perf_counter()
        kib = make_jpegs(root, args.images)
        print(machine_header(f"{args.images} JPEGs 500x375 q90, mean {kib:.0f} KiB (written in "
                             f"{time.perf_counter() - t:.0f} s); {args.rounds} rounds"
                             f"{' (--quick)' if args.quick else ''}"), flush=True)
        rows = []
        paths = sorted(str(p) for p in root.rglob("*.JPEG"))
        seed = 12345
        drafts = []
        for label, (recipe, size, ra) in RECIPES.items():
            timm_ds, rsb_ds = timm_dataset(root, size, ra), rsb_dataset(root, recipe)
            contenders = {"timm": lambda i, ds=timm_ds: ds[i],
                          "rsb": lambda i, ds=rsb_ds: ds[(i, seed + i)],
                          "decode only": lambda i: decode_only(paths, i),
                          "rsb decode only": lambda i: decode_array(paths, i)}
            r = per_core(contenders, args.images, args.rounds)
            rows.append([f"{label} {size}px transform, 1 process", f"{r['timm']:.1f}", f"{r['rsb']:.1f}",
                         f"{r['rsb'] / r['timm']:.2f}"])
            print(f"{label}: {r}", flush=True)
            d = draft_ceiling(paths, size, r["timm"])
            drafts.append(f"{label} {size}px: {100 * d['share']:.0f}% of crops allow a 1/2 (or smaller) DCT-scale "
                          f"decode; full decode {d['full_ms']:.2f} ms, mean saving {d['saved_ms']:.3f} ms/image; "
                          f"speed-up ceiling {d['ceiling']:.3f}x")
        decode, decode_rsb = r["decode only"], r["rsb decode only"]

        # Full loader, A2, workers = cores.
        from timm.data import ImageDataset, create_loader

        from rsb.data.folder import ImageFolderIndex
        from rsb.data.loader import TrainLoader, train_dataset
        loader_root = Path(tmp) / "loader"
        link_copies(root, loader_root, args.loader_copies)
        n_loader = args.images * args.loader_copies
        cfg = recipe_cfg("a2")
        cfg.train.batch_per_device = args.batch
        ours = TrainLoader(cfg, train_dataset(cfg, ImageFolderIndex(loader_root, use_cache=False)), 0, 1,
                           args.workers, pin_memory=False)
        theirs = create_loader(ImageDataset(str(loader_root)), input_size=(3, 224, 224), batch_size=args.batch,
                               is_training=True, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), hflip=0.5,
                               color_jitter=0.0, auto_augment="rand-m7-mstd0.5-inc1", interpolation="bicubic",
                               re_prob=0.0, num_workers=args.workers, use_prefetcher=True,
                               device=torch.device("cpu"))  # timm's default: persistent workers, as rsb's
        inner = getattr(theirs, "loader", theirs)  # the DataLoader inside timm's PrefetchLoader
        speed = {"timm": [], "rsb": []}
        steady = {"timm": [], "rsb": []}
        for r in range(args.rounds):
            order = ["timm", "rsb"] if r % 2 == 0 else ["rsb", "timm"]
            for side in order:
                ips, ips_steady = loader_round((lambda: iter(inner)) if side == "timm" else
                                               (lambda r=r: ours.epoch(r)))
                speed[side].append(ips)
                steady[side].append(ips_steady)
        for label, figures in (("epoch from iter()", speed), ("after the first batch", steady)):
            lt, lr = np.mean(figures["timm"]), np.mean(figures["rsb"])
            rows.append([f"A2 loader, {args.workers} workers, batch {args.batch}, {n_loader} images, {label}",
                         f"{lt:.1f}", f"{lr:.1f}", f"{lr / lt:.2f}"])
        print()
        print(table(["images/s", "timm", "rsb", "rsb / timm"], rows))
        print(f"decode only, 1 process: Pillow (open + load + RGB) {decode:.1f} images/s, "
              f"rsb load_rgb_array {decode_rsb:.1f} images/s")
        print("reduced-DCT-scale decode (Image.draft) where the crop allows it, upper bound (not implemented):")
        for line in drafts:
            print("  " + line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
