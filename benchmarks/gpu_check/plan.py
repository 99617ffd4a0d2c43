"""What the GPU check runs: its parts, their rows and time budgets, the sizes on the GPU and in the CPU dry run,
and what each row measures (its "setting" column, also for rows that never started)."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]   # the checkout: the processes the check starts run from here

TOTAL_BUDGET_S = 450   # no part starts after this (7.5 min); with the kill grace the run stays under 8 minutes
KILL_GRACE_S = 15      # a part's process is killed this long after its budget if its own alarm did not stop it


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
PART_BY_NAME = {p.name: p for p in PARTS}   # --budgets replaces entries (set_budgets)

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


def sizes_for(dry: bool) -> Sizes:
    return DRY if dry else REAL


def loader_steps(workers: int) -> tuple[int, int]:
    """(warm-up, measured) steps of the JPEG rows: one round of the workers' first batches, then two rounds."""
    return max(2, workers), max(4, 2 * workers)


def train_copies(s: Sizes, workers: int) -> int:
    """Copies of each file in train/ so one epoch of either recipe lasts the warm-up and the measured steps."""
    warm, measured = loader_steps(workers)
    need = (warm + measured + max(r for _, _, r in RECIPES.values())) * s.batch  # + a batch per sampler lane
    return -(-need // s.unique)


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


def parts_to_run(only: str | None) -> list[Part]:
    """The parts --only names (all by default) in the check's order, with jpegs where a part reads its files.
    An unknown name is a ValueError with the sentence to print."""
    wanted = [n.strip() for n in only.split(",")] if only else [p.name for p in PARTS]
    unknown = [n for n in wanted if n not in PART_BY_NAME]
    if unknown:
        raise ValueError(f"error: unknown part(s) {', '.join(unknown)}; parts: {', '.join(PART_BY_NAME)}")
    if any(n in ("loader", "validate") for n in wanted) and "jpegs" not in wanted:
        wanted.append("jpegs")  # they read its files
    return [PART_BY_NAME[p.name] for p in PARTS if p.name in wanted]


def effective_budget(part: Part, later: list[Part], deadline: float) -> int:
    """The part's budget, cut so that the parts after it keep their reserves before the deadline."""
    left = deadline - time.time() - sum(p.reserve for p in later)
    return int(min(part.budget, left))


def set_budgets(spec: str) -> None:
    """--budgets PART=S,...: other budgets for some parts (the parent passes the same spec to its workers)."""
    for item in filter(None, (x.strip() for x in spec.split(","))):
        name, _, seconds = item.partition("=")
        if name not in PART_BY_NAME or not seconds.replace(".", "", 1).isdigit():
            raise SystemExit(f"error: --budgets takes PART=SECONDS with parts {', '.join(PART_BY_NAME)}; got {item!r}")
        old = PART_BY_NAME[name]
        PART_BY_NAME[name] = Part(old.name, old.rows, int(float(seconds)), min(old.reserve, int(float(seconds))))
