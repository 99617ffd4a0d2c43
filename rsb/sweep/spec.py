"""What a sweep is: its seeds ("1-100", "1,5,9", "1-10,20,30-32") and the run folder of each, and the sweep
definition kept in <out>/sweep.json, so status and report need only the folder, and a relaunch into the same
folder can be checked against what was launched there before."""
from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from rsb.run import folder as run_folder
from rsb.config.schema import Config, recipe_values, to_dict
from rsb.training.run_config import build_config
from rsb.errors import UserError

FORMAT = "rsb-sweep-1"
SPEC_NAME = "sweep.json"
MAX_SEEDS = 100_000  # a typo such as "1-1000000000" must not build a billion-entry list
_PART = re.compile(r"^(\d+)(?:-(\d+))?$")


def parse_seeds(text: str) -> list[int]:
    """Sorted unique seeds from comma-separated numbers and inclusive ranges; anything else is a UserError."""
    seeds: set[int] = set()
    parts = [p.strip() for p in str(text).split(",")]
    if not any(parts):
        raise UserError("--seeds is empty; give numbers and ranges such as 1-100 or 1,5,9.")
    for part in parts:
        m = _PART.match(part)
        if not m:
            raise UserError(f"--seeds: cannot read '{part}' in '{text}'; use non-negative numbers and ranges "
                            f"such as 1-100 or 1-10,20,30-32.")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi < lo:
            raise UserError(f"--seeds: the range '{part}' runs backwards; write {hi}-{lo}.")
        if hi - lo + 1 + len(seeds) > MAX_SEEDS:
            raise UserError(f"--seeds '{text}' names more than {MAX_SEEDS} seeds.")
        seeds.update(range(lo, hi + 1))
    return sorted(seeds)


def format_seeds(seeds) -> str:
    """The compact form of a seed list: [1, 2, 3, 7] -> "1-3,7"."""
    seeds = sorted(set(seeds))
    out, i = [], 0
    while i < len(seeds):
        j = i
        while j + 1 < len(seeds) and seeds[j + 1] == seeds[j] + 1:
            j += 1
        out.append(str(seeds[i]) if i == j else f"{seeds[i]}-{seeds[j]}")
        i = j + 1
    return ",".join(out)


def run_dir_name(seed: int) -> str:
    """Keyed by the seed, never by a job id, so a relaunch finds the same folder and resumes it."""
    return f"seed_{seed:04d}"


@dataclass
class Executor:
    """Where and how jobs run: environment, free to change between launches (unlike the definition)."""
    cluster: str = "local"           # "local" or "slurm" (resolved from --cluster auto)
    partition: str | None = None
    nodes: int = 1
    gpus_per_node: int = 8
    tasks_per_node: int | None = None  # DDP processes per node; None: one per GPU (one on a CPU-only node)
    cpus_per_task: int = 10
    mem_gb: float | None = None
    timeout_min: int = 1440
    signal_before_s: int = 180       # Slurm's save-and-requeue signal this long before the time limit
    max_parallel: int | None = None  # None: 1 locally, no limit (submitit's 256) on Slurm
    workers: int | None = None       # loader processes per training process; None: from the CPUs available
    threads: int | None = None       # torch compute threads per training process; None: from the CPUs available
    device: str = "auto"
    resume_changed: bool = False     # this launch continues the seeds with changed recipe values, on purpose

    @property
    def processes_per_node(self) -> int:
        return self.tasks_per_node or max(1, self.gpus_per_node)


@dataclass
class SweepSpec:
    recipe: str                      # a recipe name, or the absolute path of a recipe file
    seeds: list[int]
    overrides: list[str]
    data: str | None                 # None: the built-in sample data at sample scale
    imagenet_v2: str | None
    epochs: int                      # the run's epochs after overrides: a seed is finished at this epoch
    config: dict = field(default_factory=dict)  # the resolved recipe with train.seed removed
    executor: Executor = field(default_factory=Executor)
    val_labels: str | None = None    # ground truth of a flat val/ (--val-labels), else found beside it

    @property
    def sample(self) -> bool:
        return self.data is None


def normalize_recipe(recipe: str) -> str:
    """Names stay names; a recipe file is kept by absolute path, so jobs started elsewhere find it."""
    p = Path(recipe)
    return str(p.resolve()) if p.suffix else recipe


