"""An epoch's running totals (rsb.training.tally): carried across a stop, the resumed epoch's statistics and
running loss are the uninterrupted epoch's, bitwise; without carried totals the epoch is marked partial."""
from __future__ import annotations

import torch

from rsb.config.schema import SchedConfig
from rsb.run.record import CheckpointRecord
from rsb.training.engine import train_one_epoch
from rsb.training.optim import WarmupCosine
from rsb.training.state import TrainState
from rsb.training.tally import EpochTally
from tests.training.test_accumulation import CPU, Counter, _batches, _samples

STEPS, ACCUM, BATCH = 6, 2, 4


class Lines:
    """A progress stand-in that keeps the running loss it would show at every step."""

    def __init__(self):
        self.loss = {}

    def step(self, step, loss_fn, lr, images):
        self.loss[step] = loss_fn()


def _float32_mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))


def _epoch(model, opt, batches, first_step: int, steps: int, tally=None, progress=None):
    return train_one_epoch(model, batches, Counter(), torch.nn.functional.cross_entropy, opt,
                           WarmupCosine(SchedConfig(), 0.1, STEPS, 0), device=CPU, first_step=first_step,
                           steps=steps, accum_steps=ACCUM, tally=tally, progress=progress)


def _setup():
    x, y = _samples(STEPS * ACCUM * BATCH, seed=3, dtype=torch.float32)
    model = _float32_mlp()
    return model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), _batches(x, y, BATCH)


def test_totals_carried_across_a_stop_give_the_uninterrupted_epochs_numbers_bitwise():
    model, opt, batches = _setup()
    whole_lines = Lines()
    whole = _epoch(model, opt, batches, 0, STEPS, progress=whole_lines)

    model, opt, batches = _setup()
    tally = EpochTally.start(CPU)
    first = _epoch(model, opt, batches, 0, 2, tally=tally)
    assert first.steps == 2 and first.note == ""
    # What a mid-epoch checkpoint stores, read back through the record and the run's state.
    state = TrainState(epoch=0, step=2, tally=tally)
    stored = CheckpointRecord(model={}, **state.record_fields()).to_dict()
    assert stored["epoch_tally"]["micro_batches"] == 2 * ACCUM
    resumed_state = TrainState.from_record(CheckpointRecord.from_dict(stored))
    resumed_lines = Lines()
    resumed = _epoch(model, opt, batches[2 * ACCUM:], 2, STEPS - 2, progress=resumed_lines,
                     tally=resumed_state.begin_epoch(CPU, 1))

    assert resumed.steps == STEPS - 2
    assert resumed.loss == whole.loss and resumed.train_top1 == whole.train_top1  # exactly
    assert resumed.samples == whole.samples == STEPS * ACCUM * BATCH
    assert resumed.seconds >= first.seconds  # the time of both sessions
    assert resumed.note.startswith("resumed at step 2: loss and top-1 over the whole epoch")
    # The progress line's running loss goes on from where the stopped run left off.
    assert resumed_lines.loss == {s: whole_lines.loss[s] for s in range(3, STEPS + 1)}


def test_without_carried_totals_the_epoch_is_marked_partial_and_counts_its_own_steps():
    model, opt, batches = _setup()
    _epoch(model, opt, batches, 0, 2)
    state = TrainState.from_record(CheckpointRecord(model={}, epoch=0, epoch_step=2, step=2))  # an older file
    tail = _epoch(model, opt, batches[2 * ACCUM:], 2, STEPS - 2, tally=state.begin_epoch(CPU, 1))
    assert tail.samples == (STEPS - 2) * ACCUM * BATCH
    assert tail.note.startswith("partial: resumed at step 2 from a checkpoint without the epoch's running totals")


def test_an_epoch_end_stores_no_totals_and_one_process_share_of_ddp_is_not_stored():
    st = TrainState(epoch=1, step=6, epoch_start=6, tally=EpochTally.start(CPU))
    assert st.record_fields()["epoch_tally"] is None  # at an epoch's boundary there is nothing to carry
    assert "epoch_tally" not in CheckpointRecord(model={}, **st.record_fields()).to_dict()
    ddp = EpochTally.start(CPU, world_size=2)
    assert ddp.to_record() is None  # this process's share only (a periodic checkpoint under DDP)
    ddp.sum_over_processes()        # what the engine does at the epoch's end or stop, on every process
    assert ddp.to_record() is not None
