#!/usr/bin/env python
"""The GPU check (issue 17): one command on a machine with one CUDA GPU (and about 16 cores) that runs in under
8 minutes, prints one table and appends it, with the date, the GPU, its driver, torch/timm versions, the CPU
capability and the command, to benchmarks/RESULTS.md under "## GPU check".

  python benchmarks/gpu_check.py                       # on the GPU machine, from the repository root, after
                                                       # the README's set-up (pip install -e ".[test]")
  python benchmarks/gpu_check.py --only loader,validate    # some parts again
  python benchmarks/gpu_check.py --cpu-dry-run --results /tmp/gpu_check.md   # the same script at tiny sizes on
                                                       # a CPU (CUDA-only rows "skipped (no CUDA)")

Parts, in this order, each with its own time budget (a part that fails or runs out of time is reported as failed
with its one-line error, and the others still run; the whole run stops starting parts at 7.5 minutes):

  tests      pytest -m gpu tests/e2e/test_gpu.py: bf16 and float16 training on CUDA through rsb's trainer (float16
             with a GradScaler, bf16 without), channels_last kept through the model, the evaluator's batch
             halving on a real CUDA out-of-memory, a checkpoint saved on the GPU resumed by a CPU-only process.
  jpegs      writes ImageNet-sized JPEGs (500x375, quality 90, photo-like texture; benchmarks/input_pipeline.py's
             generator) into a temporary folder in the ImageNet layout (train/<wnid>/, val/<wnid>/; hard links
             multiply 512 files into the epoch lengths needed). No network.
  synthetic  ResNet-50 training throughput on synthetic uint8 batches (pinned host memory), A2 at 224 and A3 at
             160, batch 256, bf16 autocast, channels_last: rsb's loop (rsb.training.engine.train_one_epoch + DeviceBatch +
             ThresholdedBCE + Lamb via rsb.training.optim + WarmupCosine) against the loop of timm's parts, both from
             benchmarks/train_step.py moved to the GPU. Warm-up steps excluded; rounds alternate the two; every
             timing is between torch.cuda.synchronize() calls; cudnn.benchmark on (as rsb sets it on CUDA).
  loader     the same training step fed from the JPEGs: rsb.data.loader.TrainLoader (A2: repeated augmentation 3)
             against timm's create_loader (its PrefetchLoader: copy and normalise on a side stream; no repeated
             augmentation, which timm's loader refuses in one process), workers = usable cores, pinned memory
             for both. images/s over 2 x workers steps after a warm-up of `workers` steps (the workers' first
             batches), and the fraction of that time the GPU waits for data: CUDA events recorded on the compute
             stream before and after each fetch; the GPU idles from when it finished the work queued before the
             fetch until the work queued after it, which the event pairs time exactly. (rsb copies the batch to
             the GPU on the compute stream after the fetch, so its copy counts as step time; timm's prefetcher
             copies the next batch on its side stream inside the fetch, so timm's copy counts as waiting.)
  validate   validate.py's scoring path at 224 (rsb.evaluation.scoring.score_set: eval_loader + DeviceBatch +
             channels_last, validate.py's CUDA batch of 256 and default workers) in float32 and in bf16 (--amp),
             against timm's eval pipeline (create_loader with its prefetcher, channels_last, the accuracy read
             every batch as timm's validate.py does); each figure from the call to the last result, loader start-
             up included, as validate.py scores a set.
  compiled   the synthetic row again with model.compile=true (torch.compile(model), as rsb.training.trainer does; one
             compiled model serves both loops, compiled once per resolution; compile time reported).

--cpu-dry-run runs the same code at tiny sizes on the CPU (resnet10t at 48 / 32 px, batch 8, a few steps, 16 small
JPEGs, workers = usable cores, float32, torch.compile with the "eager" backend); rows that need CUDA read
"skipped (no CUDA)". It writes its table only where --results says (never to benchmarks/RESULTS.md by default).
"""
from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

RESULTS_MD = HERE / "RESULTS.md"
USAGE = ("GPU check: on the GPU machine, from the repository root after the README's set-up "
         "(python3 -m venv .venv && . .venv/bin/activate && pip install -e \".[test]\"), run:  "
         "python benchmarks/gpu_check.py")
TOTAL_BUDGET_S = 450   # no part starts after this (7.5 min); with the kill grace the run stays under 8 minutes
KILL_GRACE_S = 15      # a part's process is killed this long after its budget if its own alarm did not stop it


# ---- plan: parts, their rows and budgets ------------------------------------------------------------------------

@dataclass(frozen=True)
class Part:
    name: str
    rows: tuple[str, ...]
    budget: int      # seconds at most
    reserve: int     # seconds it needs to be worth starting (kept free for it by the parts before)


PARTS = (
    Part("tests", ("tests",), 110, 30),
    Part("jpegs", (), 40, 10),
    Part("synthetic", ("train_a2", "train_a3"), 70, 30),
    Part("loader", ("loader_a2", "loader_a3"), 100, 40),
    Part("validate", ("val_fp32", "val_bf16"), 60, 25),
    Part("compiled_a2", ("compiled_a2",), 200, 60),
    Part("compiled_a3", ("compiled_a3",), 200, 50),
)
PART_BY_NAME = {p.name: p for p in PARTS}

