#!/usr/bin/env python
"""Each RandAugment op of the A2 recipe: rsb's tensor version (rsb.data.tensor_ops) against timm's Pillow version,
on the same 224x224 image with the same arguments, one process, torch at 1 thread.

  python benchmarks/randaugment_ops.py            # 300 timed calls per op and side
  python benchmarks/randaugment_ops.py --quick    # 60

Figures are the 10th percentile of single-call times (robust to a shared machine's hiccups), so they are the
ops' own cost on warm memory; in a loader the ops run on fresh images, and everything is slower by about the
same factor for both sides. The mean over the 15 ops is what RandAugment costs per image on average (two ops
drawn, each applied with probability 0.5).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine_header, table
from input_pipeline import photo_like

ARGS = {"Rotate": (21.3,), "ShearX": (0.2,), "ShearY": (-0.2,), "TranslateXRel": (0.2,), "TranslateYRel": (-0.2,),
        "PosterizeIncreasing": (2,), "SolarizeIncreasing": (100,), "SolarizeAdd": (50,), "ColorIncreasing": (1.5,),
        "ContrastIncreasing": (0.6,), "BrightnessIncreasing": (1.5,), "SharpnessIncreasing": (1.5,)}


def per_call_ms(fn, calls: int) -> float:
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.percentile(times, 10) * 1e3)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=300)
    p.add_argument("--quick", action="store_true", help="60 calls per op and side")
    args = p.parse_args(argv)
    calls = 60 if args.quick else args.calls
    torch.set_num_threads(1)
    from timm.data import create_transform
    from timm.data.auto_augment import NAME_TO_OP, RandAugment

    from rsb.data.tensor_ops import NAME_TO_TENSOR_OP
    chain = create_transform(224, is_training=True, auto_augment="rand-m7-mstd0.5-inc1", interpolation="bicubic",
                             use_prefetcher=True)
    ra = next(t for t in chain.transforms if isinstance(t, RandAugment))
    kwargs = ra.ops[0].kwargs  # the recipe's fill colour and resample filter, as timm passes them
    img = Image.fromarray(photo_like(np.random.default_rng(0))).resize((224, 224), Image.Resampling.BICUBIC)
    chw = torch.from_numpy(np.array(img)).permute(2, 0, 1).contiguous()
    print(machine_header(f"A2 RandAugment ops on one 224x224 photo-like image, {calls} calls per op and side"))
    rows, total_t, total_p = [], 0.0, 0.0
    for op in ra.ops:
        a = ARGS.get(op.name, ())
        tensor_fn, pillow_fn = NAME_TO_TENSOR_OP[op.name], NAME_TO_OP[op.name]
        ms_t = per_call_ms(lambda: tensor_fn(chw, *a, **dict(kwargs)), calls)
        ms_p = per_call_ms(lambda: pillow_fn(img, *a, **dict(kwargs)), calls)
        total_t += ms_t
        total_p += ms_p
        rows.append([op.name, f"{ms_p:.3f}", f"{ms_t:.3f}", f"{ms_p / ms_t:.2f}"])
    n = len(ra.ops)
    rows.append(["mean over the ops", f"{total_p / n:.3f}", f"{total_t / n:.3f}", f"{total_p / total_t:.2f}"])
    print(table(["op (ms per call)", "timm (Pillow)", "rsb (tensor)", "speed-up"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
