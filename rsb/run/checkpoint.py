"""Checkpoint files: atomic writes and safe loads (weights_only=True: loading never runs code), digest-checked.

A checkpoint is a dict of plain data (its layout: rsb.run.record) plus a SHA-256 digest of all of it. It is
written to a temporary file in the same folder, flushed to disk, then renamed over the old one (whose previous
version is kept as prev.pt), so a crash or a full disk mid-write leaves a loadable checkpoint. The digest catches
what torch.load does not: torch's zip format has no checksum over tensor data, so a flipped byte on disk would
otherwise load as silently wrong weights.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from rsb.errors import UserError
from rsb.run import folder as run_folder
from rsb.run.folder import PREV

DIGEST_KEY = "sha256"


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
    """The dict stored at path, refused (UserError) when unreadable, holding code, or not matching its digest.
    Readers of a checkpoint's contents go through rsb.run.record.CheckpointRecord, which checks the format."""
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