LABELS = {
    "tests": "GPU tests (pytest -m gpu tests/e2e/test_gpu.py)",
    "train_a2": "training step, synthetic data, A2",
    "train_a3": "training step, synthetic data, A3",
    "loader_a2": "training from JPEGs, A2 (rsb TrainLoader / timm create_loader)",
    "loader_a3": "training from JPEGs, A3 (rsb TrainLoader / timm create_loader)",
    "val_fp32": "validate.py throughput, float32",
    "val_bf16": "validate.py throughput, bf16 (--amp)",
    "compiled_a2": "training step, synthetic data, A2, model.compile=true",
    "compiled_a3": "training step, synthetic data, A3, model.compile=true",
}
ROW_ORDER = ("tests", "train_a2", "train_a3", "compiled_a2", "compiled_a3", "loader_a2", "loader_a3",
             "val_fp32", "val_bf16")
CUDA_ONLY_ROWS = ("tests", "val_bf16")  # in a dry run: the GPU tests skip, and bf16 scoring needs the GPU


@dataclass(frozen=True)
class Sizes:
    model: str
    a2: int                  # A2's train resolution
    a3: int                  # A3's train resolution
    eval_size: int
    batch: int
    warm: int                # synthetic warm-up steps per side
    steps: int               # synthetic steps per side and round
    rounds: int
    jpeg_wh: tuple[int, int]
    unique: int              # JPEG files written; the rest are hard links
    val_copies: int
    eval_batch: int
    amp: bool                # bf16 autocast (the GPU); the dry run computes in float32
    pinned: bool             # pinned host memory for the loaders' batches (on CUDA)
    backend: str             # torch.compile backend


REAL = Sizes("resnet50", 224, 160, 224, batch=256, warm=5, steps=10, rounds=4, jpeg_wh=(500, 375), unique=512,
             val_copies=12, eval_batch=256, amp=True, pinned=True, backend="inductor")
DRY = Sizes("resnet10t", 48, 32, 48, batch=8, warm=1, steps=3, rounds=2, jpeg_wh=(120, 90), unique=16,
            val_copies=4, eval_batch=16, amp=False, pinned=False, backend="eager")
RECIPES = {"a2": ("A2", "rand-m7-mstd0.5-inc1", 3), "a3": ("A3", "rand-m6-mstd0.5-inc1", 1)}  # RandAugment, repeats


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def loader_steps(workers: int) -> tuple[int, int]:
    """(warm-up, measured) steps of the JPEG rows: one round of the workers' first batches, then two rounds."""
    return max(2, workers), max(4, 2 * workers)


def model_label(name: str) -> str:
    return "ResNet-50" if name == "resnet50" else name


def planned_setting(key: str, s: Sizes, workers: int) -> str:
    """What a row measures, also for rows that never started."""
    prec = "bf16 autocast" if s.amp else "float32"
    m = model_label(s.model)
    if key == "tests":
        return "bf16/fp16 steps, channels_last, OOM halving, GPU->CPU resume"
    if key.startswith(("train_", "compiled_")):
        size = s.a2 if key.endswith("a2") else s.a3
        how = f"torch.compile ({s.backend})" if key.startswith("compiled") else "eager"
        return f"{m} {size} px, batch {s.batch}, {prec}, channels_last, {how}"
    if key.startswith("loader_"):
        size = s.a2 if key.endswith("a2") else s.a3
        w, h = s.jpeg_wh
        pinned = ", pinned" if s.pinned else ""
        return f"{m} {size} px, batch {s.batch}, {prec}, {workers} workers{pinned}, {w}x{h} JPEGs"
    if key.startswith("val_"):
        from_weights = "bf16 autocast" if key == "val_bf16" else "float32"
        return f"{m} {s.eval_size} px, batch {s.eval_batch}, {from_weights}, {s.unique * s.val_copies} JPEGs"
    return ""


def effective_budget(part: Part, later: list[Part], deadline: float) -> int:
    """The part's budget, cut so that the parts after it keep their reserves before the deadline."""
    left = deadline - time.time() - sum(p.reserve for p in later)
    return int(min(part.budget, left))


def one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:220]}" if text else type(e).__name__


# ---- the worker process: runs parts, one JSON line per event ------------------------------------------------------

class PartTimeout(BaseException):
    """Raised by SIGALRM when a part's budget is spent (BaseException: library code does not swallow it)."""


