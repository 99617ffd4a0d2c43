#!/usr/bin/env python
"""Evaluation throughput (images/s) of ResNet-50 at 224 on this machine: validate.py's path against timm's own
evaluation pipeline, on the same images, with the same model, batch, workers and precision.

  python benchmarks/eval_throughput.py                     # 200 JPEGs of 500x375, batch 32, 1 worker, 2 threads
  python benchmarks/eval_throughput.py --images 400 --workers 2 --batch 64

rsb:  ImageFolderIndex + eval_loader (uint8 batches) + DeviceBatch (normalise on the device, channels_last)
      + rsb.evaluation.scoring.score_set, exactly what validate.py runs.
timm: timm.data.create_dataset + create_loader (no prefetcher on CPU: float, normalised in the workers),
      the model in its default memory format, as timm's validate.py runs on a CPU by default; a last
      row repeats float32 with timm's loader feeding the channels_last model (timm validate.py --channels-last).
Both resize the short side to floor(224 / 0.95) = 235, center-crop 224, bicubic. Each figure counts from the
first batch requested to the last result (worker start-up included). "decode only" iterates the loader alone.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def make_images(root: Path, n: int, classes: int = 4, seed: int = 0) -> None:
    """JPEGs of 500x375 with photo-like content: smooth random colour fields plus fine noise, in class folders."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        coarse = rng.uniform(0, 255, (6, 8, 3)).astype(np.uint8)
        img = np.asarray(Image.fromarray(coarse).resize((500, 375), Image.BICUBIC), dtype=np.float32)
        img += rng.normal(0, 12, img.shape)
        folder = root / f"n{i % classes:08d}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(folder / f"img_{i:05d}.JPEG", quality=90)


def rsb_pass(model, root: Path, batch: int, workers: int, amp, decode_only: bool = False) -> float:
    from rsb.data.folder import ImageFolderIndex
    from rsb.data.loader import eval_loader
    from rsb.evaluation import scoring, sets
    from rsb.evaluation.checkpoints import EvalSettings
    index = ImageFolderIndex(root, use_cache=False)
    start = time.perf_counter()
    if decode_only:
        n = sum(len(b[1]) for b in eval_loader(index, 224, 0.95, "bicubic", batch, workers))
    else:
        s = sets.EvalSet("val", str(root), index, index.labels)
        n = scoring.score_set(model, s, EvalSettings(224, 0.95, "bicubic"), device=torch.device("cpu"),
                              amp_dtype=amp, batch_size=batch, workers=workers, channels_last=True,
                              progress=False)["images"]
    return n / (time.perf_counter() - start)


@torch.no_grad()
def timm_pass(model, root: Path, batch: int, workers: int, amp, decode_only: bool = False) -> float:
    from timm.data import create_dataset, create_loader
    dataset = create_dataset("", root=str(root))
    loader = create_loader(dataset, input_size=(3, 224, 224), batch_size=batch, is_training=False,
                           use_prefetcher=False, interpolation="bicubic", crop_pct=0.95, num_workers=workers,
                           device=torch.device("cpu"), persistent_workers=False)
    start, n, correct = time.perf_counter(), 0, 0
    channels_last = next(model.parameters()).is_contiguous(memory_format=torch.channels_last) \
        if model is not None else False
    for x, y in loader:
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if not decode_only:
            with torch.autocast("cpu", dtype=amp, enabled=amp is not None):
                out = model(x)
            correct += int((out.float().argmax(1) == y).sum())
        n += len(y)
    return n / (time.perf_counter() - start)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=200)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--precision", choices=["float32", "bfloat16", "both"], default="both")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    import timm
    torch.manual_seed(0)
    base = timm.create_model("resnet50", num_classes=1000).eval()
    rsb_model = timm.create_model("resnet50", num_classes=1000).eval()
    rsb_model.load_state_dict(base.state_dict())
    rsb_model = rsb_model.to(memory_format=torch.channels_last)  # as validate.py prepares it
    with torch.no_grad():  # warm both models' kernels up once
        base(torch.randn(2, 3, 224, 224))
        rsb_model(torch.randn(2, 3, 224, 224).contiguous(memory_format=torch.channels_last))
    precisions = ["float32", "bfloat16"] if args.precision == "both" else [args.precision]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "images"
        t = time.perf_counter()
        make_images(root, args.images)
        print(f"{args.images} JPEGs of 500x375 written in {time.perf_counter() - t:.1f} s; batch {args.batch}, "
              f"{args.workers} worker(s), {args.threads} threads, torch {torch.__version__}, timm {timm.__version__}",
              flush=True)
        ours = rsb_pass(None, root, args.batch, args.workers, None, decode_only=True)
        theirs = timm_pass(None, root, args.batch, args.workers, None, decode_only=True)
        rows.append(("decode only (no model)", ours, theirs))
        for prec in precisions:
            amp = torch.bfloat16 if prec == "bfloat16" else None
            ours = rsb_pass(rsb_model, root, args.batch, args.workers, amp)
            theirs = timm_pass(base, root, args.batch, args.workers, amp)
            rows.append((f"ResNet-50 224, {prec}", ours, theirs))
            print(f"{rows[-1][0]}: rsb {ours:.1f} img/s, timm {theirs:.1f} img/s", flush=True)
        # The same timm pipeline with the channels_last model (timm's validate.py --channels-last), float32:
        # separates the memory-format gain from the input pipeline's.
        theirs = timm_pass(rsb_model, root, args.batch, args.workers, None)
        rows.append(("timm --channels-last fp32", rows[1][1], theirs))
    print()
    print(f"| {'pipeline':<26} | {'rsb (validate.py)':>17} | {'timm':>8} | {'rsb / timm':>10} |")
    print(f"|{'-' * 28}|{'-' * 19}|{'-' * 10}|{'-' * 12}|")
    for name, ours, theirs in rows:
        print(f"| {name:<26} | {ours:>11.1f} img/s | {theirs:>8.1f} | {ours / theirs:>10.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
