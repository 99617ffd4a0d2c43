"""What to score: checkpoint files from paths, globs or run folders, or a timm model with local weights; each
turned into a model plus the test settings it is evaluated with.

Why the settings come from the checkpoint: a run records the recipe's test resolution, crop ratio and
interpolation, and scoring it any other way would not measure the recipe. A timm model with weights is scored
with its own pretrained config (size, crop, interpolation, mean, std), as timm scores it. Command-line values
override either.
"""
from __future__ import annotations

import glob
from dataclasses import dataclass, field
from pathlib import Path

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, resolve_data_config

from rsb.run import folder as run_folder
from rsb.run.record import CheckpointRecord
from rsb.config.schema import DataConfig, ModelConfig
from rsb.errors import UserError
from rsb.models.factory import create_model, load_state_dict_checked

# timm's published evaluation of the RSB weights (and the recipes' test settings): 224, crop 0.95, bicubic.
DEFAULT_SIZE, DEFAULT_CROP, DEFAULT_INTERPOLATION = 224, 0.95, "bicubic"
RUN_FOLDER_FILES = (run_folder.LAST, run_folder.BEST)


@dataclass
class EvalSettings:
    size: int = DEFAULT_SIZE
    crop_pct: float = DEFAULT_CROP
    interpolation: str = DEFAULT_INTERPOLATION
    mean: tuple[float, ...] = IMAGENET_DEFAULT_MEAN  # normalisation on the 0..1 scale, as timm gives it
    std: tuple[float, ...] = IMAGENET_DEFAULT_STD

    def overridden(self, size=None, crop_pct=None, interpolation=None, mean=None, std=None) -> "EvalSettings":
        """These settings with every value that is given (not None) replaced."""
        return EvalSettings(size or self.size, crop_pct or self.crop_pct, interpolation or self.interpolation,
                            tuple(mean) if mean is not None else self.mean,
                            tuple(std) if std is not None else self.std)

    def __str__(self) -> str:
        return (f"{self.size} px, crop {self.crop_pct}, {self.interpolation}, mean {_floats(self.mean)}, "
                f"std {_floats(self.std)}")


def _floats(values) -> str:
    return "(" + ", ".join(f"{v:g}" for v in values) + ")"


@dataclass
class Scorable:
    """One model to score and what the results table says about it."""
    source: Path
    model: torch.nn.Module
    num_classes: int
    settings: EvalSettings
    amp_dtype: str | None = None          # the run's autocast dtype ("bfloat16", "float16") or None
    channels_last: bool = True
    meta: dict = field(default_factory=dict)  # run, recipe, model, epoch, seed for the table
    dataset: str = DataConfig.dataset     # the run's data.dataset: which sets it is scored on
    pixel_mean: torch.Tensor | None = None  # CIFAR-10 runs with data.normalize=pixel_mean: the mean image


def expand(specs: list[str]) -> list[Path]:
    """Checkpoint files named by paths, globs and run folders (a folder gives its last.pt and best.pt), in the
    order given, without repeats. Anything that names no checkpoint is a UserError."""
    found: list[Path] = []

    def from_folder(folder: Path) -> list[Path]:
        files = [folder / n for n in RUN_FOLDER_FILES if (folder / n).is_file()]
        if not files:
            raise UserError(f"run folder {folder} has no {' or '.join(RUN_FOLDER_FILES)}.")
        return files

    for spec in specs:
        if any(ch in spec for ch in "*?["):
            matches = [Path(m) for m in sorted(glob.glob(spec, recursive=True))]
            paths = [p for m in matches for p in (from_folder(m) if m.is_dir() else [m]) if p.is_file()]
            if not paths:
                raise UserError(f"no checkpoints matched '{spec}'.")
        else:
            p = Path(spec)
            if p.is_dir():
                paths = from_folder(p)
            elif not p.is_file():
                raise UserError(f"checkpoint {p} does not exist.")
            else:
                paths = [p]
        found += [p for p in paths if p not in found]
    return found