class Ctx:
    def __init__(self, args, emit):
        import torch
        self.args, self.emit = args, emit
        self.sizes = DRY if args.cpu_dry_run else REAL
        self.cuda = torch.cuda.is_available() and not args.cpu_dry_run
        self.device = torch.device("cuda", 0) if self.cuda else torch.device("cpu")
        self.work = Path(args.work)
        self.jpegs = self.work / "jpegs"
        self.workers = usable_cores()
        self.done: set[str] = set()
        self.running: str | None = None         # the row in progress
        self.synthetic: dict[str, float] = {}   # rsb images/s of the synthetic rows, for the loader rows
        if self.cuda:
            torch.backends.cudnn.benchmark = True  # as rsb.training.trainer and validate.py set it on CUDA

    def row(self, key: str, fn) -> None:
        """Run one row; an exception becomes the row's one-line failure, and the part goes on."""
        setting = planned_setting(key, self.sizes, self.workers)
        self.running = key
        try:
            fields = fn()
            self.emit(type="row", key=key, status="ok", setting=setting, **fields)
            self.done.add(key)
        except Exception as e:
            self.emit(type="row", key=key, status=f"failed: {one_line(e)}", setting=setting,
                      trace=traceback_tail(e))
            self.done.add(key)
        finally:
            self.running = None
            cleanup(self)

    def skip(self, key: str, why: str) -> None:
        self.emit(type="row", key=key, status=why, setting=planned_setting(key, self.sizes, self.workers))
        self.done.add(key)

    def sync(self) -> None:
        import torch
        if self.cuda:
            torch.cuda.synchronize()


def traceback_tail(e: BaseException, n: int = 8) -> list[str]:
    """Print the traceback to this worker's log; its last lines, for the parent to show."""
    import traceback
    lines = traceback.format_exception(type(e), e, e.__traceback__)
    sys.stderr.write("".join(lines))
    sys.stderr.flush()
    return "".join(lines).rstrip().splitlines()[-n:]


def cleanup(ctx: Ctx) -> None:
    import torch
    gc.collect()
    if ctx.cuda:
        torch.cuda.empty_cache()


def worker_main(args) -> int:
    out = open(args.jsonl, "a", buffering=1)

    def emit(**rec):
        rec["t"] = time.time()
        out.write(json.dumps(rec) + "\n")
        out.flush()

    import timm
    import torch
    ctx = Ctx(args, emit)
    env = {"type": "env", "torch": torch.__version__, "timm": timm.__version__, "cuda": ctx.cuda,
           "capability": torch.backends.cpu.get_cpu_capability(), "cores": ctx.workers,
           "python": platform.python_version()}
    if ctx.cuda:
        props = torch.cuda.get_device_properties(0)
        env.update(gpu=torch.cuda.get_device_name(0), gpu_memory_gib=round(props.total_memory / 2**30, 1),
                   cuda_runtime=torch.version.cuda, cudnn=torch.backends.cudnn.version(),
                   bf16=torch.cuda.is_bf16_supported(including_emulation=False))
    emit(**env)

    def on_alarm(signum, frame):
        raise PartTimeout()
    signal.signal(signal.SIGALRM, on_alarm)
    names = [n for n in args.parts.split(",") if n]
    for i, name in enumerate(names):
        part = PART_BY_NAME[name]
        budget = effective_budget(part, [PART_BY_NAME[n] for n in names[i + 1:]], args.deadline)
        if budget < part.reserve:
            for key in part.rows:
                ctx.skip(key, f"failed: not run, the check's time budget ({TOTAL_BUDGET_S} s) was spent")
            emit(type="end", part=name)
            continue
        emit(type="start", part=name, budget=budget)
        print(f"--- part {name}, budget {budget} s", file=sys.stderr, flush=True)
        signal.alarm(max(1, budget))
        try:
            PART_FUNCS[name](ctx)
        except PartTimeout:
            running = ctx.running or next((k for k in part.rows if k not in ctx.done), None)
            for key in part.rows:
                if key not in ctx.done:
                    status = (f"failed: timed out after the part's budget of {budget} s" if key == running else
                              f"failed: not run, the part's budget of {budget} s was spent")
                    emit(type="row", key=key, status=status, setting=planned_setting(key, ctx.sizes, ctx.workers))
                    ctx.done.add(key)
        except Exception as e:
            trace = traceback_tail(e)
            for key in part.rows:
                if key not in ctx.done:
                    emit(type="row", key=key, status=f"failed: {one_line(e)}", trace=trace,
                         setting=planned_setting(key, ctx.sizes, ctx.workers))
                    ctx.done.add(key)
        finally:
            signal.alarm(0)
        cleanup(ctx)
        emit(type="end", part=name)
    out.close()
    return 0


# ---- part: JPEGs ----------------------------------------------------------------------------------------------------

def _write_jpeg(job) -> int:
    path, seed, w, h = job
    import numpy as np
    from PIL import Image

    from input_pipeline import photo_like
    Image.fromarray(photo_like(np.random.default_rng(seed), w, h)).save(path, quality=90)
    return os.path.getsize(path)


