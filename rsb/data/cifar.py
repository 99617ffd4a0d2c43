"""CIFAR-10 for the 2015 ResNet experiments: the archive users download themselves (cifar-10-python.tar.gz, MD5
checked) or its extracted folder, read by torchvision's own CIFAR10 reader (download=False); a built-in CIFAR-like
sample (32x32, ten classes) so every command runs without it; the fixed held-out split; in-memory datasets.

The whole set is 150 MB of uint8, so it is held as arrays and the loader only indexes them: no decoding, no
per-image transform in workers. Normalising (the train split's per-pixel mean image) and the augmentation
(4-pixel zero padding, a random 32x32 crop, horizontal flip) run on the device in rsb.data.batch.DeviceBatch,
after the mean is subtracted, so the padding is zero in the mean-subtracted input, as in the paper.

Why torchvision's reader: it knows the pickled batch layout and checks every file's MD5 before unpickling, so
only the official files are ever unpickled (a pickle can run code).
"""
from __future__ import annotations

import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rsb.run import folder as run_folder
from rsb.errors import UserError

ARCHIVE_NAME = "cifar-10-python.tar.gz"
ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"  # the archive's published MD5 (torchvision's CIFAR10.tgz_md5)
BATCHES_FOLDER = "cifar-10-batches-py"
TRAIN_IMAGES, TEST_IMAGES, NUM_CLASSES = 50_000, 10_000, 10
HOLDOUT_SEED = 0  # the val split is fixed: the same 5k for every run and seed
INPUT_PATH = ("CIFAR arrays in memory; per-pixel mean subtraction, 4-px zero padding, random 32x32 crop and "
              "flip on the device")

# The built-in CIFAR-like sample: images per class, and a version bumped when the drawing changes.
SAMPLE_SPLITS = {"train": 200, "test": 50}
SAMPLE_VERSION = 1
SAMPLE_SHIFT = 2.5  # rsb.data.sample's harder distribution: wider hue jitter, more distractors, more noise


@dataclass
class ArraySplit:
    """One split as arrays: images (N, 32, 32, 3) uint8 and labels (N,) int64. Items are (uint8 CHW tensor,
    label, 0) like rsb.data.folder.ImageFolderDataset's (no image is ever unreadable here)."""
    images: np.ndarray
    labels: np.ndarray
    where: str

    @property
    def classes(self) -> list[str]:
        return [str(c) for c in range(NUM_CLASSES)]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, item):
        i = item[0] if isinstance(item, tuple) else item  # (index, sample seed) from RepeatedAugSampler
        return torch.from_numpy(self.images[i]).permute(2, 0, 1), int(self.labels[i]), 0

    def mean_image(self) -> torch.Tensor:
        """The per-pixel mean (3, 32, 32) on the 0..255 scale: what the paper subtracts."""
        return torch.from_numpy(self.images.mean(axis=0, dtype=np.float64).astype(np.float32)).permute(2, 0, 1)


def train_images(sample: bool) -> int:
    return SAMPLE_SPLITS["train"] * NUM_CLASSES if sample else TRAIN_IMAGES


def looks_like_cifar(path: Path) -> bool:
    path = Path(path)
    return path.name in (ARCHIVE_NAME, BATCHES_FOLDER) or (path / BATCHES_FOLDER).is_dir()


def extract_archive(path: Path) -> Path:
    """The archive, MD5 checked, extracted once into the cache; the folder holding cifar-10-batches-py."""
    digest = run_folder.file_digest(path, "md5")
    if digest != ARCHIVE_MD5:
        raise UserError(f"{path} is not the CIFAR-10 archive (MD5 {digest}, expected {ARCHIVE_MD5}); download "
                        f"cifar-10-python.tar.gz again from https://www.cs.toronto.edu/~kriz/cifar.html.")
    return run_folder.extract_once(path, run_folder.cache_root() / "cifar10" / ARCHIVE_MD5)


