"""The stop flag (rsb.runtime.signals): each stop signal sets it and says so, a second Ctrl-C stops at once, the
old handlers come back, and under DDP every process stops at the same step. Loader workers leave the signals to
the trainer and die with it."""
from __future__ import annotations

import os
import signal
import sys

import pytest
import torch

from tests._processes import alive, gone_within
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


# ---- loader workers: signals are the trainer's ------------------------------------------------------------------
class _WorkerView(torch.utils.data.Dataset):
    """Each item: the worker's pid and its handlers of the stop signals and SIGCONT, after it was sent a stop
    signal and SIGCONT, as Slurm signals every process of a step."""

    def __len__(self):
        return 2

    def __getitem__(self, i):
        os.kill(os.getpid(), signal.SIGUSR2)
        os.kill(os.getpid(), signal.SIGCONT)
        handlers = [signal.getsignal(s) for s in [*STOP_SIGNALS, signal.SIGCONT]]
        return os.getpid(), [h if isinstance(h, int) else "python" for h in handlers]


def test_a_loader_worker_leaves_the_stop_signals_to_the_trainer(capfd):
    old_cont = signal.signal(signal.SIGCONT, lambda *a: print("SIGCONT caught", flush=True))  # as submitit's
    try:
        with StopFlag() as flag:
            loader = torch.utils.data.DataLoader(_WorkerView(), batch_size=None, num_workers=1,
                                                 worker_init_fn=signals.worker_init(), multiprocessing_context="fork")
            items = list(loader)
            assert flag.signum is None  # nothing reached the trainer's flag
    finally:
        signal.signal(signal.SIGCONT, old_cont)
    assert len(items) == 2 and items[0][0] != os.getpid()  # the worker got both signals and lived on
    assert items[0][1] == [signal.SIG_IGN] * len(STOP_SIGNALS) + [signal.SIG_DFL]
    out = capfd.readouterr()
    assert "received" not in out.out + out.err and "caught" not in out.out + out.err


def test_the_loaders_start_their_workers_with_it(tmp_path):
    from rsb.data import loader
    from rsb.data.layout import open_splits
    from rsb.data.sample import ensure_sample_dataset
    _, val = open_splits(ensure_sample_dataset(tmp_path / "sample", splits={"train": 1, "val": 1,
                                                                                        "v2": 1}))
    init = loader.eval_loader(val, 32, 0.875, "bicubic", 4, workers=1).worker_init_fn
    assert init.func is signals.loader_worker_init and init.args == (os.getpid(),)


TRAINER = """
import os, sys, time, torch
from rsb.runtime.signals import worker_init

class Slow(torch.utils.data.Dataset):
    def __len__(self):
        return 4
    def __getitem__(self, i):
        if i:
            time.sleep(120)  # busy in a batch: torch's watchdog does not look while it runs
        return os.getpid()

for pid in torch.utils.data.DataLoader(Slow(), batch_size=None, num_workers=1, worker_init_fn=worker_init()):
    print(pid, flush=True)
    time.sleep(120)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_loader_worker_dies_with_its_trainer():
    import subprocess
    trainer = subprocess.Popen([sys.executable, "-c", TRAINER], stdout=subprocess.PIPE, text=True,
                               env=dict(os.environ, OMP_NUM_THREADS="1"))
    try:
        worker = int(trainer.stdout.readline())
        assert worker != trainer.pid and alive(worker)
        trainer.kill()
        trainer.wait(timeout=30)
        # within 3 s, where torch's watchdog alone would take 120 s here, in the worker's sleep
        assert gone_within(worker, 3), "the loader worker outlived its trainer"
    finally:
        trainer.kill()
