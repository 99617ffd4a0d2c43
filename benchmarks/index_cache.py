#!/usr/bin/env python
"""Start-up and worker memory at ImageNet scale: the cached ImageFolderIndex against a fresh scan, and the
memory DataLoader workers gain as they touch every path (numpy index against a list of Python strings).

  python benchmarks/index_cache.py            # 1000 class folders x 100 empty .JPEG files = 100k files, 3 rounds
  python benchmarks/index_cache.py --quick    # 1000 x 20 files (20k), 1 round (the goal needs the full run)
  python benchmarks/index_cache.py --classes 1000 --per-class 1281   # ImageNet's 1.28M (needs ~1.3M inodes)

Start-up: "first start" is ImageFolderIndex with an empty cache folder (scan, then write the cache); "second
start" is ImageFolderIndex on the same tree with that cache (checks the folder mtimes, loads the .npz). The
references are the scans done at every start by torchvision's ImageFolder and timm's ImageDataset. All run right
after the tree was written, so the directory entries are in the OS cache for every contender: a first scan of a
cold network file system is slower, which only makes the real speed-up larger.

Memory: for each contender a fresh parent process (this script with --measure) holds either the rsb index (from
the cache) or torchvision ImageFolder's list of (path string, label) tuples, nothing else; a DataLoader (fork, as
on Linux) starts W workers; each worker touches the first 1000 paths (one-time costs such as the allocator's
first arenas), the parent reads every process's /proc/<pid>/smaps_rollup, the workers touch every path once (rsb:
len(str(index.path(i))); list: len(samples[i][0])), and the parent reads them again. Touching a Python object
writes its reference count, so the kernel copies its page into the worker (copy-on-write); numpy bytes are only
read. The measure is the growth of the PSS summed over the parent and all workers (every page counted once),
divided by the number of workers. Per-worker USS (private pages) and PSS growth are shown too; RSS does not grow
on such copies (the page was resident already, shared), so it does not measure them. Without --quick the memory
is also measured on a tree of a fifth the size, to show what grows with the number of files.

Finding: ImageFolderIndex.path(i) builds a pathlib.Path, and pathlib (Python <= 3.11) sys.intern()s every path
component, so each distinct file name touched stays in the interpreter's interned-string table for the worker's
life: about 40 bytes per file, copied nowhere but never freed. The "joined as str" row reads the same numpy index
with os.path.join (no pathlib), which is what the dataset's hot path needs.
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

from _common import machine_header, median, table
from rsb.runtime.cpus import usable_cpus


def make_tree(root: Path, classes: int, per_class: int) -> int:
    for c in range(classes):
        d = root / f"n{c:08d}"
        d.mkdir(parents=True)
        for i in range(per_class):
            os.close(os.open(d / f"n{c:08d}_{i}.JPEG", os.O_CREAT | os.O_WRONLY, 0o644))
    return classes * per_class


def memory_kib(pid="self") -> dict:
    """RSS, USS (private pages) and PSS (shared pages divided among their sharers) of a process, in KiB."""
    out = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("Rss", "Private_Clean", "Private_Dirty", "Pss"):
                out[key] = int(rest.split()[0])
    return {"rss": out["Rss"], "uss": out["Private_Clean"] + out["Private_Dirty"], "pss": out["Pss"]}


class TouchAll:
    """Item k < W: touch the first 1000 paths (one-time costs such as the allocator's first arenas);
    item k >= W: wait for the parent's go, then touch every path."""

    def __init__(self, kind: str, index, samples, workers: int, go):
        self.kind, self.index, self.samples, self.workers, self.go = kind, index, samples, workers, go

    def __len__(self) -> int:
        return 2 * self.workers

    def __getitem__(self, k):
        if k < self.workers:
            return os.getpid(), self.touch(1000)
        self.go.wait()
        return os.getpid(), self.touch(None)

    def touch(self, limit):
        total = 0
        if self.kind == "rsb":
            for i in range(min(limit or len(self.index), len(self.index))):
                total += len(str(self.index.path(i)))
        elif self.kind == "rsb-str":  # the same bytes joined as str, no pathlib (see the docstring)
            ix, root = self.index, str(self.index.root)
            for i in range(min(limit or len(ix), len(ix))):
                total += len(os.path.join(root, bytes(ix._paths[ix._offsets[i]:ix._offsets[i + 1]]).decode()))
        else:
            for i in range(min(limit or len(self.samples), len(self.samples))):
                total += len(self.samples[i][0])
        return total


def worker_growth(kind: str, index, samples, workers: int) -> dict:
    """Memory of the parent and each worker (read from /proc/<pid>) before and after the workers touch every path.
    USS alone would miss copies: when two processes share the original page after a third copied it, the page
    is 'shared' for both. The sum of PSS over the whole process tree counts every page once."""
    import multiprocessing

    from torch.utils.data import DataLoader
    ctx = multiprocessing.get_context("fork")
    go = ctx.Event()
    loader = DataLoader(TouchAll(kind, index, samples, workers, go), batch_size=None, num_workers=workers,
                        multiprocessing_context=ctx)
    it = iter(loader)
    pids = sorted({next(it)[0] for _ in range(workers)})
    time.sleep(0.5)
    before = {p: memory_kib(p) for p in pids + [os.getpid()]}
    go.set()
    for _ in range(workers):
        next(it)
    after = {p: memory_kib(p) for p in pids + [os.getpid()]}
    del it
    return {"workers": [{k: after[p][k] - before[p][k] for k in ("rss", "uss", "pss")} | {"after": after[p]}
                        for p in pids],
            "tree_pss_growth": sum(after[p]["pss"] - before[p]["pss"] for p in after),
            "parent_pss_growth": after[os.getpid()]["pss"] - before[os.getpid()]["pss"]}


def measure_child(root: Path, kind: str, workers: int) -> dict:
    """Run worker_growth in a fresh interpreter that holds only `kind`'s structure (a parent holding both would
    let the garbage collector's passes in a worker copy the other structure's pages too)."""
    import json
    import subprocess
    out = subprocess.run([sys.executable, __file__, "--measure", kind, "--root", str(root), "--workers",
                          str(workers)], check=True, capture_output=True, text=True, env=os.environ.copy())
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--classes", type=int, default=1000)
    p.add_argument("--per-class", type=int, default=100)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--workers", type=int, default=usable_cpus())
    p.add_argument("--quick", action="store_true", help="20 files per class, 1 round")
    p.add_argument("--measure", choices=["rsb", "rsb-str", "list"], help=argparse.SUPPRESS)
    p.add_argument("--root", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.measure:
        import json
        if args.measure.startswith("rsb"):
            from rsb.data.folder import ImageFolderIndex
            index, samples = ImageFolderIndex(args.root), None
        else:
            from torchvision.datasets import ImageFolder
            index, samples = None, ImageFolder(args.root).samples
        print(json.dumps(worker_growth(args.measure, index, samples, args.workers)))
        return 0
    if args.quick:
        args.rounds, args.per_class = 1, 20
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
        print(table([f"start-up (index of {n} files)", "seconds (median)", "speed-up vs rsb first start"],
                    [["rsb first start (scan + write cache)", f"{m['first']:.3f}", "1.0"],
                     ["rsb second start (cache hit)", f"{m['second']:.4f}", f"{m['first'] / m['second']:.0f}x"],
                     ["torchvision ImageFolder (scans every start)", f"{m['tv']:.3f}",
                      f"{m['first'] / m['tv']:.2f}x"],
                     ["timm ImageDataset (scans every start)", f"{m['timm']:.3f}",
                      f"{m['first'] / m['timm']:.2f}x"]]))
        print(f"cache hit vs torchvision's scan: {m['tv'] / m['second']:.0f}x, vs timm's: "
              f"{m['timm'] / m['second']:.0f}x", flush=True)

        # Memory at the full tree and (not with --quick) at a fifth of it, to show how the growth scales.
        trees = [(root, n)]
        if not args.quick:
            small = tmp / "small"
            trees.append((small, make_tree(small, args.classes, max(1, args.per_class // 5))))
        rows = []
        for tree, files in trees:
            for kind, label in [("rsb", "rsb ImageFolderIndex.path(i)"), ("rsb-str", "rsb index, joined as str"),
                                ("list", "list of (str, label) tuples")]:
                res = measure_child(tree, kind, args.workers)
                per_worker = res["tree_pss_growth"] / args.workers
                for w, g in enumerate(res["workers"]):
                    rows.append([str(files) if w == 0 else "", label if w == 0 else "", str(w),
                                 f"{g['uss'] / 1024:.1f}", f"{g['pss'] / 1024:.1f}", f"{g['after']['pss'] / 1024:.1f}",
                                 f"{g['after']['rss'] / 1024:.1f}", f"{per_worker / 1024:.1f}" if w == 0 else ""])
        print()
        print(table(["files", "worker touches every path", "worker", "USS growth MiB", "PSS growth MiB",
                     "PSS after MiB", "RSS after MiB", "all-process PSS growth / workers, MiB"], rows))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
