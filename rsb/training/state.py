"""Where a run is: completed epochs, optimizer steps, the best evaluation so far, the current epoch's running
totals; what a checkpoint record stores of it (epoch, epoch_step, step, best, epoch_tally) and how a resumed run
gets it back."""
from __future__ import annotations

from dataclasses import dataclass, field

from rsb.run.record import CheckpointRecord
from rsb.training.tally import EpochTally


def _no_best() -> dict:
    return {"top1": -1.0, "epoch": -1}


@dataclass
class TrainState:
    """The optimizer steps are counted in one place, the engine (rsb.training.engine.train_one_epoch), which
    reports the global step after each one; the state records it (reached) and keeps the step the current epoch
    began at, from which the steps into the epoch follow."""
    epoch: int = 0          # completed epochs
    step: int = 0           # optimizer steps in all
    epoch_start: int = 0    # the global step the current epoch began at
    best: dict = field(default_factory=_no_best)
    tally: EpochTally | None = None        # the current epoch's running totals, while it runs
    carried: dict | None = None            # the totals a mid-epoch checkpoint carried, for the epoch resumed

    def begin_epoch(self, device, world_size: int) -> EpochTally:
        """The tally of the epoch starting (or resumed mid-way, from the carried totals) at this step."""
        if self.epoch_step:
            self.tally = EpochTally.resume(self.carried, device, world_size, self.step)
        else:
            self.tally = EpochTally.start(device, world_size)
        self.carried = None
        return self.tally

    @property
    def epoch_step(self) -> int:
        """Optimizer steps into the current epoch."""
        return self.step - self.epoch_start

    def reached(self, step: int) -> None:
        self.step = step

    def end_epoch(self) -> None:
        self.epoch, self.epoch_start, self.tally = self.epoch + 1, self.step, None

    def record_fields(self) -> dict:
        """The CheckpointRecord fields of this state."""
        tally = self.tally.to_record() if self.tally is not None and self.epoch_step else None
        return {"epoch": self.epoch, "epoch_step": self.epoch_step, "step": self.step, "best": dict(self.best),
                "epoch_tally": tally}

    @classmethod
    def from_record(cls, record: CheckpointRecord) -> "TrainState":
        epoch_step = record.epoch_step or 0
        return cls(record.epoch, record.step, record.step - epoch_step, record.best or _no_best(),
                   carried=record.epoch_tally if epoch_step else None)