def seed_config(recipe: str, overrides: list[str], sample: bool, seed: int) -> Config:
    return build_config(recipe, list(overrides) + [f"train.seed={seed}"], sample)


def resolve_once(cfg: Config, sample: bool, executor: Executor):
    """Resolve as a seed's run will: the sample's train size, or the full data set's (the data is not read
    here), on the processes one seed gets (Slurm: nodes x processes per node; locally one)."""
    from rsb.training.plan import assumed_train_images, resolve
    world = executor.nodes * executor.processes_per_node if executor.cluster == "slurm" else 1
    return resolve(cfg, world, assumed_train_images(cfg, sample))


def check_overrides(overrides: list[str]) -> None:
    for o in overrides:
        if o.split("=", 1)[0].strip() == "train.seed":
            raise UserError(f"the sweep sets train.seed itself (one run per seed); remove the override '{o}' "
                            f"and choose the seeds with --seeds.")


def definition_config(cfg: Config) -> dict:
    """What makes two launches the same study: the recipe values, without the seed and the run policy."""
    d = recipe_values(to_dict(cfg))
    d["train"] = {k: v for k, v in d["train"].items() if k != "seed"}
    return d


def make_spec(recipe: str, seeds: list[int], overrides: list[str], data: str | Path | None,
              imagenet_v2: str | Path | None, executor: Executor, val_labels: str | Path | None = None) -> SweepSpec:
    """Check the definition by building and resolving the first seed's config (a bad recipe or override, or a
    batch too large for the data, fails here once, before anything is started or submitted)."""
    check_overrides(overrides)
    recipe = normalize_recipe(recipe)
    cfg = seed_config(recipe, overrides, data is None, seeds[0])
    derived = resolve_once(cfg, data is None, executor)  # epochs: sched.epochs, or what sched.max_steps spans
    return SweepSpec(recipe=recipe, seeds=list(seeds), overrides=list(overrides),
                     data=str(Path(data).resolve()) if data is not None else None,
                     imagenet_v2=str(Path(imagenet_v2).resolve()) if imagenet_v2 is not None else None,
                     epochs=derived.epochs, config=definition_config(cfg), executor=executor,
                     val_labels=str(Path(val_labels).resolve()) if val_labels is not None else None)


def _diff(old: dict, new: dict, prefix: str = "") -> list[str]:
    keys = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            keys += _diff(a, b, f"{prefix}{k}.")
        elif a != b:
            keys.append(f"{prefix}{k}")
    return keys


def merge(old: SweepSpec, new: SweepSpec, out: Path) -> SweepSpec:
    """A relaunch must run the same study: same recipe, data and resolved recipe values. Seeds are added to the
    sweep; the executor settings and the overrides are the new ones (they may change run policy, `run.*`). Other
    recipe values only with --resume-changed, as train.py's rule for one run folder."""
    changed = [name for name in ("recipe", "data", "imagenet_v2", "val_labels")
               if getattr(old, name) != getattr(new, name)]
    if changed:  # no flag turns these into the same study
        raise UserError(f"{out} holds a sweep of another {' and '.join(changed)}; relaunch it with the same "
                        f"recipe and data, or use another --out.")
    changed = _diff(old.config, new.config)
    if changed and not new.executor.resume_changed:
        shown = ", ".join(changed[:6]) + (", ..." if len(changed) > 6 else "")
        raise UserError(f"{out} holds a sweep with other recipe values ({shown}); give a new --out for a new "
                        f"sweep, or add --resume-changed to continue its seeds with these values.")
    return dataclasses.replace(new, seeds=sorted(set(old.seeds) | set(new.seeds)))


def save(spec: SweepSpec, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / SPEC_NAME
    run_folder.write_json(path, {"format": FORMAT, **dataclasses.asdict(spec)})
    return path


def load(out: str | Path) -> SweepSpec:
    out = Path(out)
    path = out / SPEC_NAME
    if not path.is_file():
        raise UserError(f"{out} is not a sweep folder (no {SPEC_NAME}); start one with "
                        f"'python -m rsb.sweep launch --out {out} ...'.")
    try:
        doc = json.loads(path.read_text())
        if doc.pop("format", None) != FORMAT:
            raise ValueError(f"not a {FORMAT} file")
        doc["executor"] = Executor(**doc.get("executor", {}))
        return SweepSpec(**doc)
    except (ValueError, TypeError) as e:
        raise UserError(f"{path} is not a readable sweep definition ({e}); launch into a new --out.") from None