def _link(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def train_copies(s: Sizes, workers: int) -> int:
    """Copies of each file in train/ so one epoch of either recipe lasts the warm-up and the measured steps."""
    warm, measured = loader_steps(workers)
    need = (warm + measured + max(r for _, _, r in RECIPES.values())) * s.batch  # + a batch per sampler lane
    return -(-need // s.unique)


def part_jpegs(ctx: Ctx) -> None:
    import multiprocessing
    s = ctx.sizes
    w, h = s.jpeg_wh
    classes = 8
    uniq = ctx.jpegs / "unique"
    jobs = []
    for i in range(s.unique):
        folder = uniq / f"n{i % classes:08d}"
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
            f"{s.unique * s.val_copies} entries (hard links), {classes} classes, ImageNet layout")
    (ctx.jpegs / "READY").write_text(info)
    ctx.emit(type="info", text=info)


def jpegs_ready(ctx: Ctx) -> None:
    if not (ctx.jpegs / "READY").is_file():
        raise RuntimeError("no JPEGs: the jpegs part did not finish")


# ---- the two training loops on any device (benchmarks/train_step.py's) -----------------------------------------

def loops():
    """rsb's loop and the timm reference of benchmarks/train_step.py (both take a device)."""
    import train_step
    return train_step.Ours, train_step.Reference


def new_model(ctx: Ctx):
    import timm
    import torch
    torch.manual_seed(0)
    return timm.create_model(ctx.sizes.model, num_classes=1000).to(ctx.device).to(memory_format=torch.channels_last)


def amp_dtype(ctx: Ctx):
    import torch
    return torch.bfloat16 if ctx.sizes.amp else None


# ---- parts: synthetic and compiled training steps -------------------------------------------------------------------

def train_pair(ctx: Ctx, size: int, compiled: bool) -> dict:
    import numpy as np
    import torch

    import train_step
    s = ctx.sizes
    Ours, Reference = loops()
    base = new_model(ctx)
    model = base
    if compiled:
        torch._dynamo.reset()  # one resolution per compile, as one run has
        model = torch.compile(base, backend=s.backend)  # rsb.training.trainer: torch.compile(self.model)
    amp = amp_dtype(ctx)
    total = 10 ** 6
    ours, ref = Ours(model, total, amp, ctx.device), Reference(model, total, amp, ctx.device)
    pool = train_step.make_batches(4, s.batch, size)
    if ctx.cuda:
        pool = [(x.pin_memory(), y.pin_memory(), bad) for x, y, bad in pool]
    batches = [pool[i % len(pool)] for i in range(s.steps)]

    # The first step of each from the same weights, batch and Mixup draw: both compute the same loss. Under
    # torch.compile this first call compiles.
    state = {k: v.detach().clone() for k, v in base.state_dict().items()}
    t = time.perf_counter()
    np.random.seed(123)
    loss_rsb = ours.run(pool[:1])
    first_rsb = time.perf_counter() - t
    base.load_state_dict(state)
    t = time.perf_counter()
    np.random.seed(123)
    loss_timm = ref.run(pool[:1])
    first_timm = time.perf_counter() - t
    base.load_state_dict(state)
    del state

    ours.run(batches[:s.warm])   # warm-up: cudnn.benchmark's choice, the allocator's pools, Lamb's state
    ref.run(batches[:s.warm])
    ctx.sync()
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
    ratios = sorted(a / b for a, b in zip(per_round["rsb"], per_round["timm"]))
    key = f"{'compiled' if compiled else 'train'}_{size}"
    ctx.synthetic[key] = ips["rsb"]
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


# ---- part: training from JPEGs ---------------------------------------------------------------------------------------

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


def loader_pair(ctx: Ctx, recipe: str) -> dict:
    from timm.data import ImageDataset, create_loader

    from rsb.config.load import load_recipe
    from rsb.data.folder import ImageFolderIndex
    from rsb.data.loader import TrainLoader, train_dataset
    jpegs_ready(ctx)
    s = ctx.sizes
    _, ra, repeats = RECIPES[recipe]
    size = s.a2 if recipe == "a2" else s.a3
    root = ctx.jpegs / "train"
    workers = ctx.workers
    warm, measured = loader_steps(workers)
    Ours, Reference = loops()
    model = new_model(ctx)
    amp = amp_dtype(ctx)
    ours, ref = Ours(model, 10 ** 6, amp, ctx.device), Reference(model, 10 ** 6, amp, ctx.device)
    results = {}

    def timed(start_epoch, train):
        """(images/s, fraction of time waiting for data, start-up s): `warm` steps from the start of an epoch,
        then `measured` steps timed; `train(batches, n)` runs n steps."""
        meter = WaitMeter(ctx.cuda)
        t = time.perf_counter()
        it = start_epoch()
        train(meter.batches(it, warm), warm)
        ctx.sync()
        start = time.perf_counter() - t
        meter.start()
        train(meter.batches(it, measured), measured)
        wall, wait = meter.stop()
        return measured * s.batch / wall, wait, start

    def rsb_side():
        cfg = load_recipe(recipe)
        cfg.train.batch_per_device = s.batch
        cfg.data.train_size = size
        recipe_aug = (cfg.aug.repeated_aug, cfg.aug.rand_augment)
        assert recipe_aug == (repeats, ra), recipe_aug  # timm's side is given the same RandAugment
        loader = TrainLoader(cfg, train_dataset(cfg, ImageFolderIndex(root, use_cache=False)), 0, 1, workers,
                             pin_memory=ctx.cuda)
        results["rsb"] = timed(lambda: loader.epoch(0), lambda b, n: ours.run(b, steps=n))
        stop_workers(loader.loader)

    def timm_side():
        loader = create_loader(ImageDataset(str(root)), input_size=(3, size, size), batch_size=s.batch,
                               is_training=True, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), hflip=0.5,
                               color_jitter=0.0, auto_augment=ra, interpolation="bicubic", re_prob=0.0,
                               num_workers=workers, pin_memory=ctx.cuda, use_prefetcher=True, device=ctx.device)
        results["timm"] = timed(lambda: iter(loader), lambda b, n: ref.run(b, normalized=True))
        stop_workers(getattr(loader, "loader", loader))

    for side in ((rsb_side, timm_side) if recipe == "a2" else (timm_side, rsb_side)):
        side()
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


