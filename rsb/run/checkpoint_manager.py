"""A run folder's checkpoints: their names (last.pt and prev.pt, best.pt, epoch_*.pt), retention, when a mid-epoch
checkpoint is due (by time or by steps), and which one a resumed run starts from."""
from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

from rsb.errors import UserError
from rsb.run import folder as run_folder
from rsb.run.checkpoint import load, save_atomic
from rsb.run.folder import BEST, EPOCH_CHECKPOINTS, LAST, PREV
from rsb.run.record import CheckpointRecord


def find_resume(run_dir: Path) -> CheckpointRecord | None:
    """The newest loadable checkpoint of a run folder (last.pt, else prev.pt, else the newest epoch_*.pt); an
    unreadable one is reported and passed over. None when the folder has no checkpoint. A checkpoint of a format
    this version cannot read stops the search: an older one would silently undo the newer run's work."""
    run_dir = Path(run_dir)
    candidates = [run_dir / LAST, run_dir / PREV] + sorted(run_dir.glob(EPOCH_CHECKPOINTS), reverse=True)
    candidates = [p for p in candidates if p.is_file()]
    for path in candidates:
        try:
            stored = load(path)
        except UserError as e:
            print(f"warning: {e} Trying an older checkpoint.", file=sys.stderr)
            continue
        return CheckpointRecord.from_dict(stored, path)
    if candidates:
        raise UserError(f"no checkpoint in {run_dir} can be loaded ({len(candidates)} tried); move the folder "
                        f"aside to start afresh, or pass --resume with a good checkpoint.")
    return None


def _copy_of(source: Path, target: Path) -> None:
    """target becomes the same bytes as source, without serialising or hashing again: a hard link where the
    file system allows (last.pt is later replaced by rename, so the link keeps this version), else a copy."""
    with run_folder.atomic_path(target) as tmp:
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)


class CheckpointManager:
    """Where and when a run's records are saved. Each save serialises once; the other names are links."""

    def __init__(self, folder: Path, keep_epochs: int = 0, every_minutes: float = 0.0, every_steps: int = 0,
                 enabled: bool = True):
        self.folder, self.keep_epochs, self.enabled = Path(folder), keep_epochs, enabled
        self.every_minutes, self.every_steps = every_minutes, every_steps
        self.last_save = time.monotonic()

    def restart_clock(self) -> None:
        self.last_save = time.monotonic()

    def due(self, global_step: int) -> bool:
        """Whether a mid-epoch checkpoint is due after `global_step` (the epoch's end always has one)."""
        by_steps = self.every_steps > 0 and global_step % self.every_steps == 0
        by_time = self.every_minutes > 0 and time.monotonic() - self.last_save >= 60 * self.every_minutes
        return by_steps or by_time

    def save(self, record: CheckpointRecord | None, epoch_end: bool = False, is_best: bool = False) -> None:
        """last.pt (the one before it kept as prev.pt); at an epoch's end also best.pt when it is the best so far
        and epoch_NNNN.pt when per-epoch copies are kept (the record's epoch names it). `record` is None on the
        processes that do not write."""
        self.last_save = time.monotonic()
        if not self.enabled:  # DDP: rank 0 writes
            return
        last = self.folder / LAST
        save_atomic(record.to_dict(), last, keep_previous=True)
        if is_best:
            _copy_of(last, self.folder / BEST)
        if epoch_end and self.keep_epochs > 0:
            _copy_of(last, self.folder / run_folder.epoch_checkpoint(record.epoch))
            for old in sorted(self.folder.glob(EPOCH_CHECKPOINTS))[:-self.keep_epochs]:
                old.unlink()
