"""The parts one training run is made of, built from the resolved config: the model (and its EMA), optimizer,
schedule, gradient scaler, loss, loaders and on-device batch preparation; and how those parts go into a
checkpoint and come back out of one."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from rsb.run.record import CheckpointRecord
from rsb.config import SAMPLE_SCALE_FILES, Config, describe_overlay, sample_scale
from rsb.data.cifar import looks_like_cifar as cifar_like
from rsb.data import seeds
from rsb.data.batch import DeviceBatch
from rsb.data.loader import TrainLoader, eval_loader, imagenet_splits
from rsb.data.sample import ensure_sample_dataset
from rsb.runtime.distributed import DistContext
from rsb.errors import UserError
from rsb.training.loss import create_loss
from rsb.models.factory import create_model, load_state_dict_checked, prepare_model, unwrap, wrap_for_training
from rsb.runtime.precision import Precision
from rsb.training.optim import clips_gradients_itself, create_optimizer, create_schedule
from rsb.training.plan import Derived


def open_training_data(root: Path | None, cfg: Config, log, val_labels: Path | None = None):
    """The train and val sets of --data, or of the built-in sample data (which runs at the sample scale): the
    sources of an ImageNet layout (rsb.data.layout), or CIFAR-10's arrays (data.dataset=cifar10, rsb.data.cifar)."""
    num_classes, dataset = cfg.model.num_classes, cfg.data.dataset
    if root is None:
        from rsb.data import cifar
        where = cifar.ensure_cifar_sample() if dataset == "cifar10" else ensure_sample_dataset()
        log(f"no --data given: built-in sample data at {where} (10 classes), at the sample scale of "
            f"{SAMPLE_SCALE_FILES[dataset].name}: {describe_overlay(sample_scale(dataset))}")
        root = None if dataset == "cifar10" else where
    if dataset == "cifar10":
        return _cifar_sets(root, cfg, log)
    if root is not None and Path(root).exists() and cifar_like(root):
        raise UserError(f"{root} looks like CIFAR-10, but the recipe reads an ImageNet folder; use --recipe "
                        f"cifar10_resnet (or set data.dataset=cifar10).")
    train_idx, val_idx = imagenet_splits(root, val_labels)
    if train_idx.num_classes != num_classes:
        raise UserError(f"the training data in {root} has {train_idx.num_classes} classes but model.num_classes "
                        f"is {num_classes}; set model.num_classes={train_idx.num_classes}.")
    return train_idx, val_idx


def _cifar_sets(root, cfg: Config, log):
    from rsb.data.cifar import NUM_CLASSES, open_cifar10
    if cfg.model.num_classes != NUM_CLASSES:
        raise UserError(f"CIFAR-10 has {NUM_CLASSES} classes but model.num_classes is {cfg.model.num_classes}; "
                        f"set model.num_classes={NUM_CLASSES}.")
    train, val = open_cifar10(root, cfg.data.val_holdout)
    log(f"CIFAR-10: {len(train)} train images, val: {len(val)} images of {val.where}")
    return train, val


def set_determinism(deterministic: bool, device: torch.device) -> None:
    """Deterministic kernels for runs that must repeat bit for bit; else let cuDNN pick the fastest ones."""
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True


