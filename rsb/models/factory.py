"""Model creation through timm; state_dict keys stay those of timm's model, so weights load into timm as is."""
from __future__ import annotations

import timm
import torch

from rsb.config.schema import ModelConfig
from rsb.errors import UserError


def param_count_millions(model: torch.nn.Module) -> float:
    """Parameters in millions, rounded to 2 decimals, as timm's results files give param_count."""
    return round(sum(p.numel() for p in model.parameters()) / 1e6, 2)


def create_model(cfg: ModelConfig) -> torch.nn.Module:
    """timm's model; model.zero_init_last, when set, is passed as timm's zero_init_last (timm's ResNets default to
    true; torchvision's resnet50 starts every batch-norm scale at 1, as false does)."""
    switch = {} if cfg.zero_init_last is None else {"zero_init_last": cfg.zero_init_last}
    try:
        model = timm.create_model(cfg.name, pretrained=False, num_classes=cfg.num_classes,
                                  drop_rate=cfg.drop_rate, drop_path_rate=cfg.drop_path_rate, **switch)
    except RuntimeError as e:
        if "Unknown model" in str(e):
            raise UserError(f"model.name '{cfg.name}' is not a timm model (see timm.list_models()).") from None
        raise
    except TypeError as e:
        if "zero_init_last" not in str(e):
            raise
        model = None
    # A model that takes no such switch may refuse it (TypeError) or swallow it (rsb's CIFAR nets): both are
    # refused, as neither honours it. timm's blocks that honour it have a zero_init_last() method.
    if switch and (model is None or not any(callable(getattr(m, "zero_init_last", None)) for m in model.modules())):
        raise UserError(f"model.zero_init_last applies to models whose residual blocks can start their last "
                        f"batch-norm at zero (timm's ResNet family); {cfg.name} has no such switch: set "
                        f"model.zero_init_last=null.")
    return model


def prepare_model(model: torch.nn.Module, device: torch.device, channels_last: bool) -> torch.nn.Module:
    """On the device, in channels_last when asked (NHWC: what cuDNN's and oneDNN's fastest convolutions take);
    training and scoring prepare a model the same way."""
    model = model.to(device)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def wrap_for_training(model: torch.nn.Module, device: torch.device, distributed: bool,
                      compile: bool) -> torch.nn.Module:
    """DistributedDataParallel across processes, then torch.compile when asked (compiling the DDP wrapper lets
    the compiler see the gradient buckets' hooks)."""
    if distributed:
        ids = [device.index] if device.type == "cuda" else None
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
    return torch.compile(model) if compile else model


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain timm module inside DDP and torch.compile wrappers."""
    while True:
        if hasattr(model, "module"):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def load_state_dict_checked(model: torch.nn.Module, state: dict, source: str) -> None:
    """Load weights, turning a mismatch (a checkpoint of another model or class count) into one sentence."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        detail = (f"{len(missing)} missing keys, {len(unexpected)} unexpected keys, "
                  f"{len(wrong)} shape mismatches (e.g. {(wrong or missing or unexpected)[0]})")
        raise UserError(f"{source} holds weights of another model than {type(model).__name__} "
                        f"with these settings: {detail}.")
    model.load_state_dict(state)
