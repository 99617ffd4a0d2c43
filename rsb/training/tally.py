"""An epoch's running totals: the training loss and top-1 counts (on the device, read only when shown or saved),
the images trained on, the training time, the unreadable images and skipped steps. The engine adds to them; a
mid-epoch checkpoint stores them (rsb.run.record's epoch_tally), so the epoch a run resumes in is recorded over
all of it: its metrics.csv row and the progress line's running loss continue where the stopped run left off,
bitwise alike on CPU in deterministic mode (the loss sum is restored as the float32 it was, and the additions
continue in the same order).

Under DDP each process adds its own share and the engine sums them over processes once, at the epoch's end or
stop. Only a summed tally is stored: a mid-epoch checkpoint saved at a step the processes did not agree on
(a periodic one) holds none, and the epoch it resumes is marked partial in metrics.csv's `note`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from rsb.runtime import distributed


@dataclass
class EpochTally:
    loss_sum: torch.Tensor                # 0-d float32 on the device: the finite micro-batch losses, summed
    hits: torch.Tensor                    # [correct, counted] float32 on the device (integer labels only)
    world_size: int = 1
    micro_batches: int = 0                # this process's, in the epoch
    nonfinite: int = 0                    # micro-batches left out (run.nonfinite=skip), agreed by all processes
    samples: int = 0                      # this process's training samples
    seconds: float = 0.0                  # training time, summed over the sessions the epoch ran in
    skipped_images: int = 0               # unreadable images replaced by the next one (this process)
    resumed_at: list[int] = field(default_factory=list)  # global steps where a later session took the epoch over
    partial_from: int | None = None       # the global step this session began at, when no totals were carried
    summed: bool = False                  # loss_sum and hits hold every process's share
    _clock: float | None = None           # when this session's training began (perf_counter), while it runs

    @classmethod
    def start(cls, device, world_size: int = 1) -> "EpochTally":
        return cls(torch.zeros((), device=device), torch.zeros(2, device=device), world_size)

    @classmethod
    def resume(cls, stored: dict | None, device, world_size: int, step: int) -> "EpochTally":
        """The totals a mid-epoch checkpoint carried (to_record), continued at global step `step`; without them
        (a checkpoint that holds none) a fresh tally that knows it covers the epoch from `step` on only."""
        tally = cls.start(device, world_size)
        if stored is None:
            tally.partial_from = step
            return tally
        # Each process takes an equal share of the summed totals, so the sum over processes is the carried
        # total and each one's running loss is the epoch's so far (one process: the totals as they were).
        tally.loss_sum += torch.tensor(stored["loss_sum"], dtype=torch.float32, device=device) / world_size
        tally.hits += torch.tensor(stored["hits"], dtype=torch.float32, device=device) / world_size
        for name in ("micro_batches", "nonfinite", "samples", "seconds", "skipped_images"):
            setattr(tally, name, stored[name])
        tally.resumed_at = [*stored.get("resumed_at", []), step]
        tally.partial_from = stored.get("partial_from")
        return tally

    def to_record(self) -> dict | None:
        """What a checkpoint stores (plain numbers; the float32 loss sum exactly); None while the totals are one
        process's share of a DDP run."""
        if self.world_size > 1 and not self.summed:
            return None
        return {"loss_sum": float(self.loss_sum), "hits": [float(h) for h in self.hits.tolist()],
                "micro_batches": self.micro_batches, "nonfinite": self.nonfinite, "samples": self.samples,
                "seconds": self.seconds, "skipped_images": self.skipped_images, "resumed_at": list(self.resumed_at),
                "partial_from": self.partial_from}

    def running_loss(self) -> float:
        """The mean loss of the epoch so far (one host synchronisation)."""
        return (self.loss_sum / max(1, self.micro_batches - self.nonfinite)).item()

    def start_clock(self) -> None:
        self._clock = time.perf_counter() - self.seconds

    def tick(self) -> None:
        """Bring `seconds` up to now (each optimizer step, and at the epoch's end or stop)."""
        self.seconds = time.perf_counter() - self._clock

    def sum_over_processes(self) -> torch.Tensor:
        """[loss sum, losses counted, correct, counted] over all processes (one all-reduce under DDP); the loss
        sum and hits are then every process's (a stop checkpoint stores them)."""
        totals = torch.cat([torch.stack([self.loss_sum.float(), torch.tensor(
            float(self.micro_batches - self.nonfinite), device=self.loss_sum.device)]), self.hits])
        if self.world_size > 1:
            distributed.all_reduce_sum(totals)
            self.loss_sum, self.hits = totals[0].clone(), totals[2:].clone()
        self.summed = True
        return totals

    def note(self) -> str:
        """metrics.csv's `note` for the epoch: empty when it ran in one session."""
        if self.partial_from is not None:
            return (f"partial: resumed at step {self.partial_from} from a checkpoint without the epoch's running "
                    f"totals; loss, top-1, throughput and time cover the steps after it only")
        if self.resumed_at:
            return (f"resumed at step {', '.join(map(str, self.resumed_at))}: loss and top-1 over the whole epoch; "
                    f"time and throughput summed over its {len(self.resumed_at) + 1} sessions")
        return ""
