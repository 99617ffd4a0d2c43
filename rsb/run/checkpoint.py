"""Checkpoints: atomic writes, safe loads (weights_only=True: loading never runs code), RNG state, resume.

A checkpoint is a dict of plain data: model/optimizer/scaler state, the epoch and step reached, RNG states,
the resolved config, and a SHA-256 digest of all of it. It is written to a temporary file in the same folder,
flushed to disk, then renamed over the old one (whose previous version is kept as prev.pt), so a crash or a full
disk mid-write leaves a loadable checkpoint. The digest catches what torch.load does not: torch's zip format
has no checksum over tensor data, so a flipped byte on disk would otherwise load as silently wrong weights.
"""
from __future__ import annotations

import hashlib
import os
import random
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from rsb.errors import UserError
from rsb.run import folder as run_folder
from rsb.run.folder import BEST, EPOCH_CHECKPOINTS, LAST, PREV

DIGEST_KEY = "sha256"
# The EMA weights are stored under timm's name for them, so timm.models.load_checkpoint(model, path, use_ema=True)
# reads them. timm's load_state_dict takes "state_dict_ema" or "model_ema" (use_ema, when not None), else
# "state_dict", else "model": our plain weights ("model") are what it loads with use_ema=False or without EMA.
EMA_KEY = "state_dict_ema"


def _feed(h, obj) -> None:
    """Hash nested dicts/lists/tensors/scalars in a fixed order, tensors by their raw bytes."""
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().data)
    elif isinstance(obj, dict):
        h.update(b"D")
        for k in sorted(obj, key=str):
            h.update(repr(k).encode())
            _feed(h, obj[k])
    elif isinstance(obj, (list, tuple)):
        h.update(b"L")
        for v in obj:
            _feed(h, v)
    else:
        h.update(repr(obj).encode())


def digest(obj: dict) -> str:
    h = hashlib.sha256()
    _feed(h, {k: v for k, v in obj.items() if k != DIGEST_KEY})
    return h.hexdigest()


def save_atomic(obj: dict, path: Path, keep_previous: bool = False) -> None:
    """Write obj to path atomically and durably; with keep_previous the old file becomes prev.pt (the resume
    fallback). A failed write (e.g. a full disk) raises UserError and leaves the old files untouched."""
    path = Path(path)
    obj = {**obj, DIGEST_KEY: digest(obj)}
    try:
        with run_folder.atomic_path(path, durable=True, previous=path.with_name(PREV) if keep_previous else None) \
                as tmp, open(tmp, "wb") as f:
            torch.save(obj, f)
    except (OSError, RuntimeError) as e:  # torch's zip writer reports a failed write as RuntimeError
        if isinstance(e, OSError):
            reason = e.strerror or str(e)
        else:
            reason = "the write failed (" + str(e).splitlines()[0][:120] + ")"
        raise UserError(f"could not write checkpoint {path}: {reason}; check free disk space and quota, then "
                        f"run the same command to resume from the previous checkpoint.") from None