# ---- part: validate.py's throughput -----------------------------------------------------------------------------

def timm_eval(ctx: Ctx, model, root: Path, size: int, batch: int, workers: int, amp) -> float:
    """timm's evaluation pipeline (validate.py: create_dataset, create_loader with its prefetcher) feeding the
    channels_last model (timm's --channels-last); images/s from the first batch requested to the last result."""
    import torch
    from timm.data import create_dataset, create_loader
    loader = create_loader(create_dataset("", root=str(root)), input_size=(3, size, size), batch_size=batch,
                           is_training=False, use_prefetcher=True, interpolation="bicubic", crop_pct=0.95,
                           num_workers=workers, pin_memory=ctx.cuda, device=ctx.device, persistent_workers=False)
    t = time.perf_counter()
    n, correct = 0, 0
    with torch.no_grad():
        for x, y in loader:
            x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(ctx.device.type, dtype=amp or torch.bfloat16, enabled=amp is not None):
                out = model(x)
            correct += int((out.argmax(1) == y).sum())  # timm's validate.py reads its accuracy every batch
            n += len(y)
    ctx.sync()
    return n / (time.perf_counter() - t)


def val_pair(ctx: Ctx, model, use_amp: bool) -> dict:
    import torch

    from rsb.runtime import precision
    from rsb.data.folder import ImageFolderIndex
    from rsb.runtime.distributed import default_workers
    from rsb.evaluation import scoring
    from rsb.evaluation.checkpoints import EvalSettings
    from rsb.evaluation.sets import EvalSet
    jpegs_ready(ctx)
    s = ctx.sizes
    root = ctx.jpegs / "val"
    index = ImageFolderIndex(root, use_cache=False)
    eval_set = EvalSet("val", str(root), index, index.labels)
    prec = precision.choose(use_amp, "bfloat16", ctx.device)  # what validate.py picks for --amp (or not)
    if use_amp and prec.dtype is None:
        raise RuntimeError(prec.reason)
    amp = prec.dtype
    workers = default_workers()   # validate.py's default
    batch = s.eval_batch          # validate.py's default on CUDA is 256
    with torch.no_grad():         # warm-up: cudnn.benchmark's choice for this batch and precision
        x = torch.zeros(batch, 3, s.eval_size, s.eval_size, device=ctx.device).contiguous(
            memory_format=torch.channels_last)
        with torch.autocast(ctx.device.type, dtype=amp or torch.bfloat16, enabled=amp is not None):
            model(x)
        del x
    ctx.sync()
    t = time.perf_counter()
    res = scoring.score_set(model, eval_set, EvalSettings(s.eval_size, 0.95, "bicubic"), device=ctx.device,
                            amp_dtype=amp, batch_size=batch, workers=workers, channels_last=True, progress=False)
    ctx.sync()
    ours = res["images"] / (time.perf_counter() - t)
    theirs = timm_eval(ctx, model, root, s.eval_size, batch, workers, amp)
    return {"rsb": f"{ours:.0f} img/s", "timm": f"{theirs:.0f} img/s", "ratio": f"{ours / theirs:.2f}",
            "detail": f"{res['images']} images, {workers} workers, batch {res['batch_size']}; "
                      + (prec.reason if use_amp else "float32 (no --amp)"),
            "values": {"rsb": ours, "timm": theirs}}


def part_validate(ctx: Ctx) -> None:
    import timm

    from rsb.evaluation import scoring
    torch_model = timm.create_model(ctx.sizes.model, num_classes=1000)
    model = scoring.prepare_model(torch_model, ctx.device, channels_last=True)  # as validate.py prepares it
    ctx.row("val_fp32", lambda: val_pair(ctx, model, use_amp=False))
    if ctx.cuda:
        ctx.row("val_bf16", lambda: val_pair(ctx, model, use_amp=True))
    else:
        ctx.skip("val_bf16", "skipped (no CUDA)")


PART_FUNCS = {"jpegs": part_jpegs, "synthetic": part_synthetic, "loader": part_loader, "validate": part_validate,
              "compiled_a2": part_compiled_a2, "compiled_a3": part_compiled_a3}


# ---- the parent: runs the tests, then worker processes; collects rows; writes the table ----------------------------

