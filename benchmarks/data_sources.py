#!/usr/bin/env python
"""The same JPEGs read from an image folder, from tar shards and from parquet files, through rsb's training
loader with the A2 transform; images per second for each, side by side in one run.

  python benchmarks/data_sources.py              # 2,000 JPEGs of 500x375, workers = usable cores
  python benchmarks/data_sources.py --quick      # 400 JPEGs

The JPEGs are benchmarks/input_pipeline.py's photo-like 500x375 files (quality 90, about ImageNet's size).
Folder: <root>/train/<class>/*.JPEG. Shards: written by rsb-shards (1 GB shards, as the README suggests; one
shard here). Parquet: Hugging Face's layout (image struct<bytes, path>, label) in row groups of 100 rows, the size
the `datasets` library writes for image data. Each source feeds rsb.data.loader.TrainLoader (recipe A2: 224 px,
RandAugment rand-m7-mstd0.5-inc1, repeated augmentation 3, seeded samples; batch 32, workers = usable cores) for
one epoch; the sources alternate over --rounds rounds and each figure is the median round's images/s from the
first batch to the last (worker start-up excluded). The index build (first start) and cached second start are
timed too.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import machine_header, median, table  # noqa: E402
from input_pipeline import make_jpegs  # noqa: E402
from rsb.runtime.cpus import usable_cpus  # noqa: E402


def write_parquet(source, path: Path, row_group: int = 100) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    rows = [{"bytes": source.read(i), "path": source.name(i)} for i in range(len(source))]
    t = pa.table({"image": pa.array(rows, pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
                  "label": pa.array(source.labels, pa.int64())})
    pq.write_table(t, path, row_group_size=row_group)


def epoch_rate(loader) -> float:
    it = loader.epoch(0)
    next(it)
    start, n = time.perf_counter(), 0
    for images, _, _ in it:
        n += len(images)
    return n / (time.perf_counter() - start)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=2000)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--workers", type=int, default=usable_cpus())
    args = p.parse_args(argv)
    n = 400 if args.quick else args.images
    import torch
    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="rsb-sources-"))
    os.environ["RSB_CACHE"] = str(work / "cache")
    from rsb.data.folder import ImageFolderIndex
    from rsb.data.layout import open_splits
    from rsb.data.loader import TrainLoader, train_dataset
    from rsb.shards import write_split
    try:
        folder = work / "folder"
        make_jpegs(folder / "train", n, classes=10)
        shutil.copytree(folder / "train", folder / "val")  # the layouts need a val split; only train is read
        src = ImageFolderIndex(folder / "train")
        (work / "shards").mkdir()
        (work / "parquet").mkdir()
        for split in ("train", "validation"):
            write_split(src, range(len(src)), work / "shards", f"imagenet1k-{split}", 10**9, log=lambda m: None)
            write_parquet(src, work / "parquet" / f"{split}-00000-of-00001.parquet")
        mb = sum(f.stat().st_size for f in (folder / "train").rglob("*.JPEG")) / 1e6
        starts, sources = {}, {}
        for name, root in (("folder", folder), ("tar shards", work / "shards"), ("parquet", work / "parquet")):
            t0 = time.perf_counter()
            open_splits(root)
            t1 = time.perf_counter()
            sources[name] = open_splits(root)[0]
            starts[name] = (t0, t1, time.perf_counter())
        from rsb.training.run_config import build_config
        cfg = build_config("a2", ["train.batch_per_device=32"], False)
        loaders = {k: TrainLoader(cfg, train_dataset(cfg, s), 0, 1, args.workers, pin_memory=False)
                   for k, s in sources.items()}
        rates = {k: [] for k in loaders}
        for r in range(args.rounds):
            for k in (list(loaders) if r % 2 == 0 else list(loaders)[::-1]):
                rates[k].append(epoch_rate(loaders[k]))
        base = median(rates["folder"])
        rows = [[k, len(sources[k]), f"{median(v):.1f}", f"{median(v) / base:.2f}x",
                 f"{(starts[k][1] - starts[k][0]) * 1000:.0f}", f"{(starts[k][2] - starts[k][1]) * 1000:.0f}"]
                for k, v in rates.items()]
        print(machine_header(f"torch.backends.cpu.get_cpu_capability(): {torch.backends.cpu.get_cpu_capability()}; "
                             f"{n} JPEGs of 500x375 ({mb:.0f} MB), A2 train transform, {args.workers} workers, "
                             f"batch 32, median of {args.rounds} rounds"))
        print(table(["source", "items", "images/s", "vs folder", "first start ms", "second start ms"], rows))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