def load(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist.")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, corrupt, or holding objects that weights_only refuses
        raise UserError(f"checkpoint {path} cannot be read ({type(e).__name__}); it is truncated, corrupt "
                        f"or not a checkpoint.") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise UserError(f"checkpoint {path} is not an rsb checkpoint (no 'model' entry).")
    if DIGEST_KEY in ckpt and digest(ckpt) != ckpt[DIGEST_KEY]:
        raise UserError(f"checkpoint {path} is corrupt: its contents do not match the SHA-256 digest stored "
                        f"in it.")
    return ckpt


def ema_state(ckpt: dict) -> dict | None:
    """A checkpoint's EMA weights, None when its run had no EMA; older checkpoints stored them as "ema"."""
    return ckpt.get(EMA_KEY) or ckpt.get("ema") or None


def check_same_recipe(ckpt: dict, cfg, path: Path, resume_changed: bool) -> list[str]:
    """The recipe keys whose values differ between the checkpoint's run and `cfg` (run policy may change); a
    difference is refused unless `resume_changed`. Bare weights (no config) are not compared."""
    from rsb.config.schema import changed_recipe_values
    changed = changed_recipe_values(ckpt["config"], cfg) if "config" in ckpt else []
    if changed and not resume_changed:
        raise UserError(f"{path} belongs to a run with other recipe values ({', '.join(changed)}); give a new "
                        f"--output for a new run, or add --resume-changed to continue it with these values.")
    return changed


def rng_state() -> dict:
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(_tuples(state["python"]))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuples(x):
    """random.setstate needs tuples; a save/load round trip may turn them into lists."""
    return tuple(_tuples(i) for i in x) if isinstance(x, (list, tuple)) else x


def find_resume(run_dir: Path) -> tuple[Path, dict] | None:
    """The newest loadable checkpoint of a run folder (last.pt, else prev.pt, else the newest epoch_*.pt),
    loaded; unreadable ones are reported and passed over. None when the folder has no checkpoint."""
    run_dir = Path(run_dir)
    candidates = [run_dir / LAST, run_dir / PREV] + sorted(run_dir.glob(EPOCH_CHECKPOINTS), reverse=True)
    candidates = [p for p in candidates if p.is_file()]
    errors = []
    for path in candidates:
        try:
            return path, load(path)
        except UserError as e:
            errors.append(str(e))
            print(f"warning: {e} Trying an older checkpoint.", file=sys.stderr)
    if candidates:
        raise UserError(f"no checkpoint in {run_dir} can be loaded ({len(candidates)} tried); move the folder "
                        f"aside to start afresh, or pass --resume with a good checkpoint.")
    return None


@dataclass
class TrainState:
    """Where a run is: completed epochs, optimizer steps into the current one, steps in all, the best
    evaluation so far. The loop advances it after every optimizer step; a checkpoint stores it (its keys are
    the checkpoint's own: epoch, epoch_step, step, best)."""
    epoch: int = 0
    epoch_step: int = 0
    step: int = 0
    best: dict = field(default_factory=lambda: {"top1": -1.0, "epoch": -1})

    def advance(self) -> None:
        self.epoch_step += 1
        self.step += 1

    def end_epoch(self) -> None:
        self.epoch, self.epoch_step = self.epoch + 1, 0

    def as_dict(self) -> dict:
        return {"epoch": self.epoch, "epoch_step": self.epoch_step, "step": self.step, "best": dict(self.best)}

    @classmethod
    def from_checkpoint(cls, ckpt: dict) -> "TrainState":
        return cls(ckpt["epoch"], ckpt["epoch_step"], ckpt["step"], ckpt.get("best") or cls().best)


def _copy_of(source: Path, target: Path) -> None:
    """target becomes the same bytes as source, without serialising or hashing again: a hard link where the
    file system allows (last.pt is later replaced by rename, so the link keeps this version), else a copy."""
    with run_folder.atomic_path(target) as tmp:
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)


class CheckpointManager:
    """A run folder's checkpoints: names (last.pt and prev.pt, best.pt, epoch_*.pt), retention, when a
    mid-epoch checkpoint is due (by time or by steps), and the resume order. Each save serialises once."""

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

    def save(self, state: dict, epoch_end: bool = False, is_best: bool = False) -> None:
        """last.pt (the one before it kept as prev.pt); at an epoch's end also best.pt when it is the best so far
        and epoch_NNNN.pt when per-epoch copies are kept (`state["epoch"]` names it)."""
        self.last_save = time.monotonic()
        if not self.enabled:  # DDP: rank 0 writes
            return
        last = self.folder / LAST
        save_atomic(state, last, keep_previous=True)
        if is_best:
            _copy_of(last, self.folder / BEST)
        if epoch_end and self.keep_epochs > 0:
            _copy_of(last, self.folder / run_folder.epoch_checkpoint(state["epoch"]))
            for old in sorted(self.folder.glob(EPOCH_CHECKPOINTS))[:-self.keep_epochs]:
                old.unlink()

    def find_resume(self) -> tuple[Path, dict] | None:
        return find_resume(self.folder)