def gpu_facts() -> dict:
    """GPU name, driver and memory from nvidia-smi (no CUDA context in this process); else the kernel module."""
    facts = {}
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
        if out.returncode == 0 and out.stdout.strip():
            name, driver, memory = [x.strip() for x in out.stdout.strip().splitlines()[0].split(",")]
            facts.update(gpu=name, driver=driver, memory=memory)
    except (OSError, subprocess.SubprocessError, ValueError):
        pass
    if "driver" not in facts:
        try:
            line = Path("/proc/driver/nvidia/version").read_text().splitlines()[0]
            facts["driver"] = next(w for w in line.split() if w[:1].isdigit() and "." in w)
        except (OSError, IndexError, StopIteration):
            pass
    return facts


def run_tests(budget: int, dry: bool, work: Path) -> dict:
    """pytest -m gpu tests/e2e/test_gpu.py in its own process; the row from its JUnit XML."""
    xml = work / "gpu_tests.xml"
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "tests/e2e/test_gpu.py", "-q", "-rfEs", "-p", "no:cacheprovider",
           f"--junitxml={xml}"]
    env = dict(os.environ)
    env.pop("PYTORCH_NVML_BASED_CUDA_CHECK", None)
    if dry:
        env["CUDA_VISIBLE_DEVICES"] = ""  # the dry run is a CPU run even on a GPU machine
    log = work / "tests.log"
    with open(log, "w") as f:  # its own process group: the train.py processes it starts go with it
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            proc.wait(timeout=max(1, budget))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return {"status": f"failed: timed out after the part's budget of {budget} s", "log": log}
    if not xml.is_file():
        return {"status": f"failed: pytest exited with status {proc.returncode}: {last_line(log)}", "log": log}
    root = ET.parse(xml).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    count = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
    bad = [c.get("name") for c in root.iter("testcase") if c.find("failure") is not None or c.find("error") is not None]
    passed = count["tests"] - count["failures"] - count["errors"] - count["skipped"]
    counts = f"{passed} passed, {len(bad)} failed, {count['skipped']} skipped"
    if bad:
        status = f"failed: {counts} ({', '.join(bad)})"
    elif count["tests"] == 0:
        status = f"failed: no tests collected (pytest status {proc.returncode})"
    elif passed == 0 and count["skipped"] == count["tests"]:
        status = f"skipped (no CUDA): {count['tests']} tests collected, all skipped" if dry or not has_cuda() \
            else f"failed: all {count['tests']} tests skipped on a CUDA machine"
    else:
        status = f"ok: {counts}"
    return {"status": status, "log": log, "rsb": counts}


def has_cuda() -> bool:
    import torch
    return torch.cuda.is_available()


def last_line(path: Path) -> str:
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:220] if lines else ""


class Collector:
    def __init__(self, sizes: Sizes, workers: int):
        self.sizes, self.workers = sizes, workers
        self.rows: dict[str, dict] = {}
        self.env: dict = {}
        self.notes: list[str] = []
        self.t0 = time.time()

    def add(self, rec: dict) -> None:
        kind = rec.get("type")
        if kind == "row":
            self.rows[rec["key"]] = rec
            extra = f"; {rec['detail']}" if rec.get("detail") else ""
            figures = " ".join(f"{k} {rec[k]}" for k in ("rsb", "timm", "ratio", "wait") if rec.get(k))
            print(f"[{time.time() - self.t0:5.0f} s] {rec['key']}: {rec['status']} {figures}{extra}", flush=True)
            for line in rec.get("trace") or []:
                print(f"    {line}", flush=True)
        elif kind == "env":
            self.env.update(rec)
        elif kind == "info":
            self.notes.append(rec["text"])
            print(f"[{time.time() - self.t0:5.0f} s] {rec['text']}", flush=True)
        elif kind == "start":
            print(f"[{time.time() - self.t0:5.0f} s] part {rec['part']} (budget {rec['budget']} s)", flush=True)

    def fail_missing(self, part: Part, status: str) -> int:
        missing = [key for key in part.rows if key not in self.rows]
        for key in missing:
            self.add({"type": "row", "key": key, "status": status,
                      "setting": planned_setting(key, self.sizes, self.workers)})
        return len(missing)


