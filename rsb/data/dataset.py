"""One map-style dataset over any image source: the image folder, tar shards, parquet files, a flat val folder.

A source (rsb.data.folder.ImageFolderIndex, rsb.data.tar_shards.TarShardIndex, rsb.data.parquet.ParquetIndex,
rsb.data.flat_val.FlatValIndex) is random access and holds its index in numpy arrays, so worker memory stays
flat. What the dataset needs of it:
  len(source), source.labels (int64 array), source.root (for messages),
  source.read(i) -> the encoded bytes of item i,
  source.where(i) -> where item i lives, for warnings (a path, "shard.tar:key.jpg", "file.parquet row N"),
  source.name(i) -> its file name (ReaL matches val images by the number in it).
Items come by (index, sample seed) from rsb.data.sampler.RepeatedAugSampler, so the augmentation of every sample
depends on its position in the epoch only, whatever the source: a resumed run is bitwise the uninterrupted one.
Unlike timm's iterable wds/hfds readers, whose order comes from shuffle buffers filled per worker.
"""
from __future__ import annotations

import sys

import numpy as np

from rsb.data import seeds
from rsb.data.decode import UnreadableImage, load_rgb
from rsb.errors import UserError


class SourceDataset:
    """Items are (image, label, skipped), where `skipped` counts the unreadable images passed over to produce
    this item (each reported by where it lives), so the training loop can total and bound them."""

    def __init__(self, index, transform=None, labels: np.ndarray | None = None, decode=load_rgb):
        """`decode`: (bytes, where) -> what `transform` takes (rsb.data.transforms.train_pipeline pairs the two)."""
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
            seeds.seed_generators(sample_seed, devices=False)  # loader workers draw on the CPU only
        for skipped in range(min(len(self), 100)):
            j = (i + skipped) % len(self)
            where = self.index.where(j)
            try:
                img = self.decode(self.index.read(j), where)
            except Exception as e:  # any read or decoder failure: report where, use the next image
                print(f"warning: skipping unreadable image {where}: {type(e).__name__}: {e}", file=sys.stderr)
                continue
            if self.transform is not None:
                try:
                    img = self.transform(img)
                except UnreadableImage as e:  # found by a deferred, by-region decode (rsb.data.decode)
                    print(f"warning: skipping unreadable image {e}", file=sys.stderr)
                    continue
            return img, int(self.labels[j]), skipped
        raise UserError(f"100 consecutive images from {self.index.where(i)} on could not be read; "
                        f"check the data at {self.index.root}.")
