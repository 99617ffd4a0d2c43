"""The synthetic and compiled parts: ResNet training steps on synthetic uint8 batches, rsb's loop against the
loop of timm's parts (both from benchmarks/train_step.py, on the check's device), alternating rounds, every
timing between synchronisations; with model.compile=true, one compiled model serves both loops."""
from __future__ import annotations

import statistics
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .worker import Ctx

TOTAL_STEPS = 10 ** 6   # the loops' schedule length: far beyond what is timed, so the LR stays in warm-up


def new_model(ctx: Ctx):
    """The check's model as rsb's trainer makes it: rsb.models.factory, on the device, channels_last; seeded so
    both sides of every row start from the same weights."""
    import torch

    from rsb.config.schema import ModelConfig
    from rsb.models.factory import create_model, prepare_model
    torch.manual_seed(0)
    return prepare_model(create_model(ModelConfig(name=ctx.sizes.model, num_classes=1000)), ctx.device,
                         channels_last=True)


def loops(ctx: Ctx, model):
    """rsb's loop and the timm reference of benchmarks/train_step.py on the check's device and precision."""
    from benchmarks import train_step
    return (train_step.Ours(model, TOTAL_STEPS, ctx.amp, ctx.device),
            train_step.Reference(model, TOTAL_STEPS, ctx.amp, ctx.device))


def first_steps(base, ours, ref, batch) -> tuple[float, float, float, float]:
    """(loss rsb, loss timm, seconds rsb, seconds timm) of each loop's first step from the same weights, batch
    and Mixup draw: both compute the same loss. Under torch.compile this first call compiles. The weights are
    put back after each."""
    import numpy as np
    state = {k: v.detach().clone() for k, v in base.state_dict().items()}
    out = []
    for loop in (ours, ref):
        t = time.perf_counter()
        np.random.seed(123)
        loss = loop.run(batch)
        out.append((loss, time.perf_counter() - t))
        base.load_state_dict(state)
    (loss_rsb, first_rsb), (loss_timm, first_timm) = out
    return loss_rsb, loss_timm, first_rsb, first_timm


def timed_rounds(ctx: Ctx, ours, ref, batches) -> tuple[dict, list[float]]:
    """(images/s per side over all rounds, sorted per-round ratios rsb / timm); the order alternates."""
    s = ctx.sizes
    seconds = {"rsb": 0.0, "timm": 0.0}
    per_round = {"rsb": [], "timm": []}
    for r in range(s.rounds):
        for side in (("rsb", "timm") if r % 2 == 0 else ("timm", "rsb")):
            loop = ours if side == "rsb" else ref
            ctx.sync()
            t = time.perf_counter()
            loop.run(batches)
            ctx.sync()
            dt = time.perf_counter() - t
            seconds[side] += dt
            per_round[side].append(s.steps * s.batch / dt)
    n = s.steps * s.batch * s.rounds
    ips = {k: n / v for k, v in seconds.items()}
    return ips, sorted(a / b for a, b in zip(per_round["rsb"], per_round["timm"]))


def train_pair(ctx: Ctx, size: int, compiled: bool) -> dict:
    import torch

    from benchmarks import train_step
    s = ctx.sizes
    base = new_model(ctx)
    model = base
    if compiled:
        torch._dynamo.reset()  # one resolution per compile, as one run has
        model = torch.compile(base, backend=s.backend)  # rsb.training.trainer: torch.compile(self.model)
    ours, ref = loops(ctx, model)
    pool = train_step.make_batches(4, s.batch, size)
    if ctx.cuda:
        pool = [(x.pin_memory(), y.pin_memory(), bad) for x, y, bad in pool]
    batches = [pool[i % len(pool)] for i in range(s.steps)]
    loss_rsb, loss_timm, first_rsb, first_timm = first_steps(base, ours, ref, pool[:1])

    ours.run(batches[:s.warm])   # warm-up: cudnn.benchmark's choice, the allocator's pools, Lamb's state
    ref.run(batches[:s.warm])
    ctx.sync()
    ips, ratios = timed_rounds(ctx, ours, ref, batches)
    ctx.synthetic[f"{'compiled' if compiled else 'train'}_{size}"] = ips["rsb"]
    detail = (f"first-step loss rsb {loss_rsb:.5f}, timm {loss_timm:.5f}; {s.steps} steps x {s.rounds} rounds "
              f"per side after {s.warm} warm-up")
    if compiled:
        detail += f"; first call (compile) {first_rsb:.0f} s, timm's first call {first_timm:.1f} s"
    return {"rsb": f"{ips['rsb']:.0f} img/s", "timm": f"{ips['timm']:.0f} img/s",
            "ratio": f"{ips['rsb'] / ips['timm']:.2f} (per round {statistics.median(ratios):.2f}, "
                     f"{ratios[0]:.2f}-{ratios[-1]:.2f})",
            "detail": detail, "values": {"rsb": ips["rsb"], "timm": ips["timm"]}}


def part_synthetic(ctx: Ctx) -> None:
    s = ctx.sizes
    ctx.row("train_a2", lambda: train_pair(ctx, s.a2, compiled=False))
    ctx.row("train_a3", lambda: train_pair(ctx, s.a3, compiled=False))


def part_compiled_a2(ctx: Ctx) -> None:
    ctx.row("compiled_a2", lambda: train_pair(ctx, ctx.sizes.a2, compiled=True))


def part_compiled_a3(ctx: Ctx) -> None:
    ctx.row("compiled_a3", lambda: train_pair(ctx, ctx.sizes.a3, compiled=True))