def run_workers(parts: list[Part], args, work: Path, deadline: float, col: Collector) -> None:
    """Run the parts in worker processes: one for all of them, and a fresh one for those left when a worker dies
    or is killed past a part's budget."""
    remaining = list(parts)
    attempt = 0
    while remaining:
        attempt += 1
        jsonl = work / f"worker{attempt}.jsonl"
        log = work / f"worker{attempt}.log"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--parts",
               ",".join(p.name for p in remaining), "--jsonl", str(jsonl), "--work", str(work),
               "--deadline", str(deadline)]
        if args.cpu_dry_run:
            cmd.append("--cpu-dry-run")
        if args.budgets:
            cmd += ["--budgets", args.budgets]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.pop("PYTORCH_NVML_BASED_CUDA_CHECK", None)
        if args.cpu_dry_run:
            env["CUDA_VISIBLE_DEVICES"] = ""
        jsonl.touch()
        with open(log, "w") as logf:
            proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=logf, stderr=subprocess.STDOUT,
                                    start_new_session=True)  # its own process group: loader and compile workers
        state = {"pos": 0, "current": None, "started": 0.0, "budget": 0, "ended": set()}

        def read_new():
            with open(jsonl, "rb") as f:
                f.seek(state["pos"])
                chunk = f.read()
            complete = chunk[:chunk.rfind(b"\n") + 1]
            state["pos"] += len(complete)
            for line in complete.decode().splitlines():
                rec = json.loads(line)
                col.add(rec)
                if rec["type"] == "start":
                    state.update(current=rec["part"], started=rec["t"], budget=rec["budget"])
                elif rec["type"] == "end":
                    state["ended"].add(rec["part"])
                    state["current"] = None

        killed = None
        while True:
            read_new()
            if proc.poll() is not None:
                read_new()
                break
            now = time.time()
            if state["current"] is not None and now > state["started"] + state["budget"] + KILL_GRACE_S:
                killed = (f"failed: killed after the part's budget of {state['budget']} s "
                          f"(its process did not stop)")
            elif now > deadline + 2 * KILL_GRACE_S:
                killed = "failed: killed at the check's time limit"
            if killed:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
                read_new()
                break
            time.sleep(0.3)
        try:  # what its process group left behind (loader or compile workers of a killed part)
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        current, ended = state["current"], state["ended"]
        if killed is None and proc.returncode != 0:
            killed = f"failed: its process died (status {proc.returncode}): {last_line(log)}"
        keep_log(log, args)
        progressed = bool(ended) or current is not None
        lost = [p for p in remaining if p.name == current or (not progressed and p.name not in ended)]
        if sum(col.fail_missing(p, killed or "failed: its process stopped early") for p in lost):
            print_tail(log)
        remaining = [p for p in remaining if p.name not in ended and p.name != current] if progressed else []


def keep_log(log: Path, args) -> None:
    if args.keep_logs:
        dest = Path(args.keep_logs)
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy(log, dest / log.name)


def print_tail(log: Path, n: int = 15) -> None:
    try:
        lines = log.read_text(errors="replace").splitlines()[-n:]
    except OSError:
        return
    print(f"--- last lines of {log.name}:", *("    " + ln for ln in lines), sep="\n", flush=True)


def build_table(col: Collector, dry: bool, keys) -> str:
    from _common import table
    wait = "data wait, rsb / timm" if dry else "GPU waits for data, rsb / timm"
    rows = []
    for key in keys:
        rec = col.rows.get(key) or {"status": "failed: not run", "setting": planned_setting(key, col.sizes,
                                                                                            col.workers)}
        rows.append([LABELS[key], rec.get("setting", ""), rec["status"], rec.get("rsb", "") if key != "tests" else "",
                     rec.get("timm", ""), rec.get("ratio", ""), rec.get("wait", "")])
    return table(["check", "setting", "status", "rsb", "timm", "rsb / timm", wait], rows)


def header_lines(col: Collector, facts: dict, command: str, dry: bool, seconds: float) -> list[str]:
    import torch
    env = col.env
    gpu = facts.get("gpu") or env.get("gpu") or ("none (CPU dry run)" if dry else "unknown")
    driver = facts.get("driver") or ("none" if dry else "unknown")
    lines = [f"- date: {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}",
             f"- GPU: {gpu}" + (f", {facts['memory']}" if facts.get("memory") else
                                f", {env['gpu_memory_gib']} GiB" if env.get("gpu_memory_gib") else "")
             + f"; driver {driver}"
             + (f"; CUDA runtime {env['cuda_runtime']}, cuDNN {env['cudnn']}" if env.get("cuda_runtime") else ""),
             f"- torch {env.get('torch', torch.__version__)}, timm {env.get('timm') or timm_version()}, Python "
             f"{platform.python_version()}; CPU {cpu_model()}, {usable_cores()} usable cores, "
             f"torch.backends.cpu.get_cpu_capability() = {torch.backends.cpu.get_cpu_capability()}",
             f"- command: `{command}` (wall time {int(seconds // 60)} min {int(seconds % 60):02d} s)"]
    return lines


def timm_version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("timm")
    except PackageNotFoundError:
        return "?"


def cpu_model() -> str:
    from _common import cpu_model as model
    return model()


def notes_lines(col: Collector) -> list[str]:
    out = list(col.notes)
    for key in ROW_ORDER:
        rec = col.rows.get(key, {})
        if rec.get("detail"):
            out.append(f"{LABELS[key]}: {rec['detail']}")
    return out


