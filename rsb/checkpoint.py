"""Checkpoints: atomic writes, safe loads (weights_only=True: loading never runs code), RNG state, resume.

A checkpoint is a dict of plain data: model/optimizer/scaler state, the epoch and step reached, RNG states,
the resolved config. It is written to a temporary file in the same folder, flushed to disk, then renamed over
the old one, so a crash mid-write leaves the previous checkpoint intact.
"""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

from rsb.errors import UserError

LAST, BEST = "last.pt", "best.pt"


def save_atomic(obj: dict, path: Path) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    try:  # make the rename itself durable
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


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
    return ckpt


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


def find_resume(run_dir: Path) -> Path | None:
    last = Path(run_dir) / LAST
    return last if last.is_file() else None
