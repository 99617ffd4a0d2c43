"""The stop flag: SIGINT, SIGTERM, SIGUSR1 and SIGUSR2 ask a run to finish its step, checkpoint and exit."""
from __future__ import annotations

import signal

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
