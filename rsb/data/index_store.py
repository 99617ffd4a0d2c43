"""What the shard, parquet and flat-val indexes share: names packed in one numpy blob, and an on-disk cache.

Why numpy, not a Python list: a list of 1.28M str objects is copied page by page into every loader worker as
reference counts are touched; two arrays stay shared with the parent after fork (benchmarks/index_cache.py).
Why a cache: scanning 1,024 shards' headers or 300 parquet footers takes a while on a network file system; the
cache is keyed by every file's path, size and modification time, so a changed file means a new scan.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable

import numpy as np

from rsb.run import folder as run_folder
from rsb.errors import UserError

FORMAT = 1  # bump when what an index holds changes, so old caches are not read


class PackedStrings:
    """Strings in one uint8 blob plus int64 offsets: item i is blob[offsets[i]:offsets[i + 1]]."""

    def __init__(self, blob: np.ndarray, offsets: np.ndarray):
        self.blob, self.offsets = blob, offsets

    @classmethod
    def pack(cls, strings) -> "PackedStrings":
        encoded = [s.encode() for s in strings]
        offsets = np.cumsum([0] + [len(e) for e in encoded]).astype(np.int64)
        return cls(np.frombuffer(b"".join(encoded), dtype=np.uint8).copy(), offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> str:
        return bytes(self.blob[self.offsets[i]:self.offsets[i + 1]]).decode()

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}_blob": self.blob, f"{prefix}_offsets": self.offsets}

    @classmethod
    def from_arrays(cls, arrays, prefix: str) -> "PackedStrings":
        return cls(arrays[f"{prefix}_blob"], arrays[f"{prefix}_offsets"])


def file_stamps(files: list[Path]) -> list[str]:
    stamps = []
    for f in files:
        st = os.stat(f)
        stamps.append(f"{Path(f).resolve()}:{st.st_size}:{st.st_mtime_ns}")
    return stamps


def cached_arrays(kind: str, stamps: list[str], build: Callable[[], dict[str, np.ndarray]],
                  use_cache: bool = True) -> dict[str, np.ndarray]:
    """The arrays `build` returns, from the cache when one was saved for exactly these stamps."""
    key = hashlib.sha256("\n".join([kind, str(FORMAT), *stamps]).encode()).hexdigest()[:24]
    cache_file = run_folder.cache_root() / "index" / f"{kind}-{key}.npz"
    if use_cache and cache_file.exists():
        try:
            with np.load(cache_file, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError):
            pass  # a damaged cache file: build again
    arrays = build()
    if use_cache:
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            with run_folder.atomic_path(cache_file) as tmp, open(tmp, "wb") as f:  # a file: savez adds no suffix
                np.savez(f, **arrays)  # (no array may be named "file": savez's own argument)
        except OSError:
            pass  # a read-only cache only costs a rescan next time
    return arrays


def index_classes(labels: np.ndarray, what: str, empty: str) -> list[str]:
    """Class names for an index whose items carry class indices, not WordNet ids: "0" .. str(max label)."""
    if len(labels) == 0:
        raise UserError(f"{what} hold no {empty}.")
    if labels.min() < 0:
        raise UserError(f"{what} have negative labels (an unlabelled split, such as a test split, cannot be "
                        f"trained or scored).")
    return [str(c) for c in range(int(labels.max()) + 1)]


class OpenFiles:
    """File handles opened lazily in the process that reads (a loader worker after fork, not the parent), kept
    up to a limit: 1,024 train shards in each of 8 workers would pass the usual limit of 1,024 open files."""

    def __init__(self, paths: list[str], opener: Callable[[str], object], closer: Callable[[object], None],
                 limit: int = 256):
        self.paths, self.opener, self.closer, self.limit = paths, opener, closer, limit
        self._open: dict[int, object] = {}
        self._pid = None

    def get(self, k: int):
        if self._pid != os.getpid():  # inherited across fork: this process opens its own
            self._open, self._pid = {}, os.getpid()
        handle = self._open.pop(k, None)
        if handle is None:
            handle = self.opener(self.paths[k])
            if len(self._open) >= self.limit:  # dicts keep insertion order: the first is the least recent
                self.closer(self._open.pop(next(iter(self._open))))
        self._open[k] = handle  # re-inserted: now the most recent
        return handle

    def __getstate__(self):  # sent to spawned workers without handles
        return {**self.__dict__, "_open": {}, "_pid": None}
