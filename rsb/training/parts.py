"""The parts one training run is made of, built from the resolved config: the model (and its EMA), optimizer,
schedule, gradient scaler, loss, loaders and on-device batch preparation; and how those parts go into a
checkpoint and come back out of one."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from rsb.run.record import CheckpointRecord
from rsb.config.schema import Config
from rsb.data import seeds
from rsb.data.batch import DeviceBatch
from rsb.data.families.registry import family
from rsb.data.loader import TrainLoader
from rsb.runtime.distributed import DistContext
from rsb.training.loss import create_loss
from rsb.models.factory import create_model, load_state_dict_checked, prepare_model, unwrap, wrap_for_training
from rsb.runtime.precision import Precision
from rsb.training.optim import clips_gradients_itself, create_optimizer, create_schedule
from rsb.training.plan import Derived


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
    average_bn_stats: bool = False      # train.average_bn_stats: timm's --dist-bn reduce at each epoch's end

    def wrap(self, dist: DistContext, compile: bool) -> None:
        """DDP and torch.compile, after a resume has loaded the plain model's weights."""
        self.model = wrap_for_training(self.model, dist.device, dist.distributed, compile)

    def end_epoch(self, dist: DistContext) -> None:
        """At an epoch's end, before it is evaluated and saved: with train.average_bn_stats, every process's
        batch-norm running means and variances (the model's and its EMA's) become their mean over the processes,
        as timm's train.py did with --dist-bn reduce (timm.utils.distribute_bn). Without it, rank 0's reach every
        process through DDP's broadcast of buffers at each forward (evaluation's too), and checkpoints hold rank
        0's."""
        if self.average_bn_stats and dist.distributed:
            from timm.utils import distribute_bn
            distribute_bn(self.model, dist.world_size, reduce=True)
            if self.ema is not None:
                distribute_bn(self.ema.module, dist.world_size, reduce=True)

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
    train_idx, val_idx: the training set and val set the run's dataset family opened (Family.open)."""
    device = dist.device
    set_determinism(cfg.run.deterministic, device)
    seeds.seed_generators(cfg.train.seed)
    model = prepare_model(create_model(cfg.model), device, cfg.model.channels_last)
    ema = None
    if cfg.train.ema:
        from timm.utils import ModelEmaV3
        ema = ModelEmaV3(model, decay=cfg.train.ema_decay)
    optimizer = create_optimizer(model, cfg.optim, derived.lr)
    fam = family(cfg)
    mean_image = fam.mean_image(cfg, train_idx)
    train_loader = TrainLoader(cfg, train_idx.dataset, dist.rank, dist.world_size, fam.loader_workers(workers),
                               pin_memory=device.type == "cuda", lanes=derived.sampler_lanes)
    val_loader = fam.eval_loader(cfg, val_idx, workers=workers, rank=dist.rank, world=dist.world_size)
    return TrainingParts(
        model=model, ema=ema, optimizer=optimizer,
        schedule=create_schedule(cfg.sched, derived.lr, derived.total_steps, derived.warmup_steps,
                                 derived.steps_per_epoch, lr_scale=derived.lr_scale),
        scaler=torch.amp.GradScaler(device.type) if prec.needs_scaler else None,
        clip=None if clips_gradients_itself(optimizer) else cfg.optim.max_grad_norm,
        loss_fn=create_loss(cfg.loss, cfg.model.num_classes),
        train_loader=train_loader, val_loader=val_loader,
        prep_train=DeviceBatch(device, cfg.model.channels_last, cfg.aug, cfg.model.num_classes,
                               mean_image=mean_image, flip_on_device=fam.augments_on_device),
        prep_eval=DeviceBatch(device, cfg.model.channels_last, mean_image=mean_image), pixel_mean=mean_image,
        average_bn_stats=cfg.train.average_bn_stats)