def parent_main(args) -> int:
    print(USAGE, flush=True)
    os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")  # this process never creates a CUDA context
    import torch
    dry = args.cpu_dry_run
    if not dry and not torch.cuda.is_available():
        print("error: no CUDA GPU is visible here. On a CPU machine, check the script with "
              "python benchmarks/gpu_check.py --cpu-dry-run --results /tmp/gpu_check.md", file=sys.stderr)
        return 2
    results = Path(args.results) if args.results else (None if dry else RESULTS_MD)
    if args.no_results:
        results = None
    start = time.time()
    deadline = start + args.budget
    sizes = DRY if dry else REAL
    col = Collector(sizes, usable_cores())
    col.t0 = start
    wanted = [n.strip() for n in args.only.split(",")] if args.only else [p.name for p in PARTS]
    unknown = [n for n in wanted if n not in PART_BY_NAME]
    if unknown:
        print(f"error: unknown part(s) {', '.join(unknown)}; parts: {', '.join(PART_BY_NAME)}", file=sys.stderr)
        return 2
    if any(n in ("loader", "validate") for n in wanted) and "jpegs" not in wanted:
        wanted.append("jpegs")  # they read its files
    plan = [PART_BY_NAME[p.name] for p in PARTS if p.name in wanted]
    facts = {} if dry else gpu_facts()
    print(f"{'CPU dry run' if dry else 'GPU check'}: parts {', '.join(p.name for p in plan)}; "
          f"no part starts after {args.budget} s; {usable_cores()} usable cores"
          + (f"; GPU {facts.get('gpu', '?')}, driver {facts.get('driver', '?')}" if not dry else ""), flush=True)
    work = Path(tempfile.mkdtemp(prefix="rsb_gpu_check_"))
    try:
        rest = list(plan)
        if rest and rest[0].name == "tests":
            part = rest.pop(0)
            budget = effective_budget(part, rest, deadline)
            col.add({"type": "start", "part": "tests", "budget": budget})
            res = run_tests(budget, dry, work)
            col.add({"type": "row", "key": "tests", "status": res["status"], "rsb": res.get("rsb", ""),
                     "setting": planned_setting("tests", sizes, col.workers)})
            if not res["status"].startswith(("ok", "skipped")):
                print_tail(res["log"], 40)
            keep_log(res["log"], args)
        if rest:
            run_workers(rest, args, work, deadline, col)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    seconds = time.time() - start
    command = "python benchmarks/gpu_check.py" + (" " + " ".join(shlex.quote(a) for a in sys.argv[1:])
                                                  if sys.argv[1:] else "")
    keys = [k for k in ROW_ORDER if any(k in p.rows for p in plan)]
    text = build_table(col, dry, keys)
    heading = "## GPU check (issue 17)" + (": CPU dry run at tiny sizes, not GPU figures" if dry else "")
    block = "\n".join([heading, "", *header_lines(col, facts, command, dry, seconds), "", text, "",
                       *(f"- {n}" for n in notes_lines(col))])
    print()
    print(block, flush=True)
    if results is not None:
        results.parent.mkdir(parents=True, exist_ok=True)
        existing = results.read_text() if results.is_file() else ""
        with open(results, "a") as f:
            f.write(("\n" if existing and not existing.endswith("\n\n") else "") + block + "\n")
        print(f"\nappended to {results}", flush=True)
    failed = [k for k in keys if not col.rows.get(k, {}).get("status", "failed").startswith(("ok", "skipped"))]
    return 1 if failed else 0


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cpu-dry-run", action="store_true",
                   help="tiny sizes on the CPU; CUDA-only rows 'skipped (no CUDA)'; writes only to --results")
    p.add_argument("--results", help="append the table here (default benchmarks/RESULTS.md; none for a dry run)")
    p.add_argument("--no-results", action="store_true", help="print the table only")
    p.add_argument("--only", help=f"comma-separated parts to run ({', '.join(PART_BY_NAME)})")
    p.add_argument("--budget", type=float, default=TOTAL_BUDGET_S, help="seconds after which no part starts "
                                                                         f"(default {TOTAL_BUDGET_S})")
    p.add_argument("--keep-logs", metavar="DIR", help="copy the parts' logs into DIR")
    p.add_argument("--budgets", metavar="PART=S,...", default="",
                   help="other budgets (seconds) for some parts, e.g. compiled_a2=300 (default: "
                        + ", ".join(f"{q.name}={q.budget}" for q in PARTS) + ")")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--parts", default="", help=argparse.SUPPRESS)
    p.add_argument("--jsonl", help=argparse.SUPPRESS)
    p.add_argument("--work", help=argparse.SUPPRESS)
    p.add_argument("--deadline", type=float, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def set_budgets(spec: str) -> None:
    for item in filter(None, (x.strip() for x in spec.split(","))):
        name, _, seconds = item.partition("=")
        if name not in PART_BY_NAME or not seconds.replace(".", "", 1).isdigit():
            raise SystemExit(f"error: --budgets takes PART=SECONDS with parts {', '.join(PART_BY_NAME)}; got {item!r}")
        old = PART_BY_NAME[name]
        PART_BY_NAME[name] = Part(old.name, old.rows, int(float(seconds)), min(old.reserve, int(float(seconds))))


def main(argv=None) -> int:
    args = parse_args(argv)
    set_budgets(args.budgets)
    if args.worker:
        return worker_main(args)
    return parent_main(args)


if __name__ == "__main__":
    sys.exit(main())
