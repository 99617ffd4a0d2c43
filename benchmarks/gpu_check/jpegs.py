"""The jpegs part: ImageNet-sized photo-like JPEGs (benchmarks/input_pipeline.py's generator) in the ImageNet
layout (train/<wnid>/, val/<wnid>/), a few unique files multiplied by hard links into the epoch lengths the
loader and validate rows need. No network."""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .plan import train_copies

if TYPE_CHECKING:
    from .worker import Ctx

CLASSES = 8


def _write_jpeg(job) -> int:
    path, seed, w, h = job
    import numpy as np
    from PIL import Image

    from benchmarks.input_pipeline import photo_like
    Image.fromarray(photo_like(np.random.default_rng(seed), w, h)).save(path, quality=90)
    return os.path.getsize(path)


def _link(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:  # a file system without hard links
        shutil.copyfile(src, dst)


def part_jpegs(ctx: Ctx) -> None:
    import multiprocessing
    s = ctx.sizes
    w, h = s.jpeg_wh
    uniq = ctx.jpegs / "unique"
    jobs = []
    for i in range(s.unique):
        folder = uniq / f"n{i % CLASSES:08d}"
        folder.mkdir(parents=True, exist_ok=True)
        jobs.append((str(folder / f"img_{i:05d}.JPEG"), 1000 + i, w, h))
    t = time.perf_counter()
    procs = min(ctx.workers, len(jobs))
    with multiprocessing.get_context("fork").Pool(procs) as pool:
        sizes = pool.map(_write_jpeg, jobs, chunksize=4)
    written_s = time.perf_counter() - t
    copies = train_copies(s, ctx.workers)
    for split, n_copies in (("train", copies), ("val", s.val_copies)):
        for src in sorted(uniq.rglob("*.JPEG")):
            folder = ctx.jpegs / split / src.parent.name
            folder.mkdir(parents=True, exist_ok=True)
            for c in range(n_copies):
                _link(src, folder / f"{src.stem}_{c}.JPEG")
    info = (f"JPEGs: {s.unique} files of {w}x{h}, quality 90, mean {sum(sizes) / len(sizes) / 1024:.0f} KiB, "
            f"written in {written_s:.1f} s by {procs} processes; train/ {s.unique * copies} and val/ "
            f"{s.unique * s.val_copies} entries (hard links), {CLASSES} classes, ImageNet layout")
    (ctx.jpegs / "READY").write_text(info)
    ctx.emit(type="info", text=info)


def jpegs_ready(ctx: Ctx) -> None:
    if not (ctx.jpegs / "READY").is_file():
        raise RuntimeError("no JPEGs: the jpegs part did not finish")
