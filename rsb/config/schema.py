"""The schema of a run's configuration: one dataclass per recipe section, run policy apart; the fields that take
one of a few names; a config as a plain dict and as YAML.

A recipe is a complete YAML file whose sections match these dataclasses (rsb.config.load reads it, rsb.config.checks
checks it).
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Optional

import yaml


@dataclass
class ModelConfig:
    name: str = "resnet50"            # timm model name
    num_classes: int = 1000
    drop_rate: float = 0.0            # dropout before the classifier
    drop_path_rate: float = 0.0       # stochastic depth rate (linearly increasing over blocks, timm's rule)
    channels_last: bool = True
    compile: bool = False             # torch.compile the model
    # timm's ResNet family: the last batch-norm scale of each residual block starts at 0 (true, timm's default)
    # or 1 (false, torchvision's zero_init_residual=False); null: the model's own, nothing passed
    zero_init_last: Optional[bool] = None


@dataclass
class DataConfig:
    dataset: str = "imagenet"         # the dataset family (rsb.data.families): imagenet | cifar10
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
                                      # step; cosine_per_epoch: timm 2021's per-epoch cosine, warmup inside it,
                                      # then cooldown_epochs at min_lr; step: lr divided by 1/gamma at each
                                      # milestone (rsb.training.optim)
    epochs: int = 300                 # run length; 0 when max_steps gives it
    max_steps: int = 0                # run length in optimizer steps (its last epoch cut short); 0 = epochs
    warmup_epochs: float = 5.0        # cosine: linear warmup from warmup_lr; step: warmup_lr held constant
    warmup_lr: float = 1e-6
    warmup_until_error: float = 0.0   # step: hold warmup_lr until the training error (%) falls below; 0 = off
    min_lr: float = 1e-6              # cosine floor reached at the last step
    cooldown_epochs: int = 0          # cosine_per_epoch: epochs at min_lr after the cosine's sched.epochs
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
    average_bn_stats: bool = False    # true: batch-norm running stats averaged over processes at each epoch's end
                                      # (timm's --dist-bn reduce); false: rank 0's, broadcast by DDP


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


# Every field that takes one of a few names: checked when a recipe or override is read, so --print-config and a
# sweep launch reject a typo before any data is read or job submitted. model.name is checked against timm when
# read (rsb.config.checks); data.dataset against the dataset families when the run's config is built
# (rsb.data.families.registry, through rsb.training.run_config).
CHOICES = {
    "data.train_interpolation": ("bicubic", "bilinear", "nearest", "box", "hamming", "lanczos", "random"),
    "data.test_interpolation": ("bicubic", "bilinear", "nearest", "box", "hamming", "lanczos"),
    "data.normalize": ("channel", "pixel_mean"),
    "loss.name": ("bce", "soft_ce"),
    "optim.name": ("lamb", "adamw", "sgd"),
    "optim.batch_rule": ("accumulate", "linear", "sqrt", "none"),
    "sched.name": ("cosine", "cosine_per_epoch", "step"),
    "sched.unit": ("epochs", "steps"),
    "train.amp_dtype": ("bfloat16", "float16"),
    "train.amp_fallback": ("float32", "keep"),
    "run.nonfinite": ("stop", "skip"),
}


def recipe_values(data: dict) -> dict:
    """A config dict without its run-policy sections: what a resume or sweep relaunch must find unchanged."""
    return {k: v for k, v in data.items() if k not in POLICY_SECTIONS}


def changed_recipe_values(old: dict, cfg: Config) -> list[str]:
    """Dotted keys whose recipe value in `cfg` differs from the config dict `old` (run policy may change). A key
    `old` lacks (written before the key existed) counts as the schema's default, which is what that run did."""
    default = to_dict(Config())
    return [f"{section}.{key}" for section, values in recipe_values(to_dict(cfg)).items() if isinstance(values, dict)
            for key in values if old.get(section, {}).get(key, default[section][key]) != values[key]]


def field_types(cls) -> dict[str, Any]:
    """A dataclass's field names and their types (a section's dataclass for a section)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def all_keys(cls=None, prefix: str = "") -> list[str]:
    """Every dotted key of the config (of `cls`'s fields below `prefix`): model.name, data.dataset, ..."""
    keys = []
    for name, typ in field_types(cls or Config).items():
        if dataclasses.is_dataclass(typ):
            keys += all_keys(typ, f"{prefix}{name}.")
        else:
            keys.append(prefix + name)
    return keys


def to_dict(cfg: Config) -> dict:
    return dataclasses.asdict(cfg)


def to_yaml(data: dict) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
