"""One training run from a config: data, model, optimizer, the epoch loop, checkpoints and run outputs."""
from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import timm
import torch

from rsb import checkpoint, distributed, precision, runfolder
from rsb.config import (SAMPLE_SCALE_FILE, Config, changed_recipe_values, describe_overlay, sample_scale, to_dict,
                        to_yaml)
from rsb.data.batch import DeviceBatch
from rsb.data.loader import TrainLoader, eval_loader, imagenet_splits
from rsb.data.sample import ensure_sample_dataset
from rsb.data.sampler import seed_for
from rsb.engine import NonFiniteLoss, evaluate, train_one_epoch
from rsb.errors import UserError
from rsb.loss import create_loss
from rsb.model import create_model, load_state_dict_checked, prepare_model, unwrap, wrap_for_training
from rsb.optim import WarmupCosine, clips_gradients_itself, create_optimizer
from rsb.resolve import derived_dict, resolve, resolved_document, startup_lines
from rsb.data.folder import check_bad_images
from rsb.runlog import MetricsLog, Progress, epoch_row, plot_curves, run_summary


@dataclass
class RunEnv:
    """The environment of a run (from command-line flags), as opposed to the recipe."""
    data: Path | None = None          # None: the built-in sample data at sample scale
    output: Path | None = None
    workers: int = 4
    device: str = "auto"
    resume: Path | None = None
    quiet: bool = False


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Trainer:
    def __init__(self, cfg: Config, env: RunEnv):
        self.cfg, self.env = cfg, env
        self.dist = distributed.init(env.device)
        self.main = self.dist.is_main
        self.out = Path(env.output)
        self.stop = distributed.StopFlag()
        run = cfg.run
        self.ckpts = checkpoint.CheckpointManager(self.out, run.keep_checkpoints, run.checkpoint_every_minutes,
                                                  run.checkpoint_every_steps, enabled=self.main)
        self.last_val: dict = {}                # the latest evaluation, for summary.json

    def _environment(self) -> dict:
        env = self.env
        return {"data": str(env.data) if env.data else "built-in sample data", "device": env.device,
                "torch": str(torch.__version__), "timm": str(timm.__version__)}

    def log(self, msg: str) -> None:
        if self.main and not self.env.quiet:
            print(msg, flush=True)

    # ---- set-up -------------------------------------------------------------------------------------------
    def _data(self):
        root = self.env.data
        if root is None:
            root = ensure_sample_dataset()
            self.log(f"no --data given: built-in sample data at {root} (10 classes), at the sample scale of "
                     f"{SAMPLE_SCALE_FILE.name}: {describe_overlay(sample_scale())}")
        train_idx, val_idx = imagenet_splits(root)
        if len(train_idx.classes) != self.cfg.model.num_classes:
            raise UserError(f"{root}/train has {len(train_idx.classes)} classes but model.num_classes is "
                            f"{self.cfg.model.num_classes}; set model.num_classes={len(train_idx.classes)}.")
        return train_idx, val_idx

    def setup(self) -> None:
        cfg, d = self.cfg, self.dist
        train_idx, val_idx = self._data()
        self.precision = precision.for_config(cfg.train, d.device)
        self.derived = resolve(cfg, d.world_size, len(train_idx), self.precision)
        if cfg.run.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
        elif d.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        _seed_everything(cfg.train.seed)  # same initial weights on every process
        model = prepare_model(create_model(cfg.model), d.device, cfg.model.channels_last)
        self.model = model
        self.ema = None
        if cfg.train.ema:
            from timm.utils import ModelEmaV3
            self.ema = ModelEmaV3(model, decay=cfg.train.ema_decay)
        self.optimizer = create_optimizer(model, cfg.optim, self.derived.lr)
        self.schedule = WarmupCosine(cfg.sched, self.derived.lr, self.derived.total_steps,
                                     self.derived.warmup_steps)
        self.scaler = torch.amp.GradScaler(d.device.type) if self.precision.needs_scaler else None
        self.clip = None if clips_gradients_itself(self.optimizer) else cfg.optim.max_grad_norm
        self.loss_fn = create_loss(cfg.loss, cfg.model.num_classes)
        workers = self.env.workers
        self.train_loader = TrainLoader(cfg, train_idx, d.rank, d.world_size, workers,
                                        pin_memory=d.device.type == "cuda", accum_steps=self.derived.accum_steps)
        self.val_loader = eval_loader(val_idx, cfg.data.test_size, cfg.data.test_crop_pct,
                                      cfg.data.test_interpolation, cfg.train.batch_per_device, workers,
                                      rank=d.rank, world=d.world_size)
        self.prep_train = DeviceBatch(d.device, cfg.model.channels_last, cfg.aug, cfg.model.num_classes)
        self.prep_eval = DeviceBatch(d.device, cfg.model.channels_last)
        self.state = checkpoint.TrainState()
        self.metrics = MetricsLog(self.out, enabled=self.main)
        self._maybe_resume()
        self.model = wrap_for_training(model, d.device, d.distributed, cfg.model.compile)

    def _maybe_resume(self) -> None:
        if self.env.resume is not None:
            path, ckpt = self.env.resume, checkpoint.load(self.env.resume)
        else:
            found = self.ckpts.find_resume()  # last.pt, or an older one if it is unreadable
            if found is None:
                return
            path, ckpt = found
        load_state_dict_checked(self.model, ckpt["model"], f"checkpoint {path}")
        changed = changed_recipe_values(ckpt.get("config", {}), self.cfg)
        if changed:
            self.log(f"warning: resuming {path} with settings that differ from its run: {', '.join(changed)}")
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.scaler is not None and ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        if self.ema is not None and (ema := checkpoint.ema_state(ckpt)):
            self.ema.module.load_state_dict(ema)
        self.state = st = checkpoint.TrainState.from_checkpoint(ckpt)
        if ckpt.get("rng"):
            checkpoint.set_rng_state(ckpt["rng"])
        self.metrics.truncate_after(st.epoch)
        where = f"epoch {st.epoch + 1}" + (f", step {st.epoch_step}" if st.epoch_step else "")
        self.log(f"resumed from {path}: continuing at {where} (global step {st.step})")

    # ---- checkpoints ----------------------------------------------------------------------------------------
    def _checkpoint(self) -> dict:
        return {
            "model": unwrap(self.model).state_dict(), "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler else None,
            "state_dict_ema": self.ema.module.state_dict() if self.ema else None, **self.state.as_dict(),
            "config": to_dict(self.cfg), "derived": derived_dict(self.derived), "rng": checkpoint.rng_state(),
            "model_name": self.cfg.model.name, "format": "rsb-1",
        }

    def save(self, is_best: bool = False) -> None:
        """Checkpoint the run where self.state says it is (an epoch's end when epoch_step is 0)."""
        if self.main and not all(torch.isfinite(p).all() for p in unwrap(self.model).parameters()):
            raise NonFiniteLoss(self.state.step)  # never save non-finite weights
        self.ckpts.save(self._checkpoint() if self.main else {}, epoch_end=self.state.epoch_step == 0,
                        is_best=is_best)

    # ---- the loop -------------------------------------------------------------------------------------------
    def _after_step(self, steps_done: int) -> bool:
        """After each optimizer step: advance the state, a mid-epoch checkpoint when due (the epoch's end has its
        own); True when a signal asks to stop."""
        self.state.advance()
        if self.state.epoch_step < self.derived.steps_per_epoch and self.ckpts.due(self.state.step):
            self.save()
        return self.stop.agreed(self.dist)

    def run(self) -> dict:
        cfg, d, der = self.cfg, self.dist, self.derived
        if self.main:
            self.out.mkdir(parents=True, exist_ok=True)
            runfolder.remove_stale_temporaries(self.out)  # left by a write that was killed
            doc = resolved_document(cfg, der, self._environment())
            runfolder.write_text(self.out / runfolder.RESOLVED, to_yaml(doc))
        for line in startup_lines(cfg, der, d.device.type, self.out):
            self.log(line)
        st = self.state
        if st.epoch >= cfg.sched.epochs:
            self.log("this run has already finished; nothing to do (use another --output for a new run)")
            return self._summary(0.0)
        amp = self.precision.dtype
        seen_total, skipped_total = 0, 0
        started = time.perf_counter()
        self.ckpts.restart_clock()
        self.stop.install()
        try:
            for epoch in range(st.epoch, cfg.sched.epochs):
                if st.epoch_step == 0:  # a mid-epoch resume keeps the RNG state saved with the checkpoint
                    _seed_everything(seed_for(cfg.train.seed, epoch, d.rank))
                first = st.epoch_step * der.accum_steps * der.batch_per_device
                batches = self.train_loader.epoch(epoch, start_sample=first)
                progress = Progress(self.main and not self.env.quiet, der.total_steps, st.step,
                                    cfg.run.log_every, epoch, cfg.sched.epochs)
                try:
                    stats = train_one_epoch(
                        self.model, batches, self.prep_train, self.loss_fn, self.optimizer, self.schedule,
                        device=d.device, first_step=st.step, steps=der.steps_per_epoch - st.epoch_step,
                        accum_steps=der.accum_steps, amp_dtype=amp, scaler=self.scaler, clip_grad=self.clip,
                        ema=self.ema, progress=progress, world_size=d.world_size,
                        skip_nonfinite=cfg.run.nonfinite == "skip",
                        after_step=self._after_step)
                except NonFiniteLoss as e:
                    self.metrics.append({"epoch": epoch + 1, "train_loss": "nan", "nonfinite_steps": 1,
                                         "note": f"stopped: non-finite loss at step {e.step}"})
                    raise
                progress.close()
                seen_total += stats.steps * der.accum_steps * der.batch_per_device
                skipped_total += stats.skipped_images
                check_bad_images(skipped_total, seen_total, cfg.run.max_bad_image_fraction)
                if self.stop.signum is not None and st.epoch_step < der.steps_per_epoch:
                    self.save()
                    self.log(f"stopped at step {st.step} (epoch {epoch + 1}); checkpoint saved to "
                             f"{self.out / checkpoint.LAST}. Run the same command to resume.")
                    raise SystemExit(128 + self.stop.signum)
                st.end_epoch()
                self._end_epoch(epoch, stats, amp)
                if self.stop.signum is not None:  # signalled during the epoch's last step: it is complete
                    self.log(f"stopped after epoch {epoch + 1}; checkpoint saved to {self.out / checkpoint.LAST}. "
                             f"Run the same command to resume.")
                    raise SystemExit(128 + self.stop.signum)
        finally:
            self.stop.restore()
        return self._summary(time.perf_counter() - started)

    def _end_epoch(self, epoch: int, stats, amp) -> None:
        cfg = self.cfg
        last = epoch + 1 == cfg.sched.epochs
        val, ema_val = {}, {}
        if (epoch + 1) % cfg.run.eval_every == 0 or last:
            val = evaluate(self.model, self.val_loader, self.prep_eval, device=self.dist.device, amp_dtype=amp)
            if self.ema is not None:
                ema_val = evaluate(self.ema.module, self.val_loader, self.prep_eval, device=self.dist.device,
                                   amp_dtype=amp)
        if val:
            self.last_val = val
        is_best = bool(val) and val["top1"] > self.state.best["top1"]
        if is_best:
            self.state.best = {"top1": val["top1"], "top5": val["top5"], "epoch": epoch + 1}
        self.metrics.append(epoch_row(epoch + 1, stats, val, ema_val, self.precision.name))
        self.save(is_best)
        if self.main:
            plot_curves(self.metrics.rows(), self.out / runfolder.CURVES, f"{cfg.name}: {self.out.name}")
        acc = f" val top-1 {val['top1']:.2f} top-5 {val['top5']:.2f}" if val else ""
        self.log(f"epoch {epoch + 1}/{cfg.sched.epochs}: loss {stats.loss:.4f}{acc} "
                 f"({stats.images_per_sec:.0f} img/s, {stats.seconds:.0f} s)")

    def _summary(self, seconds: float) -> dict:
        summary = run_summary(self.cfg, self.derived, self.state.best, self.metrics.rows() if self.main else [],
                              self.last_val, self.dist.world_size, seconds, self.out)
        if self.main:
            runfolder.write_json(self.out / runfolder.SUMMARY, summary)
        return summary


def train(cfg: Config, env: RunEnv) -> dict:
    trainer = Trainer(cfg, env)
    try:
        trainer.setup()
        return trainer.run()
    finally:
        distributed.cleanup()
