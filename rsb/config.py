"""Typed configuration: one dataclass per recipe section; load a recipe, apply strict overrides, dump.

A recipe is a complete YAML file whose sections match the dataclasses below. Every key must exist in the
dataclass (an unknown key is an error naming the closest valid one) and every value must have the field's type.
Derived values (accumulation, effective learning rate, steps per epoch) are computed in rsb.training.plan, never here.
"""
from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from rsb.errors import UserError

def _recipe_dir() -> Path:
    """recipes/ of the checkout, installed as the data-only package rsb.recipes (setup.cfg's package_dir)."""
    import importlib.util
    spec = importlib.util.find_spec("rsb.recipes")
    if spec is not None and spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    return Path(__file__).resolve().parent.parent / "recipes"  # a checkout on sys.path, not installed


RECIPE_DIR = _recipe_dir()
SAMPLE_SCALE_FILE = RECIPE_DIR / "sample_scale.yaml"
SAMPLE_SCALE_FILES = {"imagenet": SAMPLE_SCALE_FILE, "cifar10": RECIPE_DIR / "sample_scale_cifar10.yaml"}


@dataclass
class ModelConfig:
    name: str = "resnet50"            # timm model name
    num_classes: int = 1000
    drop_rate: float = 0.0            # dropout before the classifier
    drop_path_rate: float = 0.0       # stochastic depth rate (linearly increasing over blocks, timm's rule)
    channels_last: bool = True
    compile: bool = False             # torch.compile the model


@dataclass
class DataConfig:
    dataset: str = "imagenet"         # imagenet (an ImageNet-layout folder) | cifar10 (rsb.data.cifar)
    val_holdout: int = 0              # training images held out as the val set (fixed split); 0 = the data's own
    normalize: str = "channel"        # channel: ImageNet mean and std | pixel_mean: the train set's mean image
    train_size: int = 224             # train resolution, pixels
    test_size: int = 224              # test resolution, pixels
    test_crop_pct: float = 0.95       # eval resizes the short side to floor(test_size / crop) then center-crops
    train_interpolation: str = "bicubic"
    test_interpolation: str = "bicubic"


@dataclass
class AugConfig:
    scale: list = field(default_factory=lambda: [0.08, 1.0])       # RandomResizedCrop area fraction
    ratio: list = field(default_factory=lambda: [0.75, 1.3333333333333333])  # RandomResizedCrop aspect ratio
    hflip: float = 0.5
    pad_crop: int = 0                 # px of zero padding, then a random crop back to the size (on the device)
    rand_augment: str = ""            # timm RandAugment string, "" = off
    color_jitter: float = 0.0
    random_erasing: float = 0.0
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    mix_prob: float = 1.0             # probability of applying Mixup or CutMix to a batch
    mix_switch_prob: float = 0.5      # probability of CutMix rather than Mixup when both are on
    repeated_aug: int = 1             # repeats per selected image in an epoch (1 = off)


@dataclass
class LossConfig:
    name: str = "bce"                 # "bce" (binary cross-entropy) or "soft_ce"
    target_threshold: Optional[float] = 0.2  # BCE: mixed targets above this become 1, others 0; null = off
    label_smoothing: float = 0.0
    smoothing_after_threshold: bool = False  # false: timm's order, as the released weights (recipes/a1.yaml)


@dataclass
class OptimConfig:
    name: str = "lamb"                # "lamb" (timm), "adamw" or "sgd" (torch)
    lr: float = 5e-3                  # peak learning rate at reference_batch
    reference_batch: int = 2048       # the global batch the recipe's lr is defined at (repeats included)
    batch_rule: str = "accumulate"    # accumulate | linear | sqrt | none (see rsb.training.plan)
    weight_decay: float = 0.02        # not applied to biases and normalisation layers
    betas: list = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-6
    max_grad_norm: Optional[float] = 1.0  # LAMB's global gradient-norm clipping; null = off
    momentum: float = 0.9             # SGD only
    decay_biases_and_norms: bool = False  # false: no weight decay on 1-d parameters; true: decay every parameter


@dataclass
class SchedConfig:
    name: str = "cosine"              # cosine: per-step linear warmup, then cosine decay to min_lr at the last
                                      # step; step: lr divided by 1/gamma at each milestone (rsb.training.optim)
    epochs: int = 300                 # run length; 0 when max_steps gives it
    max_steps: int = 0                # run length in optimizer steps (its last epoch cut short); 0 = epochs
    warmup_epochs: float = 5.0        # cosine: linear warmup from warmup_lr; step: warmup_lr held constant
    warmup_lr: float = 1e-6
    warmup_until_error: float = 0.0   # step: hold warmup_lr until the training error (%) falls below; 0 = off
    min_lr: float = 1e-6              # cosine floor reached at the last step
    milestones: list = field(default_factory=list)  # step: where the lr drops, in `unit`
    unit: str = "epochs"              # step: milestones in "epochs" or optimizer "steps"
    gamma: float = 0.1                # step: factor at each milestone


