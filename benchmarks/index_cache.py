#!/usr/bin/env python
"""Start-up and worker memory at ImageNet scale: the cached ImageFolderIndex against a fresh scan, and the
memory DataLoader workers gain as they touch every path (numpy index against a list of Python strings).

  python benchmarks/index_cache.py            # 1000 class folders x 100 empty .JPEG files = 100k files, 3 rounds
  python benchmarks/index_cache.py --quick    # same tree, 1 round
  python benchmarks/index_cache.py --classes 1000 --per-class 1281   # ImageNet's 1.28M (needs ~1.3M inodes)

Start-up: "first start" is ImageFolderIndex with an empty cache folder (scan, then write the cache); "second
start" is ImageFolderIndex on the same tree with that cache (checks the folder mtimes, loads the .npz). The
references are the scans done at every start by torchvision's ImageFolder and timm's ImageDataset. All run right
after the tree was written, so the directory entries are in the OS cache for every contender: a first scan of a
cold network file system is slower, which only makes the real speed-up larger.

Memory: a parent holds both the rsb index and a torchvision-style list of (path string, label) tuples; a DataLoader
(fork, as on Linux) starts W workers; each worker reports its memory, then touches every path once (rsb:
len(str(index.path(i))); list: len(samples[i][0])), then reports again. USS (Private_Clean + Private_Dirty from
/proc/self/smaps_rollup) is the memory the worker owns alone: copy-on-write copies of the parent's pages show up
there (touching a Python object writes its reference count, which copies its page). RSS does not grow on such
copies (the page was already resident, shared), so it is shown but is not the measure.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine_header, median, table  # noqa: E402


def make_tree(root: Path, classes: int, per_class: int) -> int:
    for c in range(classes):
        d = root / f"n{c:08d}"
        d.mkdir(parents=True)
        for i in range(per_class):
            os.close(os.open(d / f"n{c:08d}_{i}.JPEG", os.O_CREAT | os.O_WRONLY, 0o644))
    return classes * per_class


def memory_kib() -> dict:
    """RSS and USS of this process in KiB."""
    out = {}
    with open("/proc/self/smaps_rollup") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("Rss", "Private_Clean", "Private_Dirty", "Pss"):
                out[key] = int(rest.split()[0])
    return {"rss": out["Rss"], "uss": out["Private_Clean"] + out["Private_Dirty"], "pss": out["Pss"]}


class TouchAll:
    """Item k < W: the worker's memory before touching; item k >= W: touch every path, then memory again."""

    def __init__(self, kind: str, index, samples, workers: int):
        self.kind, self.index, self.samples, self.workers = kind, index, samples, workers

    def __len__(self) -> int:
        return 2 * self.workers

    def __getitem__(self, k):
        import torch.utils.data
        wid = torch.utils.data.get_worker_info().id
        if k < self.workers:
            return wid, "before", memory_kib(), 0
        total = 0
        if self.kind == "rsb":
            for i in range(len(self.index)):
                total += len(str(self.index.path(i)))
        else:
            for i in range(len(self.samples)):
                total += len(self.samples[i][0])
        return wid, "after", memory_kib(), total


def worker_growth(kind: str, index, samples, workers: int) -> list[dict]:
    from torch.utils.data import DataLoader
    ds = TouchAll(kind, index, samples, workers)
    loader = DataLoader(ds, batch_size=None, num_workers=workers, multiprocessing_context="fork")
    seen = {}
    for wid, when, mem, _ in loader:
        seen.setdefault(wid, {})[when] = mem
    return [{k: seen[w]["after"][k] - seen[w]["before"][k] for k in ("rss", "uss")} | {"after": seen[w]["after"]}
            for w in sorted(seen)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--classes", type=int, default=1000)
    p.add_argument("--per-class", type=int, default=100)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--quick", action="store_true", help="1 round")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds = 1
    from timm.data import ImageDataset
    from torchvision.datasets import ImageFolder
    from rsb.data.folder import ImageFolderIndex

    tmp = Path(tempfile.mkdtemp(prefix="rsb-index-bench-"))
    try:
        root = tmp / "train"
        t = time.perf_counter()
        n = make_tree(root, args.classes, args.per_class)
        made = time.perf_counter() - t
        print(machine_header(f"{n} empty .JPEG files in {args.classes} class folders (written in {made:.1f} s), "
                             f"{args.rounds} round(s){' (--quick)' if args.quick else ''}"), flush=True)
        times = {"first": [], "second": [], "tv": [], "timm": []}
        for r in range(args.rounds):
            os.environ["RSB_CACHE"] = str(tmp / f"cache{r}")  # an empty cache: the first start scans
            steps = [("first", lambda: ImageFolderIndex(root)), ("second", lambda: ImageFolderIndex(root)),
                     ("tv", lambda: ImageFolder(str(root))), ("timm", lambda: ImageDataset(str(root)))]
            if r % 2:  # alternate the references' position against rsb's
                steps = steps[2:] + steps[:2]
            for name, build in steps:
                t = time.perf_counter()
                obj = build()
                times[name].append(time.perf_counter() - t)
                assert len(obj) == n, (name, len(obj))
        m = {k: median(v) for k, v in times.items()}
        print()
        print(table(["start-up (index of %d files)" % n, "seconds (median)", "speed-up vs rsb first start"],
                    [["rsb first start (scan + write cache)", f"{m['first']:.3f}", "1.0"],
                     ["rsb second start (cache hit)", f"{m['second']:.4f}", f"{m['first'] / m['second']:.0f}x"],
                     ["torchvision ImageFolder (scans every start)", f"{m['tv']:.3f}",
                      f"{m['first'] / m['tv']:.2f}x"],
                     ["timm ImageDataset (scans every start)", f"{m['timm']:.3f}",
                      f"{m['first'] / m['timm']:.2f}x"]]))
        print(f"cache hit vs torchvision's scan: {m['tv'] / m['second']:.0f}x, vs timm's: "
              f"{m['timm'] / m['second']:.0f}x", flush=True)

        index = ImageFolderIndex(root)
        samples = ImageFolder(str(root)).samples  # list of (str, int): what every torchvision worker touches
        rows = []
        for kind, label in [("rsb", "rsb ImageFolderIndex (numpy)"), ("list", "list of (str, label) tuples")]:
            for w, g in enumerate(worker_growth(kind, index, samples, args.workers)):
                rows.append([label, str(w), f"{g['uss'] / 1024:.1f}", f"{g['rss'] / 1024:.1f}",
                             f"{g['after']['uss'] / 1024:.1f}", f"{g['after']['rss'] / 1024:.1f}",
                             f"{g['uss'] / 1024 * 1_281_167 / n:.0f}"])
        print()
        print(table(["worker touches every path", "worker", "USS growth MiB", "RSS growth MiB", "USS after MiB",
                     "RSS after MiB", "USS growth at 1.28M files, MiB (linear)"], rows))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
