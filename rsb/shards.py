"""Write ImageNet as webdataset tar shards: `rsb-shards FOLDER OUT --shard-size 1GB` (or python -m rsb.shards).

  rsb-shards /datasets/imagenet /datasets/imagenet-wds               # 1 GB shards of train and validation
  rsb-shards ~/.cache/rsb/sample-v3 /tmp/sample-wds --shard-size 1MB # the built-in sample, to try the path

FOLDER is any layout rsb reads (rsb.data.layout): class folders, a flat val/ with its ground truth
(--val-labels), or parquet files. OUT gets shards named as timm's published imagenet-1k-wds
(imagenet1k-train-0000.tar ..., imagenet1k-validation-0000.tar ...), each sample two members, `<key>.jpg` (the
original bytes, not re-encoded; .png or .webp when the bytes are such) and `<key>.cls` (the label as a decimal
number, sorted-WordNet-id order), the key being the image's file name without extension; and `_info.json` with
each split's shard names and lengths, the file timm's wds reader reads, so timm can train on them too. Train is
written in a shuffled order (seed 0): webdataset readers stream shards and shuffle only within a buffer, so
class-sorted shards would starve them; rsb reads by random access and does not mind. Each shard is written under
a temporary name and renamed when complete.
"""
from __future__ import annotations

import argparse
import io
import os
import re
import sys
import tarfile
from pathlib import Path

import numpy as np

from rsb.run import folder as run_folder
from rsb.errors import UserError, exit_status

SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?i?B?)\s*$", re.IGNORECASE)
UNITS = {"": 1, "B": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
SPLIT_NAMES = {"train": "train", "val": "validation"}  # timm's imagenet-1k-wds spelling


def parse_size(text: str) -> int:
    """'1GB', '500MB', '64MiB' or a number of bytes."""
    m = SIZE.match(text)
    if not m:
        raise UserError(f"--shard-size {text!r} is not a size such as 1GB, 500MB or 64MiB.")
    unit = m.group(2).upper().rstrip("B")
    scale = 1024 ** " KMGT".index(unit[0]) if unit.endswith("I") else UNITS[unit]
    size = int(float(m.group(1)) * scale)
    if size < 10240:
        raise UserError(f"--shard-size {text} is too small; give at least 10KB.")
    return size


def image_extension(data: bytes, name: str) -> str:
    """The member extension webdataset decoders expect for these bytes (ImageNet has PNG data behind .JPEG)."""
    if data[:2] == b"\xff\xd8":
        return "jpg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return name.rsplit(".", 1)[-1].lower() if "." in name else "jpg"


def _tar_bytes(size: int, name: str) -> int:
    """A member's bytes in a tar: a 512-byte header and the data padded to 512; a name of 100 bytes or more
    takes a PAX extended header first (a header and one block for a name of up to ~500 bytes)."""
    return 512 + -(-size // 512) * 512 + (1024 if len(name.encode()) >= 100 else 0)


def _file_bytes(members: int) -> int:
    """The tar file's size: the members, two zero blocks, padded to tarfile's 10,240-byte records."""
    return -(-(members + 1024) // tarfile.RECORDSIZE) * tarfile.RECORDSIZE


def _member(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o444, 0  # fixed metadata: the same input, the same bytes
    tf.addfile(info, io.BytesIO(data))


def write_split(source, order, out: Path, stem: str, shard_size: int, log=print) -> tuple[list[str], list[int]]:
    """Shards of `source` items in `order`; (file names, samples per shard)."""
    names, lengths, seen = [], [], set()
    tf = tmp = None
    written = 0

    def finish():
        tf.close()
        os.replace(tmp, out / names[-1])

    for i in order:
        data = source.read(int(i))
        file_name = source.name(int(i))
        key = file_name.split(".")[0]  # webdataset's key ends at the first dot
        if key in seen:
            raise UserError(f"two images are named {key} ({source.where(int(i))}); shard keys must be unique.")
        seen.add(key)
        cls = str(int(source.labels[i])).encode()
        image_member = f"{key}.{image_extension(data, file_name)}"
        need = _tar_bytes(len(data), image_member) + _tar_bytes(len(cls), f"{key}.cls")
        if tf is None or (_file_bytes(written + need) > shard_size and lengths[-1] > 0):
            if tf is not None:
                finish()
            names.append(f"{stem}-{len(names):04d}.tar")
            lengths.append(0)
            tmp = run_folder.temporary_for(out / names[-1])
            tf, written = tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT), 0
        _member(tf, image_member, data)
        _member(tf, f"{key}.cls", cls)
        written += need
        lengths[-1] += 1
    if tf is not None:
        finish()
    log(f"{stem}: {sum(lengths)} images in {len(names)} shard(s)")
    return names, lengths


def write_shards(folder, out, shard_size: int = 10**9, val_labels=None, prefix: str = "imagenet1k",
                 log=print) -> dict:
    """Shards of the train and val splits of `folder` in `out`; the _info.json written (and returned)."""
    from rsb.data.layout import open_splits
    out = Path(out)
    if out.is_dir() and any(out.glob("*.tar")):
        raise UserError(f"{out} already holds .tar files; give an empty or new folder.")
    train, val = open_splits(folder, val_labels)
    out.mkdir(parents=True, exist_ok=True)
    info = {"name": prefix, "splits": {}}
    for split, source in (("train", train), ("val", val)):
        name = SPLIT_NAMES[split]
        order = np.random.default_rng(0).permutation(len(source)) if split == "train" else np.arange(len(source))
        files, lengths = write_split(source, order, out, f"{prefix}-{name}", shard_size, log)
        info["splits"][name] = {"name": name, "num_samples": int(sum(lengths)), "filenames": files,
                                "shard_lengths": lengths}
    run_folder.write_json(out / "_info.json", info)
    return info


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="rsb-shards", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", type=Path, help="ImageNet data in any layout rsb reads")
    p.add_argument("out", type=Path, help="folder for the shards (new or empty)")
    p.add_argument("--shard-size", default="1GB", help="largest shard (default 1GB; e.g. 500MB, 64MiB)")
    p.add_argument("--val-labels", type=Path, metavar="FILE", help="ground truth of a flat val/ folder")
    p.add_argument("--prefix", default="imagenet1k", help="shard name prefix (default imagenet1k)")
    args = p.parse_args(argv)
    return exit_status(lambda: _write(args))


def _write(args: argparse.Namespace) -> None:
    write_shards(args.folder, args.out, parse_size(args.shard_size), args.val_labels, args.prefix)


if __name__ == "__main__":
    sys.exit(main())
