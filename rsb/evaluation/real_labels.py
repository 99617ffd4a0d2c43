"""ImageNet-ReaL: the reassessed val labels of real.json, matched to val files by the number in their names.

real.json is a list of 50,000 label lists, entry k for ILSVRC2012_val_%08d.JPEG with number k + 1. The val set
here may sit in class folders, tar shards or parquet rows, so its order is not file-number order: each image is
matched by the number in its file name (a shard key ILSVRC2012_val_00000001 with its .jpg, a parquet row's path). Images
whose list is empty (3,163 of them) are left out; a prediction is right if it is in the image's list.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from rsb.errors import UserError

VAL_NAME = re.compile(r"^ILSVRC2012_val_(\d{8})(?:\.(?:JPEG|jpeg|jpg|JPG|png|webp))?$")


def read_real_json(path: str | Path, num_classes: int) -> list[list[int]]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"ReaL labels file {path} does not exist.")
    try:
        real = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise UserError(f"ReaL labels file {path} is not valid JSON ({e}).") from None
    ok = isinstance(real, list) and all(
        isinstance(r, list) and all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c < num_classes
                                    for c in r) for r in real)
    if not ok or not real:
        raise UserError(f"ReaL labels file {path} is not a list of label lists with class indices "
                        f"0..{num_classes - 1} (the format of real.json).")
    return real


def real_targets(real: list[list[int]], index, source: str = "real.json") -> torch.Tensor:
    """(files, longest list) int64 tensor of each val file's ReaL labels, in index order, padded with -1.
    Checks the val set is the one the labels describe: same image count, every file named
    ILSVRC2012_val_%08d.JPEG with a number in 1..len(real), no number twice."""
    if len(index) != len(real):
        raise UserError(f"{source} has {len(real)} label lists but the val set {index.root} has {len(index)} "
                        f"images; ReaL labels need the complete ImageNet val set.")
    width = max(1, max(len(r) for r in real))
    out = torch.full((len(index), width), -1, dtype=torch.int64)
    seen = torch.zeros(len(real), dtype=torch.bool)
    for i in range(len(index)):
        m = VAL_NAME.match(index.name(i))
        if not m:
            raise UserError(f"val image {index.where(i)} is not named ILSVRC2012_val_%08d.JPEG, so it cannot be "
                            f"matched to an entry of {source}.")
        k = int(m.group(1)) - 1
        if not 0 <= k < len(real) or seen[k]:
            why = "appears twice" if 0 <= k < len(real) else f"is beyond the {len(real)} entries"
            raise UserError(f"val file number {k + 1} ({index.where(i)}) {why}; {source} does not match this "
                            f"val set.")
        seen[k] = True
        if real[k]:
            out[i, :len(real[k])] = torch.tensor(real[k], dtype=torch.int64)
    return out


def real_hits(top5: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per image: top-1 in its list, any of the top-5 in its list, and whether it is scored (list not empty)."""
    scored = targets[:, 0] >= 0
    match = top5.unsqueeze(2).eq(targets.unsqueeze(1)) & (targets >= 0).unsqueeze(1)  # (B, k, width)
    hit1 = match[:, 0].any(dim=1) & scored
    hit5 = match.any(dim=2).any(dim=1) & scored
    return hit1, hit5, scored
