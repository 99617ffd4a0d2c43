"""The evaluation sets a command line asks for: ImageNet-val (optionally with ReaL labels), ImageNet-V2 (folder or
archive), or, with no data given, the built-in sample's val and V2-style splits. (A dataset family scored on its
own test split, CIFAR-10, gives it itself: rsb.data.families.)

Each set is a file index plus one label per file. Val keeps the training convention (labels = position of the
WordNet-id folder in sorted order, as train.py assigns them); V2 uses its own rule (int(folder name)).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rsb.data.folder import ImageFolderIndex
from rsb.data.layout import open_val
from rsb.errors import UserError
from rsb.evaluation import archive, imagenet_v2, real_labels

V2_FOLDER = re.compile(r"imagenetv2-(.+)-format-val")


@dataclass
class EvalSet:
    key: str                         # "val" or "v2": the table's column prefix
    where: str                       # for messages
    index: object                    # a source of rsb.data.dataset (folder, flat val, shards, parquet)
    labels: np.ndarray               # per file
    real: torch.Tensor | None = None  # per file ReaL label lists, padded with -1 (val only)
    name: str | None = None          # V2 variant ("matched-frequency", ...) or "sample"


def val_set(root: str | Path, num_classes: int, real_json: str | Path | None = None,
            val_labels: str | Path | None = None) -> EvalSet:
    # The training rule (rsb.data.layout), also taking a val folder itself.
    index = open_val(root, val_labels)
    if isinstance(index, ImageFolderIndex) and len(index.classes) != num_classes:
        raise UserError(f"val folder {index.root} has {len(index.classes)} class folders but the model has "
                        f"{num_classes} classes.")
    if index.num_classes > num_classes:  # shards and parquet carry indices: a subset of classes is fine
        raise UserError(f"the val set {index.root} has class index {index.num_classes - 1} but the model has "
                        f"{num_classes} classes.")
    real = None
    if real_json is not None:
        real = real_labels.real_targets(real_labels.read_real_json(real_json, num_classes), index,
                                        Path(real_json).name)
    return EvalSet("val", str(index.root), index, index.labels, real)


def v2_set(path: str | Path, num_classes: int, per_class: int | None = None) -> EvalSet:
    path = Path(path)
    name = None
    if archive.is_archive(path):
        path, name = archive.extract_cached(path)
    elif not path.exists():
        raise UserError(f"ImageNet-V2 path {path} does not exist (give the extracted folder or the .tar.gz).")
    v2 = imagenet_v2.load_v2(path, num_classes, per_class)
    if name is None:
        m = V2_FOLDER.search(v2.index.root.name)
        sample = (v2.index.root.parent / "COMPLETE.json").is_file()  # the built-in sample's marker
        name = m.group(1) if m else "sample" if sample else v2.index.root.name
    return EvalSet("v2", str(v2.index.root), v2.index, v2.labels, None, name)


def sample_sets(num_classes: int) -> list[EvalSet]:
    """The built-in sample data's val and V2-style splits (drawn first if this machine has none)."""
    from rsb.data.sample import NUM_CLASSES, ensure_sample_dataset
    if num_classes != NUM_CLASSES:
        raise UserError(f"no data given, and the built-in sample data has {NUM_CLASSES} classes but the model "
                        f"has {num_classes}; pass --data and/or --imagenet-v2.")
    root = ensure_sample_dataset()
    return [val_set(root, num_classes), v2_set(root / "v2", num_classes)]


def requested_sets(num_classes: int, data=None, imagenet_v2=None, real_json=None, v2_per_class: int | None = None,
                   log=print, val_labels=None) -> list[EvalSet]:
    """The sets asked for: val (with ReaL labels if given) from `data`, V2 from `imagenet_v2`; with neither,
    the built-in sample's val and V2 splits."""
    if data is None and imagenet_v2 is None:
        found = sample_sets(num_classes)
        log(f"no --data or --imagenet-v2 given: scoring the built-in sample data ({found[0].where} and "
            f"{found[1].where})")
        return found
    out = []
    if data is not None:
        out.append(val_set(data, num_classes, real_json, val_labels))
    if imagenet_v2 is not None:
        out.append(v2_set(imagenet_v2, num_classes, v2_per_class))
    return out
