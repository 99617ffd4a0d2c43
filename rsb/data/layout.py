"""Which layout a --data folder holds, and its train and val sources; one rule for train.py, validate.py, the
sweep and rsb-shards.

  folder   train/<wnid>/*.JPEG and val/<wnid>/*.JPEG                    rsb.data.folder
  flat val train/<wnid>/*.JPEG and val/*.JPEG with a ground-truth file  rsb.data.flat_val
  shards   *train*.tar and *validation*.tar (or *val*), in the folder or one level down   rsb.data.tar_shards
  parquet  *train*.parquet and *validation*.parquet, likewise (Hugging Face keeps them in data/)  rsb.data.parquet
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from rsb.data import flat_val
from rsb.data.folder import IMAGE_EXTENSIONS, WNID, ImageFolderIndex, class_folders
from rsb.errors import UserError

LAYOUTS = ("train/<wnid>/*.JPEG with val/<wnid>/*.JPEG or a flat val/ and its ground-truth file (--val-labels), "
           "webdataset tar shards named *train*.tar and *validation*.tar, or Hugging Face parquet files named "
           "*train*.parquet and *validation*.parquet")
SPLIT_WORDS = {"train": re.compile(r"(?<![a-z])train(?![a-z])"),
               "val": re.compile(r"(?<![a-z])(val|validation)(?![a-z])")}


def _files_with(root: Path, suffix: str) -> list[Path]:
    """Files ending in `suffix` in root and in its sub-folders (one level: data/, train/, validation/)."""
    found = []
    for e in os.scandir(root):
        if e.is_file() and e.name.endswith(suffix):
            found.append(Path(e.path))
        elif e.is_dir() and not e.name.startswith("."):
            # Only names are compared: a class folder tree below costs one listing per sub-folder, no more.
            found += [Path(s.path) for s in os.scandir(e.path) if s.name.endswith(suffix) and s.is_file()]
    return sorted(found)


def split_files(root: Path, files: list[Path], split: str) -> list[Path]:
    word = SPLIT_WORDS[split]
    return [f for f in files if word.search(str(f.relative_to(root)).lower())]


def _is_flat(folder: Path) -> bool:
    has_classes = has_images = False
    for e in os.scandir(folder):
        if e.is_dir() and not e.name.startswith("."):
            has_classes = True
            break
        has_images = has_images or (e.is_file() and e.name.lower().endswith(IMAGE_EXTENSIONS))
    return has_images and not has_classes


def _labels_file(root: Path, val_labels) -> Path:
    found = Path(val_labels) if val_labels is not None else flat_val.find_val_labels(root)
    if found is None:
        raise UserError(f"{root}/val holds images but no class folders, and no ground-truth file was found beside "
                        f"it; give --val-labels ({flat_val.DEVKIT_FILE} with the devkit's meta.mat beside it, or "
                        f"{flat_val.KAGGLE_FILE}).")
    return found


def _packed_files(root: Path, split: str) -> tuple[str, list[Path]] | None:
    """("shards" or "parquet", the split's files) when `root` holds tar shards or parquet files, else None."""
    for suffix, kind in ((".tar", "shards"), (".parquet", "parquet")):
        files = _files_with(root, suffix)
        if files:
            chosen = split_files(root, files, split)
            if not chosen:
                word = "train" if split == "train" else "validation"
                raise UserError(f"data folder {root} holds {suffix} files but none named for the {split} split "
                                f"(a name with '{word}' in it, as imagenet1k-{word}-0000{suffix}).")
            return kind, chosen
    return None


def _open_packed(root: Path, kind: str, files: list[Path], use_cache: bool):
    if kind == "shards":
        from rsb.data.tar_shards import TarShardIndex
        return TarShardIndex(files, root, use_cache=use_cache)
    from rsb.data.parquet import ParquetIndex  # pyarrow only for parquet data
    return ParquetIndex(files, root, use_cache=use_cache)


def _no_layout(root: Path, missing: str) -> UserError:
    return UserError(f"data folder {root} has no '{missing}' folder and no tar shards or parquet files; rsb reads "
                     f"{LAYOUTS}.")


def _check_root(root) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"data folder {root} does not exist.")
    return root


def detect(root, val_labels=None) -> str:
    """The layout of a training data folder ("folder", "flat val", "shards" or "parquet"), from names only; one
    sentence naming the layouts when none matches."""
    root = _check_root(root)
    found = _packed_files(root, "train")
    if found is not None:
        _packed_files(root, "val")
        return found[0]
    for split in ("train", "val"):
        if not (root / split).is_dir():
            raise _no_layout(root, split)
    if _is_flat(root / "val"):
        _labels_file(root, val_labels)
        return "flat val"
    return "folder"



def open_splits(root, val_labels=None, use_cache: bool = True):
    """The train and val sources of a data folder in any layout, checked to agree on the classes."""
    root = Path(root)
    kind = detect(root, val_labels)
    if kind in ("shards", "parquet"):
        train = _open_packed(root, kind, _packed_files(root, "train")[1], use_cache)
        val = _open_packed(root, kind, _packed_files(root, "val")[1], use_cache)
        if val.num_classes > train.num_classes:
            raise UserError(f"the val split in {root} has class index {val.num_classes - 1} but the train split "
                            f"only {train.num_classes} classes.")
        return train, val
    train = ImageFolderIndex(root / "train", use_cache=use_cache)
    if kind == "flat val":
        return train, flat_val.FlatValIndex(root / "val", _labels_file(root, val_labels), train.classes)
    val = ImageFolderIndex(root / "val", use_cache=use_cache)
    if train.classes != val.classes:
        raise UserError(f"{root}/train has {len(train.classes)} classes and {root}/val has {len(val.classes)}, "
                        f"or their names differ; both need the same class folders.")
    return train, val


def open_val(root, val_labels=None):
    """The val source for validate.py: of a data folder in any layout, or `root` itself when it is a val folder
    (WordNet-id class folders, or flat images with their ground truth)."""
    root = _check_root(root)
    found = _packed_files(root, "val")
    if found is not None:
        return _open_packed(root, *found, use_cache=True)
    if (root / "val").is_dir():
        folder, parent = root / "val", root
    elif any(WNID.match(e.name) for e in os.scandir(root) if e.is_dir()) or _is_flat(root):
        folder, parent = root, root.parent
    else:
        raise _no_layout(root, "val")
    if not _is_flat(folder):
        return ImageFolderIndex(folder)
    labels = _labels_file(parent, val_labels)
    train = parent / "train"
    return flat_val.FlatValIndex(folder, labels, class_folders(train) if train.is_dir() else None)
