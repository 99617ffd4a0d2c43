"""ImageNet-layout folders (<root>/<class>/<image>) with a cached index and tolerant decoding.

Why not torchvision's ImageFolder: it rescans the tree at every start (minutes on 1.28M files), keeps a list of
Python strings that every worker copies as it touches it, and a single corrupt JPEG stops the run. Here the index
is two numpy arrays (one bytes blob of paths, one label array) cached on disk, and an unreadable image is
reported by path and replaced by the next readable one; the caller counts replacements.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from rsb.data.index_store import PackedStrings, cached_arrays
from rsb.errors import UserError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
WNID = re.compile(r"^n\d{8}$")  # an ImageNet WordNet-id class folder such as n01440764


def class_folders(root: Path) -> list[str]:
    """The sorted class folder names of an ImageNet-layout folder (the labels' order), without reading images."""
    return sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))


def scan_folder(root: Path) -> tuple[list[str], list[str], list[int]]:
    """Classes (sorted folder names), relative file paths and labels of an ImageNet-layout folder."""
    classes = class_folders(root)
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
    """The file list of one folder, built once and cached keyed by the folder's path and modification times
    (rsb.data.index_store, as the shard and parquet indexes are)."""

    def __init__(self, root: str | Path, use_cache: bool = True):
        self.root = Path(root)
        self._root_str = str(self.root)
        if not self.root.is_dir():
            raise UserError(f"data folder {self.root} does not exist or is not a folder.")
        arrays = cached_arrays("folder", self._stamps(), self._scan, use_cache)
        self.classes = [str(c) for c in arrays["classes"]]
        self._files, self.labels = PackedStrings.from_arrays(arrays, "files"), arrays["labels"]
        if not self.classes:
            raise UserError(f"data folder {self.root} has no class folders; expected <root>/<class>/<images>.")
        if len(self.labels) == 0:
            raise UserError(f"data folder {self.root} has class folders but no images "
                            f"(looked for {', '.join(IMAGE_EXTENSIONS)}).")

    def _stamps(self) -> list[str]:
        # The folder's own mtime changes when a class folder is added; class mtimes when files are.
        stamps = [str(self.root.resolve()), str(self.root.stat().st_mtime_ns)]
        for e in sorted(os.scandir(self.root), key=lambda e: e.name):
            if e.is_dir():
                stamps.append(f"{e.name}:{e.stat().st_mtime_ns}")
        return stamps

    def _scan(self) -> dict[str, np.ndarray]:
        classes, files, labels = scan_folder(self.root)
        return {"classes": np.array(classes, dtype=str), **PackedStrings.pack(files).arrays("files"),
                "labels": np.asarray(labels, dtype=np.int64)}

    def __len__(self) -> int:
        return len(self.labels)

    def path(self, i: int) -> Path:
        return Path(self.path_str(i))

    def path_str(self, i: int) -> str:
        # A plain string on the hot path: pathlib interns every path component it parses, so Path objects
        # would make each worker keep every file name it ever touched.
        return os.path.join(self._root_str, self._rel(i))

    def _rel(self, i: int) -> str:
        return self._files[i]

    # The source interface of rsb.data.dataset: the folder's item is its file.
    def read(self, i: int) -> bytes:
        with open(self.path_str(i), "rb") as f:
            return f.read()

    def where(self, i: int) -> str:
        return self.path_str(i)

    def name(self, i: int) -> str:
        return os.path.basename(self._rel(i))

    @property
    def num_classes(self) -> int:
        return len(self.classes)