@dataclass
class TrainConfig:
    seed: int = 0                     # drives initialisation, data order and augmentation
    batch_per_device: int = 256       # images per device per step (repeats included)
    amp: bool = True                  # mixed precision autocast
    amp_dtype: str = "bfloat16"       # bfloat16 | float16 (float16 uses a gradient scaler)
    amp_fallback: str = "float32"     # where the device lacks native amp_dtype: "float32", or "keep" autocast
    ema: bool = False                 # exponential moving average of weights, evaluated when on
    ema_decay: float = 0.9998


@dataclass
class RunConfig:
    """Run policy: how a run is watched, saved and guarded, not what it computes. A resume or a sweep relaunch
    compares the recipe sections only, so these may change between the two."""
    eval_every: int = 1               # evaluate every N epochs (and always at the last)
    log_every: int = 50               # progress line every N steps in non-interactive logs
    keep_checkpoints: int = 0         # per-epoch checkpoints kept besides last.pt, prev.pt and best.pt
    checkpoint_every_minutes: float = 10.0  # mid-epoch checkpoint period (bounds what a kill -9 loses); 0 = off
    checkpoint_every_steps: int = 0   # mid-epoch checkpoint every N optimizer steps; 0 = off
    nonfinite: str = "stop"           # a non-finite loss: "stop" the run, or "skip" the step (syncs every step)
    deterministic: bool = False       # torch deterministic algorithms (slower)
    fast_transform: bool = True       # timm's training transform on uint8 tensors (same draws); false = timm's own
    max_bad_image_fraction: float = 0.001  # unreadable images are skipped; above this fraction the run stops
    wandb_project: str = ""           # log to this Weights & Biases project (needs wandb); "" = off


