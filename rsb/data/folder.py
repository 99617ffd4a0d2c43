"""ImageNet-layout folders (<root>/<class>/<image>) with a cached index and tolerant decoding.

Why not torchvision's ImageFolder: it rescans the tree at every start (minutes on 1.28M files), keeps a list of
Python strings that every worker copies as it touches it, and a single corrupt JPEG stops the run. Here the index
is two numpy arrays (one bytes blob of paths, one label array) cached on disk, and an unreadable image is
reported by path and replaced by the next readable one; the caller counts replacements.
"""
from __future__ import annotations

import hashlib
import os
import random
import re
import sys
from pathlib import Path

import numpy as np
import torch

from rsb import runfolder
from rsb.data.decode import UnreadableImage, load_rgb
from rsb.errors import UserError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
WNID = re.compile(r"^n\d{8}$")  # an ImageNet WordNet-id class folder such as n01440764


def split_folders(root: str | Path, splits: tuple[str, ...], split_itself_ok: bool = False) -> list[Path]:
    """<root>/<split> for each split of an ImageNet-layout data folder: the one rule by which training and
    validate.py find their data. With split_itself_ok (validate.py reads one split), a root that itself holds
    WordNet-id class folders is taken as that split."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"data folder {root} does not exist.")
    missing = [s for s in splits if not (root / s).is_dir()]
    if not missing:
        return [root / s for s in splits]
    if split_itself_ok and len(splits) == 1 and any(WNID.match(e.name) for e in os.scandir(root) if e.is_dir()):
        return [root]
    expected = " and ".join(f"{root}/{s}/<wnid>/*.JPEG" for s in splits)
    raise UserError(f"data folder {root} has no '{missing[0]}' folder; expected {expected}.")


def _cache_dir() -> Path:
    return runfolder.cache_root() / "index"


def check_bad_images(skipped: int, seen: int, max_fraction: float) -> None:
    """Stop a run whose unreadable images exceed `max_fraction` of the samples seen (each was reported, by path,
    when it was replaced by the next image)."""
    if skipped > max(1, max_fraction * seen):
        raise UserError(f"{skipped} of {seen} training samples were unreadable images (more than "
                        f"run.max_bad_image_fraction={max_fraction}); see the warnings above for their paths and "
                        f"fix or remove them.")


def scan_folder(root: Path) -> tuple[list[str], list[str], list[int]]:
    """Classes (sorted folder names), relative file paths and labels of an ImageNet-layout folder."""
    classes = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    files, labels = [], []
    for label, name in enumerate(classes):
        for dirpath, _, names in os.walk(root / name):
            rel = os.path.relpath(dirpath, root)
            for f in sorted(names):
                if f.lower().endswith(IMAGE_EXTENSIONS):
                    files.append(os.path.join(rel, f))
                    labels.append(label)
    return classes, files, labels


class ImageFolderIndex:
    """The file list of one folder, built once and cached keyed by the folder's path and modification times."""

    def __init__(self, root: str | Path, use_cache: bool = True):
        self.root = Path(root)
        self._root_str = str(self.root)
        if not self.root.is_dir():
            raise UserError(f"data folder {self.root} does not exist or is not a folder.")
        key = self._cache_key()
        cache_file = _cache_dir() / f"{key}.npz"
        if use_cache and cache_file.exists():
            with np.load(cache_file, allow_pickle=False) as z:
                self.classes = [str(c) for c in z["classes"]]
                self._paths, self._offsets, self.labels = z["paths"], z["offsets"], z["labels"]
        else:
            self.classes, files, labels = scan_folder(self.root)
            encoded = [f.encode() for f in files]
            self._offsets = np.cumsum([0] + [len(e) for e in encoded]).astype(np.int64)
            self._paths = np.frombuffer(b"".join(encoded), dtype=np.uint8).copy()
            self.labels = np.asarray(labels, dtype=np.int64)
            if use_cache and len(files):
                self._save(cache_file)
        if not self.classes:
            raise UserError(f"data folder {self.root} has no class folders; expected <root>/<class>/<images>.")
        if len(self.labels) == 0:
            raise UserError(f"data folder {self.root} has class folders but no images "
                            f"(looked for {', '.join(IMAGE_EXTENSIONS)}).")

    def _cache_key(self) -> str:
        # The folder's own mtime changes when a class folder is added; class mtimes when files are.
        stamps = [str(self.root.resolve()), str(self.root.stat().st_mtime_ns)]
        for e in sorted(os.scandir(self.root), key=lambda e: e.name):
            if e.is_dir():
                stamps.append(f"{e.name}:{e.stat().st_mtime_ns}")
        return hashlib.sha256("\n".join(stamps).encode()).hexdigest()[:24]

    def _save(self, cache_file: Path) -> None:
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            with runfolder.atomic_path(cache_file) as tmp, open(tmp, "wb") as f:  # a file: savez adds no suffix
                np.savez(f, classes=np.array(self.classes), paths=self._paths, offsets=self._offsets,
                         labels=self.labels)
        except OSError:
            pass  # a read-only cache only costs a rescan next time

    def __len__(self) -> int:
        return len(self.labels)

    def path(self, i: int) -> Path:
        return Path(self.path_str(i))

    def path_str(self, i: int) -> str:
        # A plain string on the hot path: pathlib interns every path component it parses, so Path objects
        # would make each worker keep every file name it ever touched.
        return os.path.join(self._root_str, bytes(self._paths[self._offsets[i]:self._offsets[i + 1]]).decode())


def _seed_augmentation(seed: int) -> None:
    # timm's transforms draw from the global python, numpy and torch (CPU) generators. Only the CPU generator is
    # seeded: torch.manual_seed also queues a lazy CUDA seed with a formatted stack trace, ~0.4 ms per sample in a
    # loader worker (benchmarks/input_pipeline.py); the CPU stream it gives is the same.
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.default_generator.manual_seed(seed)


class ImageFolderDataset:
    """Map-style dataset over an ImageFolderIndex. Items are (image, label, skipped), where `skipped` counts the
    unreadable files passed over to produce this item, so the training loop can total and bound them."""

    def __init__(self, index: ImageFolderIndex, transform=None, labels: np.ndarray | None = None,
                 decode=load_rgb):
        """`decode`: path -> what `transform` takes (rsb.data.transforms.train_pipeline pairs the two)."""
        self.index = index
        self.transform = transform
        self.labels = index.labels if labels is None else labels
        self.decode = decode

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item):
        i = item
        if isinstance(item, tuple):  # (index, sample seed) from RepeatedAugSampler
            i, sample_seed = item
            _seed_augmentation(sample_seed)
        for skipped in range(min(len(self), 100)):
            j = (i + skipped) % len(self)
            path = self.index.path_str(j)
            try:
                img = self.decode(path)
            except Exception as e:  # any decoder failure: report the path, use the next file
                print(f"warning: skipping unreadable image {path}: {type(e).__name__}: {e}", file=sys.stderr)
                continue
            if self.transform is not None:
                try:
                    img = self.transform(img)
                except UnreadableImage as e:  # found by a deferred, by-region decode (rsb.data.decode)
                    print(f"warning: skipping unreadable image {e}", file=sys.stderr)
                    continue
            return img, int(self.labels[j]), skipped
        raise UserError(f"100 consecutive images from {self.index.path(i)} on could not be read; "
                        f"check the data folder {self.index.root}.")
