"""The loader part: the training step fed from the JPEGs, rsb's TrainLoader against timm's create_loader, and
the share of the time the compute waits for data."""
from __future__ import annotations

import gc
import time
from typing import TYPE_CHECKING

from .jpegs import jpegs_ready
from .measure_train import loops, new_model
from .plan import RECIPES, loader_steps

if TYPE_CHECKING:
    from .worker import Ctx


class WaitMeter:
    """The share of a window the compute waits for data. On CUDA: an event on the compute stream before each
    fetch and one after it; the stream reaches the first when it has done all work queued before the fetch and
    the second when the host has queued more, so their elapsed time is the GPU's idle time for that fetch (zero
    when the host was ahead). On the CPU the compute is synchronous: the host's time inside the fetch."""

    def __init__(self, cuda: bool):
        self.cuda, self.on, self.pairs, self.host = cuda, False, [], 0.0

    def batches(self, iterator, limit: int):
        import torch
        for _ in range(limit):
            a = None
            if self.on and self.cuda:
                a = torch.cuda.Event(enable_timing=True)
                a.record()
            t = time.perf_counter()
            try:
                batch = next(iterator)
            except StopIteration:
                return
            if self.on:
                self.host += time.perf_counter() - t
                if self.cuda:
                    b = torch.cuda.Event(enable_timing=True)
                    b.record()
                    self.pairs.append((a, b))
            yield batch

    def start(self) -> None:
        import torch
        self.on, self.pairs, self.host = True, [], 0.0
        if self.cuda:
            torch.cuda.synchronize()
            self.begin = torch.cuda.Event(enable_timing=True)
            self.begin.record()
        self.t0 = time.perf_counter()

    def stop(self) -> tuple[float, float]:
        """(seconds of the window, fraction of it spent waiting for data)."""
        import torch
        if self.cuda:
            end = torch.cuda.Event(enable_timing=True)
            end.record()
            torch.cuda.synchronize()
        wall = time.perf_counter() - self.t0
        self.on = False
        if self.cuda:
            waited = sum(a.elapsed_time(b) for a, b in self.pairs) / 1e3
            return wall, waited / max(self.begin.elapsed_time(end) / 1e3, 1e-9)
        return wall, self.host / max(wall, 1e-9)


def stop_workers(loader) -> None:
    """Shut a DataLoader's persistent workers down now rather than at garbage collection."""
    it = getattr(loader, "_iterator", None)
    if it is not None and hasattr(it, "_shutdown_workers"):
        it._shutdown_workers()
    if hasattr(loader, "_iterator"):
        loader._iterator = None


def timed(ctx: Ctx, start_epoch, train) -> tuple[float, float, float]:
    """(images/s, fraction of time waiting for data, start-up s): `warm` steps from the start of an epoch, then
    `measured` steps timed; `train(batches, n)` runs n steps."""
    warm, measured = loader_steps(ctx.workers)
    meter = WaitMeter(ctx.cuda)
    t = time.perf_counter()
    it = start_epoch()
    train(meter.batches(it, warm), warm)
    ctx.sync()
    start = time.perf_counter() - t
    meter.start()
    train(meter.batches(it, measured), measured)
    wall, wait = meter.stop()
    return measured * ctx.sizes.batch / wall, wait, start


def rsb_side(ctx: Ctx, recipe: str, size: int, ours) -> tuple[float, float, float]:
    """rsb's TrainLoader as the recipe sets it up (A2: repeated augmentation 3), the batch and size the check's."""
    from rsb.config.load import load_recipe
    from rsb.data.folder import ImageFolderIndex
    from rsb.data.loader import TrainLoader, train_dataset
    _, ra, repeats = RECIPES[recipe]
    cfg = load_recipe(recipe)
    cfg.train.batch_per_device = ctx.sizes.batch
    cfg.data.train_size = size
    recipe_aug = (cfg.aug.repeated_aug, cfg.aug.rand_augment)
    assert recipe_aug == (repeats, ra), recipe_aug  # timm's side is given the same RandAugment
    index = ImageFolderIndex(ctx.jpegs / "train", use_cache=False)
    loader = TrainLoader(cfg, train_dataset(cfg, index), 0, 1, ctx.workers, pin_memory=ctx.cuda)
    result = timed(ctx, lambda: loader.epoch(0), lambda b, n: ours.run(b, steps=n))
    stop_workers(loader.loader)
    return result


def timm_side(ctx: Ctx, recipe: str, size: int, ref) -> tuple[float, float, float]:
    """timm's create_loader with its prefetcher (copy and normalise on a side stream), the same augmentation
    but no repeated augmentation, which timm's loader refuses in one process."""
    from timm.data import ImageDataset, create_loader
    _, ra, _ = RECIPES[recipe]
    loader = create_loader(ImageDataset(str(ctx.jpegs / "train")), input_size=(3, size, size),
                           batch_size=ctx.sizes.batch, is_training=True, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3),
                           hflip=0.5, color_jitter=0.0, auto_augment=ra, interpolation="bicubic", re_prob=0.0,
                           num_workers=ctx.workers, pin_memory=ctx.cuda, use_prefetcher=True, device=ctx.device)
    result = timed(ctx, lambda: iter(loader), lambda b, n: ref.run(b, normalized=True))
    stop_workers(getattr(loader, "loader", loader))
    return result


def loader_pair(ctx: Ctx, recipe: str) -> dict:
    jpegs_ready(ctx)
    s = ctx.sizes
    repeats = RECIPES[recipe][2]
    size = s.a2 if recipe == "a2" else s.a3
    warm, measured = loader_steps(ctx.workers)
    ours, ref = loops(ctx, new_model(ctx))
    results = {}
    sides = (("rsb", rsb_side, ours), ("timm", timm_side, ref))
    for name, side, loop in (sides if recipe == "a2" else sides[::-1]):
        results[name] = side(ctx, recipe, size, loop)
        gc.collect()
    (r_ips, r_wait, r_start), (t_ips, t_wait, t_start) = results["rsb"], results["timm"]
    ceiling = ctx.synthetic.get(f"train_{size}")
    detail = (f"{measured} steps measured after {warm} warm-up; first {warm} steps incl. worker start "
              f"{r_start:.1f} s rsb, {t_start:.1f} s timm; repeated augmentation "
              + (f"{repeats} in rsb, off in timm (its loader refuses it in one process)" if repeats > 1 else "off"))
    if ceiling:
        detail += f"; rsb without a loader (synthetic row) {ceiling:.0f} img/s"
    return {"rsb": f"{r_ips:.0f} img/s", "timm": f"{t_ips:.0f} img/s", "ratio": f"{r_ips / t_ips:.2f}",
            "wait": f"{100 * r_wait:.0f}% / {100 * t_wait:.0f}%", "detail": detail,
            "values": {"rsb": r_ips, "timm": t_ips, "rsb_wait": r_wait, "timm_wait": t_wait}}


def part_loader(ctx: Ctx) -> None:
    ctx.row("loader_a2", lambda: loader_pair(ctx, "a2"))
    ctx.row("loader_a3", lambda: loader_pair(ctx, "a3"))
