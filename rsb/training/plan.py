"""Derived values, computed once from the config and the environment and printed at start.

The recipes are defined at a global batch of `optim.reference_batch` (2048, repeated-augmentation copies
included). When batch_per_device x world_size differs, one rule applies (`optim.batch_rule`):
  accumulate  accumulate gradients up to the reference batch when it divides evenly, so the recipe's
              lr is used as is; otherwise fall back to linear scaling and say so
  linear      lr x batch / reference            (Goyal et al. 2017)
  sqrt        lr x sqrt(batch / reference)      (often better for adaptive optimizers like LAMB at small batch)
  none        lr unchanged
The precision actually used (rsb.runtime.precision: the recipe's autocast where the device computes it natively,
float32 elsewhere), the sampler's lanes (rsb.data.sampler) and the training input path that runs (named by the
dataset family, rsb.data.families) are derived here too. The config is checked before (rsb.training.run_config).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from rsb.runtime import precision
from rsb.config.schema import Config, to_dict, to_yaml
from rsb.data.families.registry import family
from rsb.data.sampler import lane_count, samples_per_process
from rsb.data.transforms import BUILD_EXTENSIONS
from rsb.errors import UserError


@dataclass(frozen=True)
class Derived:
    world_size: int
    batch_per_device: int
    accum_steps: int
    global_batch: int           # images per optimizer step, all devices, accumulation included
    lr: float                   # peak learning rate actually used
    lr_scale: float             # the batch rule's factor on the recipe's learning rates (the step warm-up's too)
    batch_rule_applied: str     # one sentence: which rule and why
    train_images: int
    samples_per_device: int     # per epoch, repeats included
    steps_per_epoch: int        # optimizer steps
    epochs: int                 # sched.epochs (+ sched.cooldown_epochs), or the epochs sched.max_steps spans
    total_steps: int
    warmup_steps: int
    sampler_lanes: int          # virtual replicas the repeated-augmentation sampler deals over
    precision: str              # what the forward pass computes in: bfloat16, float16 (autocast) or float32
    precision_reason: str       # one sentence: why (train.amp and the device's native support)
    input_path: str             # which training input path runs: fast transform or timm's chain, decoder, C ops

    def steps_in_epoch(self, epoch: int) -> int:
        """Optimizer steps of epoch `epoch` (0-based): all of them, except in a last epoch cut by max_steps."""
        return max(0, min(self.steps_per_epoch, self.total_steps - epoch * self.steps_per_epoch))


def _batch_rule(cfg: Config, per_step: int) -> tuple[int, float, float, str]:
    """(accumulation steps, peak lr, its factor on the recipe's lr, one sentence saying which rule and why)."""
    ref, lr, rule = cfg.optim.reference_batch, cfg.optim.lr, cfg.optim.batch_rule
    if per_step == ref:
        return 1, lr, 1.0, f"batch {per_step} equals the reference batch: lr {lr:g} as in the recipe"
    if rule == "accumulate":
        if ref % per_step == 0:
            k = ref // per_step
            return k, lr, 1.0, f"accumulate {k} steps of {per_step} to reach the reference batch {ref}: lr {lr:g}"
        scaled = lr * per_step / ref
        return 1, scaled, per_step / ref, (f"batch {per_step} does not divide the reference batch {ref}: "
                                           f"linear lr scaling {lr:g} x {per_step}/{ref} = {scaled:.4g}")
    if rule == "linear":
        scaled = lr * per_step / ref
        return 1, scaled, per_step / ref, f"linear lr scaling {lr:g} x {per_step}/{ref} = {scaled:.4g}"
    if rule == "sqrt":
        factor = math.sqrt(per_step / ref)
        scaled = lr * factor
        return 1, scaled, factor, f"square-root lr scaling {lr:g} x sqrt({per_step}/{ref}) = {scaled:.4g}"
    return 1, lr, 1.0, f"batch {per_step}, reference {ref}, rule 'none': lr {lr:g} unchanged"


def resolve(cfg: Config, world_size: int, train_images: int, prec: precision.Precision | None = None,
            input_path: str | None = None) -> Derived:
    """The derived values of a checked config (rsb.training.run_config.build_config). `prec`: the precision chosen
    for the run's device (None: for the device --device auto would pick); `input_path`: the line naming the
    training set's input path as built (rsb.data.families' TrainingSet; None: the family names it from cfg)."""
    per_step = cfg.train.batch_per_device * world_size
    accum, lr, lr_scale, note = _batch_rule(cfg, per_step)
    b = cfg.train.batch_per_device
    lanes = lane_count(world_size, accum, cfg.aug.repeated_aug)
    samples = samples_per_process(train_images, lanes, world_size, b)
    steps = samples // b // accum
    prec = prec or precision.for_config(cfg.train, "auto")
    if steps <= 0:  # a data.val_holdout larger than the assumed train set gives fewer than none
        raise UserError(f"{train_images} training images are too few for a batch of {per_step * accum} "
                        f"(train.batch_per_device={b}, {world_size} device(s), {accum} accumulation steps; the "
                        f"sampler deals them over {lanes} lanes of {math.ceil(train_images / lanes)}); lower "
                        f"train.batch_per_device.")
    total = cfg.sched.max_steps or steps * (cfg.sched.epochs + cfg.sched.cooldown_epochs)
    return Derived(
        world_size=world_size, batch_per_device=cfg.train.batch_per_device, accum_steps=accum,
        global_batch=per_step * accum, lr=lr, lr_scale=lr_scale, batch_rule_applied=note, train_images=train_images,
        samples_per_device=samples, steps_per_epoch=steps, epochs=math.ceil(total / steps), total_steps=total,
        warmup_steps=round(steps * cfg.sched.warmup_epochs),
        sampler_lanes=lanes, precision=prec.name, precision_reason=prec.reason,
        input_path=input_path or family(cfg).input_path(cfg))


def assumed_train_images(cfg: Config, sample: bool) -> int:
    """The training set's size where the data is not read (--print-config, a sweep's launch check): the built-in
    sample's, or the full data set's, less data.val_holdout."""
    return family(cfg).train_images(sample) - cfg.data.val_holdout


def resolved_document(cfg: Config, derived: Derived, environment: dict | None = None) -> dict:
    """What resolved.yaml holds: the config, the derived values and (for a run) where it ran."""
    doc = {"config": to_dict(cfg), "derived": asdict(derived)}
    if environment is not None:
        doc["environment"] = environment
    return doc


def versions() -> dict:
    import timm
    import torch

    import rsb
    return {"rsb": rsb.__version__, "torch": str(torch.__version__), "timm": str(timm.__version__)}


def where_it_ran(data, device: str) -> dict:
    """resolved.yaml's `environment`: where a run ran (the config and derived values say what it computes)."""
    return {"data": str(data) if data else "built-in sample data", "device": device, **versions()}


def startup_lines(cfg: Config, d: Derived, device_type: str, run_dir) -> list[str]:
    """What a run prints before its first step: versions, scale, the batch rule, precision, the sampler's lanes
    and the input path (with one warning line when a C extension of the fast path is not built)."""
    from rsb.run import folder as run_folder
    lines = [", ".join(f"{name} {version}" for name, version in versions().items()),
             f"run folder {run_dir}; {d.world_size} process(es) on {device_type}; {d.train_images} train images, "
             f"{d.steps_per_epoch} steps/epoch, {d.epochs} epochs{_cooldown(cfg)}, {d.total_steps} steps",
             f"batch rule: {d.batch_rule_applied}",
             f"precision: {d.precision_reason}",
             f"repeated augmentation: {cfg.aug.repeated_aug} copies per image dealt over {d.sampler_lanes} sampler "
             f"lanes ({d.world_size} process(es) x {d.accum_steps} micro-steps)",
             f"input: {d.input_path}"]
    if "not built" in d.input_path:
        lines.append(f"warning: the fast input path runs slower without its C extensions; {BUILD_EXTENSIONS}")
    return lines + [f"resolved configuration: {run_dir / run_folder.RESOLVED}"]


def _cooldown(cfg: Config) -> str:
    c = cfg.sched.cooldown_epochs
    return f" ({cfg.sched.epochs} of the cosine, then {c} at sched.min_lr)" if c else ""


def print_config(cfg: Config, sample: bool, device: str = "auto") -> str:
    """The resolved YAML for --print-config: no data is read (the full data set's train size is assumed)."""
    from rsb.runtime import distributed
    images = assumed_train_images(cfg, sample)
    _, world, _ = distributed.env_rank_world()
    fam = family(cfg)
    scale = (f"built-in sample data at sample scale ({fam.sample_scale_file.name}); pass --data for the "
             f"full-scale recipe") if sample else f"{fam.full_name} ({images} train images assumed, data not read)"
    derived = resolve(cfg, world, images, precision.for_config(cfg.train, device))
    return f"# resolved for {scale}\n" + to_yaml(resolved_document(cfg, derived))
