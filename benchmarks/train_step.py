#!/usr/bin/env python
"""Training-step throughput (images/s) with synthetic in-memory data: rsb's loop against a plain loop built from
timm's own parts, same model, batch, precision and memory format, alternating repeats in one process.

  python benchmarks/train_step.py             # resnet10t at 64 px, batch 64, 8 rounds of 6 steps each
  python benchmarks/train_step.py --quick     # 4 rounds of 3 steps (under a minute on 2 cores)
  python benchmarks/train_step.py --amp       # both under bf16 autocast (default: both float32)

rsb:  rsb.training.engine.train_one_epoch with rsb.data.batch.DeviceBatch (uint8 -> float, normalise, channels_last,
      timm Mixup/CutMix in batch mode), rsb.training.loss.ThresholdedBCE(0.2), rsb.training.optim.create_optimizer (timm Lamb,
      max_grad_norm 1.0, no decay on 1-d params) and rsb.training.optim.WarmupCosine, exactly as rsb.training.trainer wires them.
timm: the loop of timm's train.py reduced to its parts: the prefetcher's normalisation (float, sub mean, div
      std), timm Mixup (same alphas), channels_last, model, timm BinaryCrossEntropy(target_threshold=0.2,
      smoothing=0), backward, timm Lamb from create_optimizer_v2 (same weight-decay grouping and clipping),
      zero_grad, timm CosineLRScheduler.step_update; no per-step .item().
Both get the same uint8 batches (A2's mixup 0.1 / cutmix 1.0, 1000 classes); both models start from the same
weights. Each round runs rsb then timm (the order alternates every round) for the same number of steps; the
figures per side are total images / total seconds over all rounds (after one warm-up round each) and the
median round; the headline ratio is the median of the paired per-round ratios (robust to other load). The first step's
losses of the two loops (same weights, same batch, same Mixup draw) are printed as a check that they compute the
same thing.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine_header, table

NUM_CLASSES = 1000
MIXUP, CUTMIX = 0.1, 1.0      # A2
LR, WD = 5e-3, 0.02


def make_batches(n: int, batch: int, size: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, generator=g),
             torch.randint(0, NUM_CLASSES, (batch,), generator=g), 0) for _ in range(n)]


class Ours:
    name = "rsb"

    def __init__(self, model, total_steps: int, amp, device=torch.device("cpu")):
        from rsb.config.schema import AugConfig, OptimConfig, SchedConfig
        from rsb.data.batch import DeviceBatch
        from rsb.training.loss import ThresholdedBCE
        from rsb.training.optim import WarmupCosine, create_optimizer
        self.model, self.amp, self.step = model, amp, 0
        self.device = device  # as rsb.training.trainer wires it: DeviceBatch on the device, channels_last
        aug = AugConfig(mixup_alpha=MIXUP, cutmix_alpha=CUTMIX)
        self.prep = DeviceBatch(self.device, True, aug, NUM_CLASSES)
        self.loss = ThresholdedBCE(NUM_CLASSES, 0.2)
        self.opt = create_optimizer(model, OptimConfig(lr=LR, weight_decay=WD), LR)
        self.sched = WarmupCosine(SchedConfig(), LR, total_steps, max(1, total_steps // 10))

    def run(self, batches, steps=None) -> float:
        from rsb.training.engine import train_one_epoch
        stats = train_one_epoch(self.model, iter(batches), self.prep, self.loss, self.opt, self.sched,
                                device=self.device, first_step=self.step,
                                steps=steps if steps is not None else len(batches), amp_dtype=self.amp,
                                clip_grad=None)  # Lamb clips itself, as rsb.training.trainer sets it
        self.step += stats.steps
        return stats.loss


class Reference:
    name = "timm"

    def __init__(self, model, total_steps: int, amp, device=torch.device("cpu")):
        from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, Mixup
        from timm.loss import BinaryCrossEntropy
        from timm.optim import create_optimizer_v2
        from timm.scheduler import CosineLRScheduler
        self.model, self.amp, self.updates, self.device = model, amp, 0, device
        self.mean = torch.tensor([255 * m for m in IMAGENET_DEFAULT_MEAN], device=device).view(1, 3, 1, 1)
        self.std = torch.tensor([255 * s for s in IMAGENET_DEFAULT_STD], device=device).view(1, 3, 1, 1)
        self.mixup = Mixup(mixup_alpha=MIXUP, cutmix_alpha=CUTMIX, prob=1.0, switch_prob=0.5, mode="batch",
                           label_smoothing=0.0, num_classes=NUM_CLASSES)
        self.loss = BinaryCrossEntropy(smoothing=0.0, target_threshold=0.2)
        self.opt = create_optimizer_v2(model, "lamb", lr=LR, weight_decay=WD)
        self.sched = CosineLRScheduler(self.opt, t_initial=total_steps, lr_min=1e-6, warmup_t=max(1, total_steps // 10),
                                       warmup_lr_init=1e-6, t_in_epochs=False)

    def run(self, batches, normalized: bool = False) -> float:
        """timm's train.py loop; `normalized`: batches come from timm's PrefetchLoader (float, on the device)."""
        self.model.train()
        last = None
        for images, labels, *_ in batches:
            if normalized:
                x = images
            else:  # timm's PrefetchLoader's work: to the device, float, normalise
                images = images.to(self.device, non_blocking=True)
                labels = labels.to(self.device, non_blocking=True)
                x = images.float().sub_(self.mean).div_(self.std)
            x, y = self.mixup(x, labels)
            x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(self.device.type, dtype=self.amp or torch.bfloat16, enabled=self.amp is not None):
                out = self.model(x)
            loss = self.loss(out, y)
            loss.backward()
            self.opt.step()
            self.opt.zero_grad(set_to_none=True)
            self.updates += 1
            self.sched.step_update(num_updates=self.updates)
            last = loss
        return float(last.detach()) if last is not None else float("nan")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="resnet10t")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=6, help="steps per round and side")
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--amp", action="store_true", help="bf16 autocast for both loops")
    p.add_argument("--quick", action="store_true", help="3 steps x 4 rounds")
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.rounds = 3, 4
    import timm
    amp = torch.bfloat16 if args.amp else None
    torch.manual_seed(0)
    base = timm.create_model(args.model, num_classes=NUM_CLASSES)
    models = {}
    for side in ("rsb", "timm"):
        m = timm.create_model(args.model, num_classes=NUM_CLASSES)
        m.load_state_dict(base.state_dict())
        models[side] = m.to(memory_format=torch.channels_last)
    total = args.steps * (args.rounds + 2)
    loops = {"rsb": Ours(models["rsb"], total, amp), "timm": Reference(models["timm"], total, amp)}
    batches = make_batches(args.steps, args.batch, args.size)

    # Check: the first step computes the same loss (same weights, same batch, same Mixup draw).
    first = {}
    for side, loop in loops.items():
        np.random.seed(123)  # timm Mixup draws lambda and the mode from numpy's global generator
        first[side] = loop.run(batches[:1])
    print(machine_header(f"model {args.model} at {args.size} px, batch {args.batch}, channels_last, "
                         f"{'bf16 autocast' if amp else 'float32'}, {args.steps} steps x {args.rounds} rounds "
                         f"per side{' (--quick)' if args.quick else ''}"), flush=True)
    print(f"first-step loss: rsb {first['rsb']:.6f}, timm {first['timm']:.6f}", flush=True)

    for loop in loops.values():  # warm-up round each
        loop.run(batches)
    seconds = {"rsb": 0.0, "timm": 0.0}
    per_round = {"rsb": [], "timm": []}
    for r in range(args.rounds):
        order = ("rsb", "timm") if r % 2 == 0 else ("timm", "rsb")
        for side in order:
            t = time.perf_counter()
            loops[side].run(batches)
            dt = time.perf_counter() - t
            seconds[side] += dt
            per_round[side].append(args.steps * args.batch / dt)
    n = args.steps * args.batch * args.rounds
    ours, theirs = n / seconds["rsb"], n / seconds["timm"]
    med = {k: sorted(v)[len(v) // 2] for k, v in per_round.items()}
    ratios = sorted(a / b for a, b in zip(per_round["rsb"], per_round["timm"]))
    print()
    print(table(["training loop", "images/s (total)", "images/s (median round)", "rsb / timm"],
                [["timm parts (reference)", f"{theirs:.1f}", f"{med['timm']:.1f}", "1.00"],
                 ["rsb train_one_epoch", f"{ours:.1f}", f"{med['rsb']:.1f}", f"{ours / theirs:.2f} (totals)"],
                 ["paired per-round ratio", "", "", (f"median {ratios[len(ratios) // 2]:.2f} "
                                                     f"(range {ratios[0]:.2f}-{ratios[-1]:.2f})")]]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
