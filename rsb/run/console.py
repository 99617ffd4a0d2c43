"""What a run shows on the terminal and keeps in train.log: the progress line (a tqdm bar on a terminal, plain
lines in logs) and the copy of stdout and stderr into train.log. Rank 0 only."""
from __future__ import annotations

import sys
import time
from pathlib import Path

from rsb.errors import UserError


class Progress:
    """A tqdm bar on a terminal; a plain line every `every` steps in logs (Slurm, CI, files) and in train.log.
    Every `every` steps `on_log(step, values)` also gets the loss, learning rate and throughput (the trackers)."""

    def __init__(self, enabled: bool, total_steps: int, first_step: int, every: int, epoch: int, epochs: int,
                 on_log=None):
        self.enabled, self.total, self.every, self.on_log = enabled, total_steps, max(1, every), on_log
        self.epoch, self.epochs = epoch, epochs
        self.start = time.perf_counter()
        self.bar = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm
            # The bar goes to the terminal itself, not into train.log (TerminalCopy below)
            self.bar = tqdm(total=total_steps, initial=first_step, desc=f"epoch {epoch + 1}/{epochs}",
                            leave=False, dynamic_ncols=True, file=getattr(sys.stderr, "terminal", sys.stderr))
        self.last_step = first_step

    def step(self, step: int, loss_fn, lr: float, images: int) -> None:
        due = step % self.every == 0 or step == self.total
        if self.bar is not None:
            self.bar.update(step - self.last_step)
        self.last_step = step
        if not due or not (self.enabled or self.on_log):
            return
        rate = images / max(time.perf_counter() - self.start, 1e-9)
        loss = loss_fn()  # waits for the device: only every `every` steps
        if self.on_log is not None:
            self.on_log(step, {"loss": loss, "lr": lr, "images_per_sec": rate})
        if not self.enabled:
            return
        line = f"epoch {self.epoch + 1}/{self.epochs} step {step}/{self.total} loss {loss:.4f} lr {lr:.4g} " \
               f"{rate:.1f} img/s"
        if self.bar is None:
            print(line, flush=True)
            return
        self.bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.3g}", img_s=f"{rate:.0f}")
        log_file = getattr(sys.stdout, "log", None)
        if log_file is not None:
            log_file.write(line + "\n")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class _Tee:
    """A text stream that writes to the terminal's stream and to train.log; everything else (isatty, fileno,
    encoding) is the terminal's, so progress bars still see a terminal."""

    def __init__(self, terminal, log):
        self.terminal, self.log = terminal, log

    def write(self, text: str) -> int:
        self.log.write(text)
        return self.terminal.write(text)

    def flush(self) -> None:
        self.log.flush()
        self.terminal.flush()

    def __getattr__(self, name):
        return getattr(self.terminal, name)


class TerminalCopy:
    """Within the block, stdout and stderr also go to `path` (appended: a resumed run adds to it); a UserError
    that ends the block is written there too, as the command line will print it."""

    def __init__(self, path: Path, enabled: bool):
        self.path, self.enabled = Path(path), enabled

    def __enter__(self) -> "TerminalCopy":
        if self.enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.file = open(self.path, "a", buffering=1)
            self.saved = sys.stdout, sys.stderr
            sys.stdout, sys.stderr = _Tee(sys.stdout, self.file), _Tee(sys.stderr, self.file)
        return self

    def __exit__(self, kind, error, tb) -> None:
        if not self.enabled:
            return
        sys.stdout, sys.stderr = self.saved
        if isinstance(error, UserError):
            self.file.write(f"error: {error}\n")
        self.file.close()
