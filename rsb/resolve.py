"""Derived values, computed once from the config and the environment and printed at start.

The recipes are defined at a global batch of `optim.reference_batch` (2048, repeated-augmentation copies
included). When batch_per_device x world_size differs, one rule applies (`optim.batch_rule`):
  accumulate  accumulate gradients up to the reference batch when it divides evenly, so the recipe's
              lr is used as is; otherwise fall back to linear scaling and say so
  linear      lr x batch / reference            (Goyal et al. 2017)
  sqrt        lr x sqrt(batch / reference)      (often better for adaptive optimizers like LAMB at small batch)
  none        lr unchanged
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from rsb.config import Config
from rsb.errors import UserError

IMAGENET_TRAIN_IMAGES = 1_281_167  # ImageNet-1k train set; used when the data is not read (--print-config)
BATCH_RULES = ("accumulate", "linear", "sqrt", "none")


@dataclass(frozen=True)
class Derived:
    world_size: int
    batch_per_device: int
    accum_steps: int
    global_batch: int           # images per optimizer step, all devices, accumulation included
    lr: float                   # peak learning rate actually used
    batch_rule_applied: str     # one sentence: which rule and why
    train_images: int
    samples_per_device: int     # per epoch, repeats included
    steps_per_epoch: int        # optimizer steps
    total_steps: int
    warmup_steps: int


def check_config(cfg: Config) -> None:
    """Reject values no code path can honour, with the key named."""
    def need(ok: bool, msg: str) -> None:
        if not ok:
            raise UserError(msg)
    need(cfg.optim.batch_rule in BATCH_RULES, f"optim.batch_rule must be one of {', '.join(BATCH_RULES)}.")
    need(cfg.optim.name in ("lamb", "adamw"), "optim.name must be 'lamb' or 'adamw'.")
    need(cfg.loss.name in ("bce", "soft_ce"), "loss.name must be 'bce' or 'soft_ce'.")
    need(cfg.train.amp_dtype in ("bfloat16", "float16"), "train.amp_dtype must be 'bfloat16' or 'float16'.")
    need(cfg.sched.epochs > 0, "sched.epochs must be positive.")
    need(0 <= cfg.sched.warmup_epochs < cfg.sched.epochs, "sched.warmup_epochs must be in [0, sched.epochs).")
    need(cfg.optim.lr > 0, "optim.lr must be positive.")
    need(cfg.aug.repeated_aug >= 1, "aug.repeated_aug must be 1 (off) or more.")
    need(cfg.train.batch_per_device > 0, "train.batch_per_device must be positive.")
    mixing = cfg.aug.mixup_alpha > 0 or cfg.aug.cutmix_alpha > 0
    need(not mixing or cfg.train.batch_per_device % 2 == 0,
         "train.batch_per_device must be even when Mixup or CutMix is on (timm mixes a batch with its flip).")
    need(len(cfg.aug.scale) == 2 and len(cfg.aug.ratio) == 2, "aug.scale and aug.ratio take two numbers each.")
    need(0 < cfg.data.test_crop_pct <= 1, "data.test_crop_pct must be in (0, 1].")
    need(cfg.train.nonfinite in ("stop", "skip"), "train.nonfinite must be 'stop' or 'skip'.")
    need(cfg.model.num_classes > 1, "model.num_classes must be at least 2.")


def _batch_rule(cfg: Config, per_step: int) -> tuple[int, float, str]:
    ref, lr, rule = cfg.optim.reference_batch, cfg.optim.lr, cfg.optim.batch_rule
    if per_step == ref:
        return 1, lr, f"batch {per_step} equals the reference batch: lr {lr:g} as in the recipe"
    if rule == "accumulate":
        if ref % per_step == 0:
            k = ref // per_step
            return k, lr, f"accumulate {k} steps of {per_step} to reach the reference batch {ref}: lr {lr:g}"
        scaled = lr * per_step / ref
        return 1, scaled, (f"batch {per_step} does not divide the reference batch {ref}: "
                           f"linear lr scaling {lr:g} x {per_step}/{ref} = {scaled:.4g}")
    if rule == "linear":
        scaled = lr * per_step / ref
        return 1, scaled, f"linear lr scaling {lr:g} x {per_step}/{ref} = {scaled:.4g}"
    if rule == "sqrt":
        scaled = lr * math.sqrt(per_step / ref)
        return 1, scaled, f"square-root lr scaling {lr:g} x sqrt({per_step}/{ref}) = {scaled:.4g}"
    return 1, lr, f"batch {per_step}, reference {ref}, rule 'none': lr {lr:g} unchanged"


def resolve(cfg: Config, world_size: int, train_images: int) -> Derived:
    check_config(cfg)
    per_step = cfg.train.batch_per_device * world_size
    accum, lr, note = _batch_rule(cfg, per_step)
    samples = math.ceil(train_images / world_size)  # the sampler's share per device (see rsb.data.sampler)
    steps = samples // cfg.train.batch_per_device // accum
    if steps == 0:
        raise UserError(f"{train_images} training images are too few for a batch of {per_step * accum} "
                        f"(train.batch_per_device={cfg.train.batch_per_device}, {world_size} device(s), "
                        f"{accum} accumulation steps); lower train.batch_per_device.")
    return Derived(
        world_size=world_size, batch_per_device=cfg.train.batch_per_device, accum_steps=accum,
        global_batch=per_step * accum, lr=lr, batch_rule_applied=note, train_images=train_images,
        samples_per_device=samples, steps_per_epoch=steps, total_steps=steps * cfg.sched.epochs,
        warmup_steps=round(steps * cfg.sched.warmup_epochs))


def derived_dict(d: Derived) -> dict:
    return asdict(d)