@dataclass
class TrainingParts:
    model: torch.nn.Module              # the unwrapped timm model until wrap() is called
    ema: object | None                  # timm's ModelEmaV3 when train.ema
    optimizer: torch.optim.Optimizer
    schedule: object                    # rsb.training.optim's WarmupCosine or StepDecay
    scaler: torch.amp.GradScaler | None  # float16 only
    clip: float | None                  # None where the optimizer clips itself (timm's Lamb)
    loss_fn: torch.nn.Module
    train_loader: TrainLoader
    val_loader: torch.utils.data.DataLoader
    prep_train: DeviceBatch
    prep_eval: DeviceBatch
    pixel_mean: torch.Tensor | None = None  # CIFAR-10's per-pixel mean image: stored so a checkpoint scores alone

    def wrap(self, dist: DistContext, compile: bool) -> None:
        """DDP and torch.compile, after a resume has loaded the plain model's weights."""
        self.model = wrap_for_training(self.model, dist.device, dist.distributed, compile)

    def state_dict(self) -> dict:
        """The learned state of the parts, as rsb.run.record.CheckpointRecord fields."""
        return {"model": unwrap(self.model).state_dict(), "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler else None,
                "ema": self.ema.module.state_dict() if self.ema else None,
                "schedule": self.schedule.state_dict(), "pixel_mean": self.pixel_mean}

    def load_state_dict(self, record: CheckpointRecord) -> None:
        load_state_dict_checked(unwrap(self.model), record.model, f"checkpoint {record.path}")
        record.check_resumable()  # after the weights, so that a checkpoint of another model is named as such
        self.optimizer.load_state_dict(record.optimizer)
        if self.scaler is not None and record.scaler:
            self.scaler.load_state_dict(record.scaler)
        if self.ema is not None and record.ema:
            self.ema.module.load_state_dict(record.ema)
        self.schedule.load_state_dict(record.schedule or {})

    def weights_finite(self) -> bool:
        return all(torch.isfinite(p).all() for p in unwrap(self.model).parameters())


def build_parts(cfg: Config, derived: Derived, prec: Precision, dist: DistContext, train_idx, val_idx,
                workers: int) -> TrainingParts:
    """Every part of a run; seeded by train.seed first, so every process starts from the same weights.
    train_idx, val_idx: what open_training_data gives (folder indexes, or CIFAR-10 arrays)."""
    device = dist.device
    set_determinism(cfg.run.deterministic, device)
    seeds.seed_generators(cfg.train.seed)
    model = prepare_model(create_model(cfg.model), device, cfg.model.channels_last)
    ema = None
    if cfg.train.ema:
        from timm.utils import ModelEmaV3
        ema = ModelEmaV3(model, decay=cfg.train.ema_decay)
    optimizer = create_optimizer(model, cfg.optim, derived.lr)
    arrays = cfg.data.dataset == "cifar10"
    if arrays:  # in memory: no loader workers, the augmentation and the mean image on the device
        from rsb.data.cifar import array_eval_loader
        mean_image = train_idx.mean_image() if cfg.data.normalize == "pixel_mean" else None
        train_loader = TrainLoader(cfg, None, dist.rank, dist.world_size, 0, pin_memory=device.type == "cuda",
                                   accum_steps=derived.accum_steps, dataset=train_idx)
        val_loader = array_eval_loader(val_idx, cfg.train.batch_per_device, rank=dist.rank, world=dist.world_size)
    else:
        mean_image = None
        train_loader = TrainLoader(cfg, train_idx, dist.rank, dist.world_size, workers,
                                   pin_memory=device.type == "cuda", accum_steps=derived.accum_steps)
        val_loader = eval_loader(val_idx, cfg.data.test_size, cfg.data.test_crop_pct, cfg.data.test_interpolation,
                                 cfg.train.batch_per_device, workers, rank=dist.rank, world=dist.world_size)
    return TrainingParts(
        model=model, ema=ema, optimizer=optimizer,
        schedule=create_schedule(cfg.sched, derived.lr, derived.total_steps, derived.warmup_steps,
                                 derived.steps_per_epoch, lr_scale=derived.lr / cfg.optim.lr),
        scaler=torch.amp.GradScaler(device.type) if prec.needs_scaler else None,
        clip=None if clips_gradients_itself(optimizer) else cfg.optim.max_grad_norm,
        loss_fn=create_loss(cfg.loss, cfg.model.num_classes),
        train_loader=train_loader, val_loader=val_loader,
        prep_train=DeviceBatch(device, cfg.model.channels_last, cfg.aug, cfg.model.num_classes,
                               mean_image=mean_image, flip_on_device=arrays),
        prep_eval=DeviceBatch(device, cfg.model.channels_last, mean_image=mean_image), pixel_mean=mean_image)