@dataclass
class Config:
    name: str = "custom"
    base: str = ""   # the recipe a layered file (`base: a2`) was built on, as the file named it; "" = complete
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    aug: AugConfig = field(default_factory=AugConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    sched: SchedConfig = field(default_factory=SchedConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    run: RunConfig = field(default_factory=RunConfig)


POLICY_SECTIONS = ("run",)  # left out when a resume or a sweep relaunch compares two configs


def recipe_values(data: dict) -> dict:
    """A config dict without its run-policy sections: what a resume or sweep relaunch must find unchanged."""
    return {k: v for k, v in data.items() if k not in POLICY_SECTIONS}


# Every field that takes one of a few names: checked when a recipe or override is read, so --print-config and a
# sweep launch reject a typo before any data is read or job submitted. model.name is checked against timm.
CHOICES = {
    "data.train_interpolation": ("bicubic", "bilinear", "nearest", "box", "hamming", "lanczos", "random"),
    "data.test_interpolation": ("bicubic", "bilinear", "nearest", "box", "hamming", "lanczos"),
    "data.dataset": ("imagenet", "cifar10"),
    "data.normalize": ("channel", "pixel_mean"),
    "loss.name": ("bce", "soft_ce"),
    "optim.name": ("lamb", "adamw", "sgd"),
    "optim.batch_rule": ("accumulate", "linear", "sqrt", "none"),
    "sched.name": ("cosine", "step"),
    "sched.unit": ("epochs", "steps"),
    "train.amp_dtype": ("bfloat16", "float16"),
    "train.amp_fallback": ("float32", "keep"),
    "run.nonfinite": ("stop", "skip"),
}


def _check_choice(path: str, value: Any) -> None:
    if path in CHOICES and value not in CHOICES[path]:
        options = CHOICES[path]
        raise UserError(f"{path} must be one of {', '.join(options)}; got {value!r} "
                        f"(did you mean '{_closest(str(value), list(options))}'?).")
    if path == "model.name":
        import timm
        if not timm.is_model(value):
            near = difflib.get_close_matches(value, timm.list_models(), n=1, cutoff=0.0)
            raise UserError(f"model.name {value!r} is not a timm model (did you mean '{near[0] if near else ''}'?"
                            f" see timm.list_models()).")


def check_config(cfg: "Config") -> None:
    """Reject values no code path can honour, with the key named (the choices are checked when read)."""
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
    need(all(isinstance(m, (int, float)) and not isinstance(m, bool) and m > 0 for m in s.milestones)
         and list(s.milestones) == sorted(s.milestones),
         f"sched.milestones must be positive numbers in increasing order, got {s.milestones}.")
    need(0 < s.gamma <= 1, f"sched.gamma must be in (0, 1], got {s.gamma:g}.")
    need(0 <= s.warmup_until_error < 100, "sched.warmup_until_error is a training error in percent, in [0, 100).")
    need(not s.warmup_until_error or not (cfg.aug.mixup_alpha or cfg.aug.cutmix_alpha),
         "sched.warmup_until_error needs Mixup and CutMix off (mixed targets have no training error).")
    need(cfg.data.val_holdout >= 0, "data.val_holdout must be 0 or more.")
    need(cfg.aug.pad_crop >= 0, "aug.pad_crop must be 0 or more.")
    if cfg.data.dataset == "cifar10":
        need(cfg.data.train_size == cfg.data.test_size == 32,
             "data.train_size and data.test_size must be 32 for data.dataset=cifar10 (its images are not resized).")
        need(not cfg.aug.rand_augment and not cfg.aug.color_jitter,
             "aug.rand_augment and aug.color_jitter are not applied to CIFAR-10 (data.dataset=cifar10); clear them.")
        need(list(cfg.aug.scale) == [1.0, 1.0] and list(cfg.aug.ratio) == [1.0, 1.0],
             "aug.scale and aug.ratio must be [1.0, 1.0] for data.dataset=cifar10 (no RandomResizedCrop there).")
    else:
        need(cfg.data.normalize == "channel",
             "data.normalize=pixel_mean is for data.dataset=cifar10 (an ImageNet mean image is not computed).")
    need(cfg.optim.lr > 0, "optim.lr must be positive.")
    need(cfg.aug.repeated_aug >= 1, "aug.repeated_aug must be 1 (off) or more.")
    need(cfg.train.batch_per_device > 0, "train.batch_per_device must be positive.")
    mixing = cfg.aug.mixup_alpha > 0 or cfg.aug.cutmix_alpha > 0
    need(not mixing or cfg.train.batch_per_device % 2 == 0,
         "train.batch_per_device must be even when Mixup or CutMix is on (timm mixes a batch with its flip).")
    need(len(cfg.aug.scale) == 2 and len(cfg.aug.ratio) == 2, "aug.scale and aug.ratio take two numbers each.")
    need(0 < cfg.data.test_crop_pct <= 1, "data.test_crop_pct must be in (0, 1].")
    need(cfg.model.num_classes > 1, "model.num_classes must be at least 2.")


def available_recipes() -> list[str]:
    return sorted(p.stem for p in RECIPE_DIR.glob("*.yaml") if p not in SAMPLE_SCALE_FILES.values())


def _field_types(cls) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _closest(key: str, options: list[str]) -> str:
    match = difflib.get_close_matches(key, options, n=1, cutoff=0.0)
    return match[0] if match else ""


def _check_value(path: str, value: Any, expected: Any) -> Any:
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


def _build(cls, data: dict, prefix: str) -> Any:
    if not isinstance(data, dict):
        raise UserError(f"section '{prefix.rstrip('.') or 'top level'}' must be a mapping, got {data!r}.")
    types = _field_types(cls)
    kwargs = {}
    for key, value in data.items():
        if key not in types:
            near = _closest(key, list(types))
            raise UserError(f"unknown key '{prefix}{key}'; did you mean '{prefix}{near}'?")
        if dataclasses.is_dataclass(types[key]):
            kwargs[key] = _build(types[key], value, f"{prefix}{key}.")
        else:
            kwargs[key] = _check_value(prefix + key, value, types[key])
            _check_choice(prefix + key, kwargs[key])
    return cls(**kwargs)


def config_from_dict(data: dict) -> Config:
    return _build(Config, data, "")


def recipe_path(name_or_path: str, relative_to: Path | None = None) -> Path:
    """A recipe name (a1, a2, ...) or a YAML file path (relative to `relative_to`, the folder of the file that
    names it as its base, else to the working folder)."""
    path = Path(name_or_path)
    if not path.suffix:
        path = RECIPE_DIR / f"{name_or_path}.yaml"
        if not path.exists():
            raise UserError(f"unknown recipe '{name_or_path}'; available: {', '.join(available_recipes())} "
                            f"or a path to a .yaml file.")
    elif relative_to is not None and not path.is_absolute():
        path = relative_to / path
    if not path.exists():
        raise UserError(f"recipe file {path} does not exist.")
    return path


def _read_recipe(path: Path, chain: tuple[Path, ...] = ()) -> dict:
    """The recipe file's values as a complete config dict: its base's values (`base:`, followed to the end)
    with the file's own on top; a file without a base must give every key."""
    if path.resolve() in chain:
        raise UserError(f"recipe {path} names itself as a base (through {' -> '.join(map(str, chain))}).")
    try:
        data = yaml.safe_load(path.read_text()) or {}  # safe loader: a recipe can never run code
    except yaml.YAMLError as e:
        raise UserError(f"recipe file {path} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise UserError(f"recipe file {path} must hold a mapping of sections, got {type(data).__name__}.")
    config_from_dict({k: v for k, v in data.items() if k != "base"})  # unknown keys and wrong types, named here
    base = data.pop("base", None)
    if base is None:
        missing = [k for k in _all_keys(Config) if k != "base" and not _has_key(data, k)]
        if missing:
            raise UserError(f"recipe file {path} has no `base:` and lacks {len(missing)} keys: "
                            f"{', '.join(missing)}; give them, or start the file with `base: a2` (or another "
                            f"recipe) to change only some values.")
        return data
    if not isinstance(base, str) or not base:
        raise UserError(f"recipe file {path}: `base:` must name a recipe (a1, a2, a3) or a .yaml file.")
    below = _read_recipe(recipe_path(base, path.parent), chain + (path.resolve(),))
    return _merged(below, {"name": path.stem, **data, "base": base})


def _has_key(data: dict, dotted: str) -> bool:
    for part in dotted.split("."):
        if not isinstance(data, dict) or part not in data:
            return False
        data = data[part]
    return True


def load_recipe(name_or_path: str) -> Config:
    """Load a recipe by name (a1, a2, a3) or from a YAML file path (complete, or `base:` plus changes)."""
    return config_from_dict(_read_recipe(recipe_path(name_or_path)))


def changed_recipe_values(old: dict, cfg: "Config") -> list[str]:
    """Dotted keys whose recipe value in `cfg` differs from the config dict `old` (run policy may change)."""
    return [f"{section}.{key}" for section, values in recipe_values(to_dict(cfg)).items() if isinstance(values, dict)
            for key in values if old.get(section, {}).get(key) != values[key]]


def sample_scale(dataset: str = "imagenet") -> dict:
    """The sample-scale overlay of the data set's built-in sample (recipes/sample_scale.yaml, or
    sample_scale_cifar10.yaml): {section: {key: value}}, applied over any recipe when no data is given."""
    return yaml.safe_load(SAMPLE_SCALE_FILES[dataset].read_text())


def describe_overlay(overlay: dict) -> str:
    return " ".join(f"{section}.{key}={value}" for section, values in overlay.items() for key, value in values.items())


def _merged(base: dict, overlay: dict) -> dict:
    out = dict(base)
    for key, value in overlay.items():
        out[key] = _merged(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return out


def build_config(recipe: str, overrides: list[str], sample: bool) -> "Config":
    """The recipe, the sample-scale overlay (merged as data, checked like a recipe file) when no data is given,
    then the command line's overrides; the whole checked for consistency."""
    cfg = load_recipe(recipe)
    if sample:  # the overlay of the data set the run ends up with, overrides included
        dataset = apply_overrides(cfg, overrides).data.dataset
        cfg = config_from_dict(_merged(to_dict(cfg), sample_scale(dataset)))
    cfg = apply_overrides(cfg, overrides)
    check_config(cfg)
    return cfg


def _all_keys(cls, prefix: str = "") -> list[str]:
    keys = []
    for name, typ in _field_types(cls).items():
        if dataclasses.is_dataclass(typ):
            keys += _all_keys(typ, f"{prefix}{name}.")
        else:
            keys.append(prefix + name)
    return keys


def apply_overrides(cfg: Config, overrides: list[str]) -> Config:
    """Return a new Config with dotted `section.key=value` overrides applied (values parsed as YAML)."""
    data = to_dict(cfg)
    valid = _all_keys(Config)
    for item in overrides:
        if "=" not in item:
            raise UserError(f"override '{item}' must look like section.key=value, e.g. optim.lr=4e-3.")
        key, raw = item.split("=", 1)
        key = key.strip()
        if key not in valid:
            raise UserError(f"unknown key '{key}'; did you mean '{_closest(key, valid)}'?")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""  # `key=` sets an empty string (e.g. RandAugment off)
        except yaml.YAMLError:
            value = raw
        node = data
        *parents, leaf = key.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return config_from_dict(data)


def to_dict(cfg: Config) -> dict:
    return dataclasses.asdict(cfg)


def to_yaml(data: dict) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
