"""The stop flag (rsb.runtime.signals): each stop signal sets it and says so, a second Ctrl-C stops at once, the
old handlers come back, and under DDP every process stops at the same step."""
from __future__ import annotations

import os
import signal

import pytest
import torch

from rsb.runtime import signals
from rsb.runtime.distributed import DistContext
from rsb.runtime.signals import STOP_SIGNALS, StopFlag


@pytest.mark.parametrize("sig", STOP_SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_a_stop_signal_sets_the_flag_and_says_what_comes_next(sig, capsys):
    before = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    with StopFlag() as flag:
        assert flag.signum is None and not flag.agreed(DistContext())
        os.kill(os.getpid(), sig)
        assert flag.signum == sig and flag.agreed(DistContext())
    assert f"received {signal.Signals(sig).name}: finishing this step, then saving a checkpoint" \
           in capsys.readouterr().out
    assert {s: signal.getsignal(s) for s in STOP_SIGNALS} == before  # the old handlers are back


def test_a_second_ctrl_c_stops_at_once():
    with StopFlag() as flag:
        os.kill(os.getpid(), signal.SIGTERM)
        try:
            os.kill(os.getpid(), signal.SIGTERM)
        except KeyboardInterrupt:  # caught here: it would end the whole pytest session
            pytest.fail("a repeated SIGTERM stopped at once; only a second Ctrl-C should")
        assert flag.signum == signal.SIGTERM
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)


def test_under_ddp_processes_compare_flags_every_tenth_call_and_a_peers_stop_stops_all(monkeypatch):
    reduced = []

    def all_reduce_sum(t, peer_flag=1.0):  # two processes: this one's flag plus a signalled peer's
        reduced.append(t.item())
        return t + peer_flag

    monkeypatch.setattr(signals, "all_reduce_sum", all_reduce_sum)
    two = DistContext(rank=0, world_size=2, device=torch.device("cpu"))
    flag = StopFlag()
    assert [flag.agreed(two) for _ in range(9)] == [False] * 9 and reduced == []  # no device wait in between
    assert flag.agreed(two) and reduced == [0.0]
    assert flag.signum == signal.SIGTERM  # stopped for a peer: as if signalled itself