def torchvision_root(path: Path) -> Path:
    """The folder torchvision's CIFAR10 takes as root (it reads root/cifar-10-batches-py)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"CIFAR-10 data {path} does not exist; give {ARCHIVE_NAME} or the folder it extracts to.")
    if path.is_file():
        if not tarfile.is_tarfile(path):
            raise UserError(f"{path} is neither a folder nor the {ARCHIVE_NAME} archive.")
        return extract_archive(path)
    if (path / BATCHES_FOLDER).is_dir():
        return path
    if path.name == BATCHES_FOLDER:
        return path.parent
    raise UserError(f"{path} holds no {BATCHES_FOLDER} folder; give {ARCHIVE_NAME} or the folder it extracts to.")


def read_cifar10(path: Path) -> tuple[ArraySplit, ArraySplit]:
    """CIFAR-10's train (50k) and test (10k) splits, read by torchvision's CIFAR10 (download=False)."""
    from torchvision.datasets import CIFAR10
    root = torchvision_root(path)
    try:
        train, test = (CIFAR10(str(root), train=t, download=False) for t in (True, False))
    except RuntimeError as e:  # torchvision: "Dataset not found or corrupted."
        raise UserError(f"{root / BATCHES_FOLDER} is incomplete or corrupt (torchvision: {e}); extract "
                        f"{ARCHIVE_NAME} again.") from None
    where = str(root / BATCHES_FOLDER)
    return (ArraySplit(np.ascontiguousarray(train.data), np.asarray(train.targets, np.int64), where + " (train)"),
            ArraySplit(np.ascontiguousarray(test.data), np.asarray(test.targets, np.int64), where + " (test)"))


def _draw_sample_split(split: str, per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from rsb.data.sample import draw_image
    images, labels = [], []
    for label in range(NUM_CLASSES):
        rng = np.random.default_rng([seed, label, list(SAMPLE_SPLITS).index(split), 32])
        for _ in range(per_class):
            big = draw_image(label, rng, SAMPLE_SHIFT).astype(np.float32)  # 64x64, area-averaged to 32x32
            images.append(big.reshape(32, 2, 32, 2, 3).mean(axis=(1, 3)).round().astype(np.uint8))
            labels.append(label)
    return np.stack(images), np.asarray(labels, np.int64)


def ensure_cifar_sample(root: str | Path | None = None, seed: int = 0, splits: dict | None = None) -> Path:
    """The built-in CIFAR-like sample (sample.npz: train and test images and labels), drawn once (seconds)."""
    splits = splits or SAMPLE_SPLITS
    root = Path(root) if root is not None else run_folder.cache_root() / f"cifar-sample-v{SAMPLE_VERSION}"
    done = lambda folder: (folder / "COMPLETE.json").exists()  # noqa: E731
    if not done(root):
        with run_folder.atomic_folder(root, complete=done) as tmp:
            arrays = {}
            for split, per_class in splits.items():
                arrays[f"{split}_images"], arrays[f"{split}_labels"] = _draw_sample_split(split, per_class, seed)
            np.savez(tmp / "sample.npz", **arrays)
            (tmp / "COMPLETE.json").write_text(json.dumps({"version": SAMPLE_VERSION, "seed": seed,
                                                           "splits": splits}))
    return root


def read_sample(root: Path) -> tuple[ArraySplit, ArraySplit]:
    with np.load(Path(root) / "sample.npz", allow_pickle=False) as z:
        return (ArraySplit(z["train_images"], z["train_labels"], f"{root} (train)"),
                ArraySplit(z["test_images"], z["test_labels"], f"{root} (test)"))


def holdout(split: ArraySplit, count: int) -> tuple[ArraySplit, ArraySplit]:
    """(train, val): `count` images of the split held out as val, the same ones every time (HOLDOUT_SEED)."""
    if count >= len(split):
        raise UserError(f"data.val_holdout={count} leaves no training images of the {len(split)} in "
                        f"{split.where}; lower it.")
    order = np.random.default_rng(HOLDOUT_SEED).permutation(len(split))
    val, train = np.sort(order[:count]), np.sort(order[count:])
    return (ArraySplit(split.images[train], split.labels[train], split.where),
            ArraySplit(split.images[val], split.labels[val], f"{split.where}, {count} held out"))


def open_cifar10(path: Path | None, val_holdout: int) -> tuple[ArraySplit, ArraySplit]:
    """(train, val) for a run: CIFAR-10 at `path` or the built-in sample (path None). With val_holdout > 0,
    val is that many training images held out (the paper's 45k/5k split); with 0, val is the test set."""
    train, test = read_sample(ensure_cifar_sample()) if path is None else read_cifar10(Path(path))
    return holdout(train, val_holdout) if val_holdout else (train, test)


def array_eval_loader(split: ArraySplit, batch_size: int, rank: int = 0,
                      world: int = 1) -> torch.utils.data.DataLoader:
    """Ordered loader over one process's contiguous share (as rsb.data.loader.eval_loader); no workers: the
    arrays are in memory and indexing them is cheaper than sending batches between processes."""
    from rsb.data.transforms import collate_uint8
    per = -(-len(split) // world)
    subset = torch.utils.data.Subset(split, range(rank * per, min(len(split), (rank + 1) * per)))
    return torch.utils.data.DataLoader(subset, batch_size=batch_size, shuffle=False, num_workers=0,
                                       collate_fn=collate_uint8)
