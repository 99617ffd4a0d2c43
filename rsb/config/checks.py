"""Every check of a config value, in one place: a value's type and, for the fields that take one of a few names,
its choice, both when a recipe file or an override is read (rsb.config.load); then the cross-field rules of a whole
config (check_config), which rsb.training.run_config runs once per run, with the dataset family's own rules
(rsb.data.families)."""
from __future__ import annotations

import difflib
import typing
from typing import Any

from rsb.config.schema import CHOICES, Config
from rsb.errors import UserError


def closest(key: str, options: list[str]) -> str:
    match = difflib.get_close_matches(key, options, n=1, cutoff=0.0)
    return match[0] if match else ""


def check_choice(path: str, value: Any) -> None:
    if path in CHOICES and value not in CHOICES[path]:
        raise UserError(choice_error(path, value, CHOICES[path]))
    if path == "model.name":
        import timm
        if not timm.is_model(value):
            near = difflib.get_close_matches(value, timm.list_models(), n=1, cutoff=0.0)
            raise UserError(f"model.name {value!r} is not a timm model (did you mean '{near[0] if near else ''}'?"
                            f" see timm.list_models()).")


def choice_error(path: str, value: Any, options) -> str:
    """The sentence for a value that is none of a field's choices, with the nearest one."""
    return (f"{path} must be one of {', '.join(options)}; got {value!r} "
            f"(did you mean '{closest(str(value), list(options))}'?).")


def check_value(path: str, value: Any, expected: Any) -> Any:
    """Return value converted to the field's type, or raise UserError naming the key and the expected type."""
    optional = typing.get_origin(expected) is typing.Union and type(None) in typing.get_args(expected)
    if optional:
        if value is None or (isinstance(value, str) and value.lower() == "none"):  # YAML reads None as a string
            return None
        expected = next(a for a in typing.get_args(expected) if a is not type(None))
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is float and isinstance(value, str):
        try:  # YAML 1.1 reads "4e-3" (no dot) as a string; it is a float to any user
            return float(value)
        except ValueError:
            pass
    if expected is list and isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, expected) and not (expected is int and isinstance(value, bool)):
        return value
    raise UserError(f"{path} must be of type {expected.__name__}, got {value!r} ({type(value).__name__}).")


def check_config(cfg: Config) -> None:
    """Reject values no code path can honour, with the key named (the choices are checked when read; the dataset
    family's own rules are its check, rsb.data.families)."""
    def need(ok: bool, msg: str) -> None:
        if not ok:
            raise UserError(msg)
    s = cfg.sched
    need((s.epochs > 0) != (s.max_steps > 0) and min(s.epochs, s.max_steps) >= 0,
         f"give the run length as sched.epochs or as sched.max_steps, the other 0 (got sched.epochs={s.epochs}, "
         f"sched.max_steps={s.max_steps}).")
    need(0 <= s.warmup_epochs and (s.max_steps or s.warmup_epochs < s.epochs),
         f"sched.warmup_epochs must be in [0, sched.epochs) (got {s.warmup_epochs:g} with "
         f"sched.epochs={s.epochs}).")
    need(s.name == "step" or not (s.milestones or s.warmup_until_error),
         "sched.milestones and sched.warmup_until_error belong to sched.name=step; clear them for the cosine.")
    need(s.cooldown_epochs >= 0 and (s.name == "cosine_per_epoch" or not s.cooldown_epochs),
         f"sched.cooldown_epochs belongs to sched.name=cosine_per_epoch and must be 0 or more; got "
         f"{s.cooldown_epochs} with sched.name={s.name}.")
    need(s.name != "cosine_per_epoch" or not s.max_steps,
         "sched.name=cosine_per_epoch runs over whole epochs: give sched.epochs, with sched.max_steps=0.")
    need(all(isinstance(m, (int, float)) and not isinstance(m, bool) and m > 0 for m in s.milestones)
         and list(s.milestones) == sorted(s.milestones),
         f"sched.milestones must be positive numbers in increasing order, got {s.milestones}.")
    need(0 < s.gamma <= 1, f"sched.gamma must be in (0, 1], got {s.gamma:g}.")
    need(0 <= s.warmup_until_error < 100, "sched.warmup_until_error is a training error in percent, in [0, 100).")
    need(not s.warmup_until_error or not (cfg.aug.mixup_alpha or cfg.aug.cutmix_alpha),
         "sched.warmup_until_error needs Mixup and CutMix off (mixed targets have no training error).")
    need(cfg.data.val_holdout >= 0, "data.val_holdout must be 0 or more.")
    need(cfg.aug.pad_crop >= 0, "aug.pad_crop must be 0 or more.")
    need(cfg.optim.lr > 0, "optim.lr must be positive.")
    need(cfg.aug.repeated_aug >= 1, "aug.repeated_aug must be 1 (off) or more.")
    need(cfg.train.batch_per_device > 0, "train.batch_per_device must be positive.")
    mixing = cfg.aug.mixup_alpha > 0 or cfg.aug.cutmix_alpha > 0
    need(not mixing or cfg.train.batch_per_device % 2 == 0,
         "train.batch_per_device must be even when Mixup or CutMix is on (timm mixes a batch with its flip).")
    need(len(cfg.aug.scale) == 2 and len(cfg.aug.ratio) == 2, "aug.scale and aug.ratio take two numbers each.")
    need(0 < cfg.data.test_crop_pct <= 1, "data.test_crop_pct must be in (0, 1].")
    need(cfg.model.num_classes > 1, "model.num_classes must be at least 2.")
