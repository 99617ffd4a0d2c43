"""Where a run is (rsb.training.state.TrainState)."""
from __future__ import annotations

from rsb.run.record import CheckpointRecord
from rsb.training.state import TrainState


def test_the_state_records_the_engines_count_and_the_epoch_it_is_in():
    st = TrainState()
    for step in (1, 2, 3):
        st.reached(step)
    assert (st.epoch, st.epoch_step, st.step) == (0, 3, 3)
    st.end_epoch()
    assert (st.epoch, st.epoch_step, st.step) == (1, 0, 3)
    st.reached(5)
    assert st.record_fields() == {"epoch": 1, "epoch_step": 2, "step": 5, "best": {"top1": -1.0, "epoch": -1},
                                  "epoch_tally": None}


def test_a_mid_epoch_record_gives_the_state_back():
    record = CheckpointRecord(model={}, epoch=2, epoch_step=4, step=30, best={"top1": 50.0, "epoch": 2})
    st = TrainState.from_record(record)
    assert st.record_fields() == {"epoch": 2, "epoch_step": 4, "step": 30, "best": {"top1": 50.0, "epoch": 2},
                                  "epoch_tally": None}
    st.reached(31)
    st.end_epoch()
    assert (st.epoch, st.epoch_step, st.step) == (3, 0, 31)
