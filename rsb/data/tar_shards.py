"""Tar shards in the webdataset layout, read by random access: each image's offset and size indexed once (and
cached), then one pread per image, no extraction.

The layout (webdataset's, as timm's published imagenet-1k-wds shards and rsb-shards write it): a sample is the
members sharing a key, the member name up to the first dot of its file name (`n01440764_10026.jpg` and
`n01440764_10026.cls`); the label is the decimal integer in `<key>.cls`; the image is `<key>.jpg` (or .jpeg, .png,
.webp). Why not timm's wds reader or webdataset itself: they stream each shard in order through shuffle buffers
filled per worker, so which image a step sees, and its augmentation, depends on worker count and timing, and a
resumed run cannot be exact. Random access keeps rsb's per-sample seeding (rsb.data.dataset).
"""
from __future__ import annotations

import os
import re
import resource
import tarfile
from pathlib import Path

import numpy as np

from rsb.data.index_store import OpenFiles, PackedStrings, cached_arrays, file_stamps, index_classes
from rsb.errors import UserError

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")
MEMBER = re.compile(r"^((?:.*/)?[^./]+)\.([^/]*)$")  # webdataset's rule: key = path up to the first dot


def _member_key(name: str) -> tuple[str, str] | None:
    m = MEMBER.match(name)
    return (m.group(1), m.group(2).lower()) if m else None


def scan_shard(path: Path) -> tuple[list[str], list[int], list[int], list[int]]:
    """Member names, data offsets, sizes and labels of the images in one shard (tarfile reads the headers only,
    seeking over the data; the small .cls members are read)."""
    images: dict[str, tuple[str, int, int]] = {}
    labels: dict[str, int] = {}
    try:
        tf = tarfile.open(path, "r:")  # "r:" refuses compressed tars: they cannot be read at an offset
    except tarfile.ReadError as e:
        raise UserError(f"shard {path} is not an uncompressed tar file ({e}); random access needs plain .tar "
                        f"shards (rsb-shards writes them).") from None
    with tf:
        for m in tf:
            split = _member_key(m.name) if m.isfile() else None
            if split is None:
                continue
            key, ext = split
            if ext in IMAGE_EXTS:
                images[key] = (m.name, m.offset_data, m.size)
            elif ext == "cls":
                text = tf.extractfile(m).read().strip()
                try:
                    labels[key] = int(text)
                except ValueError:
                    raise UserError(f"shard {path} member {m.name} holds {text[:20]!r}, not a class index.") from None
    missing = [k for k in images if k not in labels]
    if missing:
        raise UserError(f"shard {path} has {len(missing)} image(s) without a .cls label (first: {missing[0]}); "
                        f"each sample needs <key>.jpg and <key>.cls.")
    names, offsets, sizes, out_labels = [], [], [], []
    for key, (name, offset, size) in images.items():
        names.append(name)
        offsets.append(offset)
        sizes.append(size)
        out_labels.append(labels[key])
    return names, offsets, sizes, out_labels


def _open_file_limit() -> int:
    # Let each process keep as many shards open as the system allows it (raising the soft limit to the hard
    # one is what `ulimit -n` would do), keeping half for everything else.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return max(8, min(4096, soft // 2))


class TarShardIndex:
    """The images of a list of shards, in shard order then member order."""

    def __init__(self, shards: list[Path], root: Path, use_cache: bool = True):
        if not shards:
            raise UserError(f"no .tar shards found in {root}.")
        self.root = Path(root)
        self.shards = [str(s) for s in shards]

        def build():
            names, shard_ids, offsets, sizes, labels = [], [], [], [], []
            for k, shard in enumerate(shards):
                n, o, s, lab = scan_shard(Path(shard))
                names += n
                offsets += o
                sizes += s
                labels += lab
                shard_ids += [k] * len(n)
            return {"shard": np.asarray(shard_ids, np.int32), "offset": np.asarray(offsets, np.int64),
                    "size": np.asarray(sizes, np.int64), "labels": np.asarray(labels, np.int64),
                    **PackedStrings.pack(names).arrays("names")}

        a = cached_arrays("shards", file_stamps(shards), build, use_cache)
        self._shard, self._offset, self._size, self.labels = a["shard"], a["offset"], a["size"], a["labels"]
        self._names = PackedStrings.from_arrays(a, "names")
        # Shards carry class indices, not WordNet ids.
        self.classes = index_classes(self.labels, f"the shards in {root}",
                                     f"images ({', '.join('.' + e for e in IMAGE_EXTS)})")
        self.num_classes = len(self.classes)
        self._files = OpenFiles(self.shards, lambda p: os.open(p, os.O_RDONLY), os.close, _open_file_limit())

    def __len__(self) -> int:
        return len(self.labels)

    def read(self, i: int) -> bytes:
        size = int(self._size[i])
        data = os.pread(self._files.get(int(self._shard[i])), size, int(self._offset[i]))
        if len(data) != size:
            raise OSError(f"the shard ends {size - len(data)} bytes early (truncated?)")
        return data

    def where(self, i: int) -> str:
        return f"{self.shards[self._shard[i]]}:{self._names[i]}"

    def name(self, i: int) -> str:
        return os.path.basename(self._names[i])
