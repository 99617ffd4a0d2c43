"""One training run: the epoch loop over the parts of rsb.training.parts, checkpointed as rsb.run.record's
records by rsb.run.checkpoint_manager."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

from rsb.runtime import distributed
from rsb.runtime import precision
from rsb.runtime.cpus import cpu_budget
from rsb.runtime.signals import StopFlag
from rsb.run import folder as run_folder
from rsb.run import rng_state
from rsb.run.checkpoint_manager import CheckpointManager, find_resume
from rsb.run.record import CheckpointRecord
from rsb.config.schema import Config, to_dict, to_yaml
from rsb.data import seeds
from rsb.data.families.registry import family
from rsb.errors import UserError
from rsb.training.engine import NonFiniteLoss, evaluate, train_one_epoch
from rsb.training.parts import build_parts
from rsb.training.state import TrainState
from rsb.training.plan import resolve, resolved_document, startup_lines, where_it_ran
from rsb.run.console import Progress, TerminalCopy
from rsb.run.metrics import MetricsLog, epoch_row, run_summary
from rsb.run.trackers import Trackers


@dataclass
class LaunchOptions:
    """What the command line says about this launch (data, output, workers, device, resume), as opposed to the
    recipe."""
    data: Path | None = None          # None: the built-in sample data at sample scale
    output: Path | None = None
    workers: int | None = None        # loader processes; None: from the CPU budget (rsb.runtime.cpus)
    device: str = "auto"
    resume: Path | None = None
    resume_changed: bool = False      # continue a run whose recipe values differ, on purpose
    quiet: bool = False
    val_labels: Path | None = None    # ground truth of a flat val/ (else looked for beside it)
    threads: int | None = None        # torch's compute threads; None: from the CPU budget
    cpu_share: int | None = None      # runs sharing this machine's CPUs (a local sweep's); None: this job's


class Trainer:
    def __init__(self, cfg: Config, launch: LaunchOptions):
        self.cfg, self.launch = cfg, launch
        self.cpu = cpu_budget(launch.threads, launch.workers, launch.cpu_share)
        self.cpu.apply()  # torch's threads from the allocation, not from the machine
        self.dist = distributed.init(launch.device)
        self.main = self.dist.is_main
        self.out = Path(launch.output)
        self.stop = StopFlag()
        run = cfg.run
        self.ckpts = CheckpointManager(self.out, run.keep_checkpoints, run.checkpoint_every_minutes,
                                       run.checkpoint_every_steps, enabled=self.main)
        self.state = TrainState()
        self.metrics = MetricsLog(self.out, enabled=self.main, curves_title=f"{cfg.name}: {self.out.name}")
        self.last_val: dict = {}                     # the latest evaluation, for summary.json
        self.images_seen = self.images_skipped = 0   # for run.max_bad_image_fraction

    def log(self, msg: str) -> None:
        if self.main and not self.launch.quiet:
            print(msg, flush=True)

    def setup(self) -> None:
        cfg, d = self.cfg, self.dist
        train_idx, val_idx = family(cfg).open(self.launch.data, cfg, self.log, self.launch.val_labels)
        self.precision = precision.for_config(cfg.train, d.device)
        self.derived = resolve(cfg, d.world_size, len(train_idx), self.precision, train_idx.input_path)
        self.parts = build_parts(cfg, self.derived, self.precision, d, train_idx, val_idx, self.cpu.workers)
        self._maybe_resume()
        self.trackers = Trackers(self.out, self.main, cfg.run.wandb_project, to_dict(cfg))  # once the run may go on
        self.parts.wrap(d, cfg.model.compile)

    def _maybe_resume(self) -> None:
        if self.launch.resume is not None:
            record = CheckpointRecord.read(self.launch.resume)
        else:
            record = find_resume(self.out)  # last.pt, or an older one if it is unreadable
            if record is None:
                return
        changed = record.check_same_recipe(self.cfg, self.launch.resume_changed)
        if changed:
            self.log(f"resuming {record.path} with changed recipe values, as --resume-changed asks: "
                     f"{', '.join(changed)}")
        self.parts.load_state_dict(record)
        self.state = st = TrainState.from_record(record)
        if record.rng:
            rng_state.restore(record.rng)
        self.metrics.truncate_after(st.epoch)
        where = f"epoch {st.epoch + 1}" + (f", step {st.epoch_step}" if st.epoch_step else "")
        self.log(f"resumed from {record.path}: continuing at {where} (global step {st.step})")

    def save(self, is_best: bool = False) -> None:
        """Checkpoint the run where self.state says it is (an epoch's end when epoch_step is 0)."""
        if self.main and not self.parts.weights_finite():
            raise NonFiniteLoss(self.state.step)  # never save non-finite weights
        record = CheckpointRecord(**self.parts.state_dict(), **self.state.record_fields(),
                                  config=to_dict(self.cfg), derived=asdict(self.derived),
                                  rng=rng_state.capture(), model_name=self.cfg.model.name) if self.main else None
        self.ckpts.save(record, epoch_end=self.state.epoch_step == 0, is_best=is_best)

    def _after_step(self, step: int) -> bool:
        """After each optimizer step (`step`: the global step reached, as the engine counts): record it, a
        mid-epoch checkpoint when due (the epoch's end has its own); True when a signal asks to stop."""
        self.state.reached(step)
        if self.state.epoch_step < self.derived.steps_in_epoch(self.state.epoch) and self.ckpts.due(self.state.step):
            self.save()
        return self.stop.agreed(self.dist)

    def run(self) -> dict:
        """For each epoch: train over the sampler's order, evaluate, checkpoint; stop cleanly on a signal."""
        self._start_run_folder()
        st, epochs = self.state, self.derived.epochs
        if st.epoch >= epochs:
            self.log("this run has already finished; nothing to do (use another --output for a new run)")
            return self._summary(0.0)
        started = time.perf_counter()
        self.ckpts.restart_clock()
        with self.stop:
            for epoch in range(st.epoch, epochs):
                stats = self._train_epoch(epoch)
                if self.stop.signum is not None and st.epoch_step < self.derived.steps_in_epoch(epoch):
                    self.save()
                    self._exit(f"stopped at step {st.step} (epoch {epoch + 1})")
                st.end_epoch()
                self.parts.end_epoch(self.dist)
                self._end_epoch(epoch, stats)
                if self.stop.signum is not None:  # signalled during the epoch's last step: it is complete
                    self._exit(f"stopped after epoch {epoch + 1}")
        return self._summary(time.perf_counter() - started)

    def _start_run_folder(self) -> None:
        if self.main:
            self.out.mkdir(parents=True, exist_ok=True)
            run_folder.remove_stale_temporaries(self.out)  # left by a write that was killed
            environment = {**where_it_ran(self.launch.data, self.launch.device), "cpu": self.cpu.as_dict()}
            doc = resolved_document(self.cfg, self.derived, environment)
            run_folder.write_text(self.out / run_folder.RESOLVED, to_yaml(doc))
        lines = startup_lines(self.cfg, self.derived, self.dist.device.type, self.out)
        for line in [*lines[:-1], self.cpu.describe(), lines[-1]]:  # the resolved configuration's path last
            self.log(line)

    def _train_epoch(self, epoch: int):
        cfg, d, der, st, p = self.cfg, self.dist, self.derived, self.state, self.parts
        batches = p.train_loader.epoch(epoch, start_sample=st.epoch_step * der.accum_steps * der.batch_per_device)
        progress = Progress(self.main and not self.launch.quiet, der.total_steps, st.step, cfg.run.log_every,
                            epoch, der.epochs, on_log=self.trackers.step if self.main else None)
        try:
            stats = train_one_epoch(
                p.model, batches, p.prep_train, p.loss_fn, p.optimizer, p.schedule, device=d.device,
                first_step=st.step, steps=der.steps_in_epoch(epoch) - st.epoch_step, accum_steps=der.accum_steps,
                amp_dtype=self.precision.dtype, scaler=p.scaler, clip_grad=p.clip, ema=p.ema, progress=progress,
                world_size=d.world_size, skip_nonfinite=cfg.run.nonfinite == "skip", after_step=self._after_step,
                seed_micro_batch=self._seed_micro_batch, tally=st.begin_epoch(d.device, d.world_size))
        except NonFiniteLoss as e:
            self.metrics.append({"epoch": epoch + 1, "train_loss": "nan", "nonfinite_steps": 1,
                                 "note": f"stopped: non-finite loss at step {e.step}"})
            raise
        progress.close()
        self.images_seen += stats.samples  # the epoch's, a part before a resume included, as its skipped images
        self.images_skipped += stats.skipped_images
        check_bad_images(self.images_skipped, self.images_seen, cfg.run.max_bad_image_fraction)
        return stats

    def _seed_micro_batch(self, step: int, micro_step: int) -> None:
        seeds.seed_generators(seeds.micro_batch(self.cfg.train.seed, step, micro_step, self.dist.rank))

    def _end_epoch(self, epoch: int, stats) -> None:
        """Evaluate when due (always after the last epoch), record the epoch, checkpoint."""
        cfg, p = self.cfg, self.parts
        val, ema_val = {}, {}
        if (epoch + 1) % cfg.run.eval_every == 0 or epoch + 1 == self.derived.epochs:
            amp = self.precision.dtype
            val = evaluate(p.model, p.val_loader, p.prep_eval, device=self.dist.device, amp_dtype=amp)
            if p.ema is not None:
                ema_val = evaluate(p.ema.module, p.val_loader, p.prep_eval, device=self.dist.device, amp_dtype=amp)
            self.last_val = val
        is_best = bool(val) and val["top1"] > self.state.best["top1"]
        if is_best:
            self.state.best = {"top1": val["top1"], "top5": val["top5"], "epoch": epoch + 1}
        row = epoch_row(epoch + 1, self.state.step, stats, val, ema_val, self.precision.name)
        self.metrics.append(row)
        self.trackers.epoch(self.state.step, row)
        self.save(is_best)
        acc = f" val top-1 {val['top1']:.2f} top-5 {val['top5']:.2f}" if val else ""
        self.log(f"epoch {epoch + 1}/{self.derived.epochs}: loss {stats.loss:.4f}{acc} "
                 f"({stats.images_per_sec:.0f} img/s, {stats.seconds:.0f} s)")

    def _exit(self, what: str) -> None:
        self.log(f"{what}; checkpoint saved to {self.out / run_folder.LAST}. Run the same command to resume.")
        raise SystemExit(128 + self.stop.signum)

    def _summary(self, seconds: float) -> dict:
        summary = run_summary(self.cfg, self.derived, self.state.best, self.metrics.rows() if self.main else [],
                              self.last_val, self.dist.world_size, seconds, self.out)
        if self.main:
            run_folder.write_json(self.out / run_folder.SUMMARY, summary)
        return summary


def check_bad_images(skipped: int, seen: int, max_fraction: float) -> None:
    """Stop a run whose unreadable images exceed `max_fraction` of the samples seen (run.max_bad_image_fraction;
    each was reported, by where it lives, when the dataset replaced it by the next image)."""
    if skipped > max(1, max_fraction * seen):
        raise UserError(f"{skipped} of {seen} training samples were unreadable images (more than "
                        f"run.max_bad_image_fraction={max_fraction}); see the warnings above for their paths and "
                        f"fix or remove them.")


def train(cfg: Config, launch: LaunchOptions) -> dict:
    trainer = Trainer(cfg, launch)
    try:
        with TerminalCopy(trainer.out / run_folder.TRAIN_LOG, enabled=trainer.main):
            trainer.setup()
            try:
                return trainer.run()
            finally:
                trainer.trackers.close()
    finally:
        distributed.cleanup()
