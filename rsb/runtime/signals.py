"""The stop flag: SIGINT, SIGTERM, SIGUSR1 and SIGUSR2 ask a run to finish its step, checkpoint and exit; loader
workers leave stopping to the trainer and die with it."""
from __future__ import annotations

import ctypes
import functools
import os
import signal
import sys

import torch

from rsb.runtime.distributed import DistContext, all_reduce_sum


STOP_SIGNALS = [signal.SIGINT, signal.SIGTERM] + [getattr(signal, s) for s in ("SIGUSR1", "SIGUSR2")
                                                  if hasattr(signal, s)]


class StopFlag:
    """Set by SIGINT/SIGTERM/SIGUSR1/SIGUSR2: the loop finishes its step, checkpoints and exits."""

    def __init__(self):
        self.signum = None
        self._old = {}
        self._calls = 0  # DDP: calls of agreed() since the processes last compared flags

    def install(self) -> None:
        for s in STOP_SIGNALS:
            self._old[s] = signal.signal(s, self._handle)

    def _handle(self, signum, frame) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C stops at once
        self.signum = signum
        print(f"\nreceived {signal.Signals(signum).name}: finishing this step, then saving a checkpoint",
              flush=True)

    def restore(self) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)

    def __enter__(self) -> "StopFlag":
        self.install()
        return self

    def __exit__(self, *exc) -> None:
        self.restore()

    def agreed(self, dist: DistContext) -> bool:
        """Whether to stop now. Under DDP every process must stop at the same step, so they agree through an
        all-reduce; every 10 calls only, because reading its result waits for the device."""
        flag = self.signum is not None
        if not dist.distributed:
            return flag
        self._calls += 1
        if self._calls % 10:
            return False
        t = torch.tensor([float(flag)], device=dist.device)
        flag = all_reduce_sum(t).item() > 0
        if flag and self.signum is None:
            self.signum = signal.SIGTERM  # a peer was signalled
        return flag


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def loader_worker_init(trainer_pid: int, worker_id: int = 0) -> None:
    """Run first in each loader worker (DataLoader's worker_init_fn; see worker_init). A worker is forked with
    the trainer's Python signal handlers, and Slurm signals every process of a job step: the worker would catch
    the stop signals too (a second "received" line in train.log) and submitit's handlers. Here the stop signals
    are ignored (an uncaught SIGTERM or SIGUSR2 would kill the worker while the trainer finishes its step and
    needs its next batch) and every other inherited Python handler is reset. The trainer stops the workers when
    it ends; should it die, the kernel kills them with it (PR_SET_PDEATHSIG on Linux; torch's own watchdog
    would notice only at its next 5-second check)."""
    for s in signal.valid_signals():
        handler = signal.getsignal(s)
        target = signal.SIG_IGN if s in STOP_SIGNALS else signal.SIG_DFL if callable(handler) else None
        if target is not None:
            signal.signal(s, target)
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # no prctl to call: torch's watchdog is left
            pass
    if os.getppid() != trainer_pid:  # the trainer died before the line above took effect
        os.kill(os.getpid(), signal.SIGKILL)


def worker_init():
    """A DataLoader worker_init_fn that runs loader_worker_init for workers of this process."""
    return functools.partial(loader_worker_init, os.getpid())
