"""ImageNet-V2 folders: the layout check and the label rule.

Why a check before scoring: a partial download, the wrong folder (ImageNet's WordNet-id layout) or a V2 set
for another class count still "works" with a generic folder reader and gives a plausible-looking, wrong number.
Why int(folder name): V2's folders "0".."999" are ImageNet-1k class indices. Sorting them as strings, as
torchvision's ImageFolder does, puts "10" before "2" and mislabels 988 of 1000 classes (about 1% top-1).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rsb.data.folder import WNID, ImageFolderIndex
from rsb.errors import UserError

IMAGES_PER_CLASS = 10           # every published V2 variant: 10,000 images, 10 per class


@dataclass
class V2Set:
    index: ImageFolderIndex
    labels: np.ndarray  # per file of the index: int(folder name)


def _examples(items, n: int = 3) -> str:
    items = list(items)
    shown = ", ".join(str(i) for i in items[:n])
    return shown + (", ..." if len(items) > n else "")


def expected_per_class(root: str | Path) -> int:
    """10 for ImageNet-V2; for the built-in sample's v2 split, the count its COMPLETE.json records."""
    marker = Path(root).parent / "COMPLETE.json"
    if marker.is_file():
        try:
            return int(json.loads(marker.read_text())["splits"]["v2"])
        except (ValueError, KeyError, TypeError):
            pass
    return IMAGES_PER_CLASS


def class_folder_root(root: Path) -> Path:
    """Accept the folder that holds imagenetv2-<variant>-format-val as well as that folder itself."""
    if root.is_dir():
        subs = [e for e in os.scandir(root) if e.is_dir() and not e.name.startswith(".")]
        if len(subs) == 1 and subs[0].name.startswith("imagenetv2-"):
            return Path(subs[0].path)
    return root


def check_folder_names(root: Path, num_classes: int) -> None:
    """Class folders must be exactly "0" .. str(num_classes - 1); say what was found otherwise."""
    if not root.is_dir():
        raise UserError(f"ImageNet-V2 folder {root} does not exist or is not a folder.")
    names = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    want = f"folders 0..{num_classes - 1}"
    if not names:
        raise UserError(f"ImageNet-V2 folder {root} has no class folders; expected {want} of images.")
    wnids = [n for n in names if WNID.match(n)]
    if wnids:
        raise UserError(f"{root} has WordNet-id class folders ({_examples(wnids)}), the ImageNet layout, not "
                        f"ImageNet-V2's numbered {want}; an ImageNet-layout val set goes under --data.")
    # str(int(n)) == n rejects "007", "+1", " 3": the folder name must be the class index itself.
    bad = [n for n in names if not (n.isdigit() and str(int(n)) == n)]
    if bad:
        raise UserError(f"{root} has {len(bad)} folder(s) not named by a class index "
                        f"({_examples(repr(b) for b in bad)}); ImageNet-V2 needs {want}.")
    found = {int(n) for n in names}
    extra = sorted(i for i in found if i >= num_classes)
    if extra:
        raise UserError(f"{root} has {len(found)} class folders up to {max(found)}, but the model has "
                        f"{num_classes} classes (folders {_examples(extra)} are out of range).")
    missing = sorted(set(range(num_classes)) - found)
    if missing:
        raise UserError(f"{root} is missing {len(missing)} of the {num_classes} class folders 0..{num_classes - 1} "
                        f"(missing: {_examples(missing, 5)}); is the download or extraction incomplete?")


def v2_labels(index: ImageFolderIndex) -> np.ndarray:
    """Per-file labels by the V2 rule: int(folder name), not the folder's position in string order."""
    by_position = np.array([int(c) for c in index.classes], dtype=np.int64)
    return by_position[index.labels]


def load_v2(root: str | Path, num_classes: int, per_class: int | None = None) -> V2Set:
    """Check an ImageNet-V2-layout folder and return its file index with V2 labels.
    `per_class` defaults to expected_per_class(root): 10, or the sample's own count."""
    root = class_folder_root(Path(root))
    check_folder_names(root, num_classes)
    per_class = expected_per_class(root) if per_class is None else per_class
    index = ImageFolderIndex(root)
    labels = v2_labels(index)
    counts = np.bincount(labels, minlength=num_classes)
    wrong = [(c, int(counts[c])) for c in range(num_classes) if counts[c] != per_class]
    if wrong:
        seen = _examples(f"'{c}' has {n}" for c, n in wrong)
        raise UserError(f"{root} has {len(wrong)} class folder(s) without exactly {per_class} images "
                        f"({seen}); found "
                        f"{len(labels)} images in all, expected {per_class * num_classes}.")
    return V2Set(index, labels)