def sources(checkpoint_specs: list[str], weights: Path | None = None, model_name: str | None = None,
            num_classes: int = 1000, ema: bool = False):
    """A loader per thing to score, called one at a time, so one model is in memory at a time: each checkpoint
    the specs name (expand), then the --weights file."""
    if not checkpoint_specs and weights is None:
        raise UserError("give at least one checkpoint (a file, glob or run folder) or --weights FILE.")
    if model_name and weights is None:
        raise UserError("--model needs --weights FILE (weights are never downloaded).")
    paths = expand(checkpoint_specs) if checkpoint_specs else []
    loaders = [lambda path=path: from_checkpoint(path, ema=ema) for path in paths]
    if weights is not None:
        loaders.append(lambda: from_weights(model_name or "resnet50", Path(weights), num_classes))
    return loaders


def settings_from_config(config: dict) -> EvalSettings:
    data = config.get("data") or {}
    return EvalSettings(int(data.get("test_size", DEFAULT_SIZE)), float(data.get("test_crop_pct", DEFAULT_CROP)),
                        str(data.get("test_interpolation", DEFAULT_INTERPOLATION)))


def from_checkpoint(path: Path, ema: bool = False) -> Scorable:
    record = CheckpointRecord.read(path)
    config = record.config or {}
    mcfg = config.get("model") or {}
    name = mcfg.get("name") or record.model_name or "resnet50"
    num_classes = int(mcfg.get("num_classes", 1000))
    weights = record.ema if ema else record.model
    if weights is None:  # EMA weights asked for, but the run kept none
        raise UserError(f"checkpoint {path} holds no EMA weights (its run had train.ema=false).")
    model = create_model(ModelConfig(name=name, num_classes=num_classes))
    load_state_dict_checked(model, weights, f"checkpoint {path}")
    train = config.get("train") or {}
    amp = str(train.get("amp_dtype", "bfloat16")) if train.get("amp", True) else None
    # "epoch" counts completed epochs (a mid-epoch checkpoint also records its step within the next one).
    meta = {"run": path.parent.name, "recipe": config.get("name"), "model": name, "epoch": record.epoch,
            "seed": train.get("seed"), "epoch_step": record.epoch_step or 0}
    dataset = str((config.get("data") or {}).get("dataset", DataConfig.dataset))
    return Scorable(path, model, num_classes, settings_from_config(config), amp,
                    bool(mcfg.get("channels_last", True)), meta, dataset, record.pixel_mean)


def load_weights_file(path: Path) -> dict:
    """A timm-format state_dict from .safetensors (safetensors if installed) or a torch file, loaded without
    running code (weights_only=True). A {"state_dict": ...} or {"model": ...} wrapper and DDP's "module."
    prefix are accepted."""
    if not path.is_file():
        raise UserError(f"weights file {path} does not exist.")
    try:
        if path.suffix == ".safetensors":
            try:
                from safetensors.torch import load_file
            except ImportError:
                raise UserError(f"{path} is a safetensors file but the safetensors package is not installed "
                                f"(pip install safetensors).") from None
            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except UserError:
        raise
    except Exception as e:  # truncated file, not a weights file, or objects weights_only refuses
        raise UserError(f"weights file {path} cannot be read ({type(e).__name__}); it is corrupt or not a "
                        f"state_dict.") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"weights file {path} does not hold a state_dict of tensors.")
    return {k.removeprefix("module."): v for k, v in state.items()}


def settings_from_pretrained_cfg(model: torch.nn.Module) -> EvalSettings:
    """The test settings timm gives the model (its pretrained_cfg, resolved by timm.data.resolve_data_config):
    the cfg's input_size and crop_pct (the resolution it was published at; timm's validate.py prefers a
    test_input_size where the cfg has one, which --img-size and --crop-pct give here)."""
    cfg = resolve_data_config({}, model=model)
    # input_size is (channels, height, width); classifiers' cfgs are square, and the eval transform crops squares
    return EvalSettings(int(cfg["input_size"][-1]), float(cfg["crop_pct"]), str(cfg["interpolation"]),
                        tuple(cfg["mean"]), tuple(cfg["std"]))


def from_weights(model_name: str, path: Path, num_classes: int = 1000) -> Scorable:
    """A timm model with weights from a local file, scored with the model's own pretrained config."""
    model = create_model(ModelConfig(name=model_name, num_classes=num_classes))
    load_state_dict_checked(model, load_weights_file(path), f"weights file {path}")
    amp = "bfloat16"
    meta = {"run": path.parent.name, "recipe": None, "model": model_name, "epoch": None, "seed": None}
    return Scorable(path, model, num_classes, settings_from_pretrained_cfg(model), amp, True, meta)
