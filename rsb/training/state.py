"""Where a run is: completed epochs, optimizer steps, the best evaluation so far; what a checkpoint record stores
of it (epoch, epoch_step, step, best) and how a resumed run gets it back."""
from __future__ import annotations

from dataclasses import dataclass, field

from rsb.run.record import CheckpointRecord


def _no_best() -> dict:
    return {"top1": -1.0, "epoch": -1}


@dataclass
class TrainState:
    """Where a run is: completed epochs, optimizer steps into the current one, steps in all, the best
    evaluation so far. The loop advances it after every optimizer step."""
    epoch: int = 0
    epoch_step: int = 0
    step: int = 0
    best: dict = field(default_factory=_no_best)

    def advance(self) -> None:
        self.epoch_step += 1
        self.step += 1

    def end_epoch(self) -> None:
        self.epoch, self.epoch_step = self.epoch + 1, 0

    def record_fields(self) -> dict:
        """The CheckpointRecord fields of this state."""
        return {"epoch": self.epoch, "epoch_step": self.epoch_step, "step": self.step, "best": dict(self.best)}

    @classmethod
    def from_record(cls, record: CheckpointRecord) -> "TrainState":
        return cls(record.epoch, record.epoch_step or 0, record.step, record.best or _no_best())
