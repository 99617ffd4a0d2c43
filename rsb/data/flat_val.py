"""A flat ImageNet val folder (val/ILSVRC2012_val_00000001.JPEG ... with no class folders, as the ILSVRC2012
archive unpacks) labelled by a ground-truth file: the devkit's ILSVRC2012_validation_ground_truth.txt or the
Kaggle copy's LOC_val_solution.csv. Not cached: one folder listing and one small file.

Labels always mean the position of the WordNet id in the sorted ids of train/ (the rule of the class folders).
The devkit's file gives ILSVRC2012 ids 1..1000 instead, an order of its own (id 1 is n02119789, kit fox; sorted
position 0 is n01440764, tench), so its ids go through the devkit's data/meta.mat (synsets: ILSVRC2012_ID, WNID)
to WordNet ids first; without meta.mat the file is refused rather than read in the wrong order.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from rsb.data.folder import IMAGE_EXTENSIONS, WNID
from rsb.data.index_store import PackedStrings
from rsb.errors import UserError

DEVKIT_FILE = "ILSVRC2012_validation_ground_truth.txt"
KAGGLE_FILE = "LOC_val_solution.csv"


def find_val_labels(root: Path) -> Path | None:
    """A ground-truth file beside val/ (in the data folder), or in the devkit's data/ folder unpacked there."""
    for candidate in (root / KAGGLE_FILE, root / DEVKIT_FILE, root / "ILSVRC2012_devkit_t12" / "data" / DEVKIT_FILE,
                      root / "val" / KAGGLE_FILE, root / "val" / DEVKIT_FILE):
        if candidate.is_file():
            return candidate
    return None


def _devkit_wnids(meta: Path) -> dict[int, str]:
    """ILSVRC2012 id -> WordNet id, from the devkit's meta.mat (a MATLAB struct array `synsets`)."""
    try:
        from scipy.io import loadmat
    except ImportError:
        raise UserError(f"reading the devkit's {meta.name} needs scipy: pip install scipy (or pip install "
                        f"rsb[imagenet]).") from None
    try:
        synsets = loadmat(str(meta), squeeze_me=True)["synsets"]
        ids, wnids = synsets["ILSVRC2012_ID"], synsets["WNID"]
    except (KeyError, ValueError, TypeError, OSError) as e:
        raise UserError(f"{meta} is not the ImageNet devkit's meta.mat (no synsets with ILSVRC2012_ID and WNID: "
                        f"{e}).") from None
    return {int(i): str(w) for i, w in zip(np.atleast_1d(ids), np.atleast_1d(wnids))}


def read_devkit(path: Path) -> dict[str, str]:
    """Image stem -> WordNet id from the devkit's ground truth (line k: the ILSVRC2012 id of image number k)."""
    meta = path.parent / "meta.mat"
    if not meta.is_file():
        raise UserError(f"{path.name} gives ILSVRC2012 ids, whose order is not the sorted WordNet-id order of "
                        f"the labels; put the devkit's data/meta.mat beside it ({meta}) so the ids can be mapped, "
                        f"or give the Kaggle {KAGGLE_FILE} with --val-labels.")
    by_id = _devkit_wnids(meta)
    out = {}
    for k, line in enumerate(path.read_text().split(), start=1):
        try:
            out[f"ILSVRC2012_val_{k:08d}"] = by_id[int(line)]
        except (ValueError, KeyError):
            raise UserError(f"line {k} of {path} is {line[:20]!r}, not an ILSVRC2012 id found in {meta}.") from None
    return out


def read_kaggle(path: Path) -> dict[str, str]:
    """Image stem -> WordNet id from LOC_val_solution.csv (ImageId,PredictionString; the first token of the
    prediction string is the image's WordNet id, then its boxes)."""
    out = {}
    with open(path, newline="") as f:
        rows = csv.DictReader(f)
        if not rows.fieldnames or not {"ImageId", "PredictionString"} <= set(rows.fieldnames):
            raise UserError(f"{path} has no ImageId and PredictionString columns (the format of {KAGGLE_FILE}).")
        for row in rows:
            words = (row["PredictionString"] or "").split()
            if not words or not WNID.match(words[0]):
                raise UserError(f"{path} row {row['ImageId']} does not start with a WordNet id such as n01440764.")
            out[row["ImageId"]] = words[0]
    return out


def read_val_labels(path: Path) -> dict[str, str]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"val labels file {path} does not exist.")
    if path.suffix.lower() == ".csv":
        return read_kaggle(path)
    return read_devkit(path)


def ground_truth_classes(truth: dict[str, str]) -> list[str]:
    """The sorted WordNet ids a ground-truth file names (all 1000 for ImageNet's 50,000 images), for a val set
    scored without its train/."""
    return sorted(set(truth.values()))


class FlatValIndex:
    """The images of a flat folder, sorted by name, labelled through a ground-truth file."""

    def __init__(self, folder: Path, labels_file: Path, classes: list[str] | None = None):
        self.root = Path(folder)
        truth = read_val_labels(labels_file)
        self.classes = classes if classes is not None else ground_truth_classes(truth)
        position = {w: i for i, w in enumerate(self.classes)}
        names = sorted(e.name for e in os.scandir(self.root)
                       if e.is_file() and e.name.lower().endswith(IMAGE_EXTENSIONS))
        if not names:
            raise UserError(f"val folder {self.root} has no images.")
        labels = np.empty(len(names), np.int64)
        for i, n in enumerate(names):
            stem = n.split(".")[0]
            wnid = truth.get(stem)
            if wnid is None:
                raise UserError(f"val image {self.root / n} has no entry in {labels_file}; give the ground-truth "
                                f"file of this val set.")
            if wnid not in position:
                raise UserError(f"{labels_file} labels {n} as {wnid}, which is not one of the "
                                f"{len(self.classes)} classes of train/.")
            labels[i] = position[wnid]
        self.labels = labels
        self.num_classes = len(self.classes)
        self._names = PackedStrings.pack(names)
        self._root_str = str(self.root)

    def __len__(self) -> int:
        return len(self.labels)

    def read(self, i: int) -> bytes:
        with open(self.where(i), "rb") as f:
            return f.read()

    def where(self, i: int) -> str:
        return os.path.join(self._root_str, self._names[i])

    def name(self, i: int) -> str:
        return self._names[i]
