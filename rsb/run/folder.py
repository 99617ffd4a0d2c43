"""What a run folder holds, where rsb's cache lives, and the one way rsb writes a file atomically.

Every file that something else may read while it is written (checkpoints, metrics.csv, summary.json, the sweep's
markers and definition, the results table, the folder index cache) goes to a temporary name in the same folder
and is renamed over the target, so a reader or a crash never sees half a file. The temporary is always
`.<name>.tmp<pid>`, which remove_stale_temporaries clears when a killed process left one behind.
"""
from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import shutil
import tarfile
from pathlib import Path

from rsb.errors import UserError

# A training run's folder (rsb.training.trainer writes them; the sweep, validate.py and the tests read them).
RESOLVED, METRICS, SUMMARY, CURVES = "resolved.yaml", "metrics.csv", "summary.json", "curves.png"
TRAIN_LOG, WANDB_RUN_ID, TENSORBOARD = "train.log", "wandb_run_id.txt", "tensorboard"
LAST, PREV, BEST = "last.pt", "prev.pt", "best.pt"
EPOCH_CHECKPOINTS = "epoch_*.pt"


def epoch_checkpoint(epoch: int) -> str:
    return f"epoch_{epoch:04d}.pt"


def cache_root() -> Path:
    """$RSB_CACHE, else ~/.cache/rsb: the sample data, folder indexes and extracted ImageNet-V2 archives."""
    return Path(os.environ.get("RSB_CACHE") or Path.home() / ".cache" / "rsb")


def temporary_for(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


@contextlib.contextmanager
def atomic_path(path: str | Path, durable: bool = False, previous: str | Path | None = None):
    """Yield a temporary path to write; on success it replaces `path`, on an error it is removed and `path` is
    untouched. `durable`: the file and the rename are flushed to disk (checkpoints). `previous`: the file being
    replaced is kept under that name (last.pt's prev.pt)."""
    path = Path(path)
    tmp = temporary_for(path)
    try:
        yield tmp
        if durable:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        if previous is not None and path.exists():
            os.replace(path, previous)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    if durable:
        _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:  # not every file system lets a folder be opened or synced
        pass


@contextlib.contextmanager
def atomic_folder(path: str | Path, complete=lambda folder: False):
    """Yield a temporary folder to fill; on success it replaces `path` whole (a stale or empty folder there is
    removed), unless `complete(path)` says another process finished `path` meanwhile: then its copy is kept.
    On an error the temporary folder is removed and `path` is untouched."""
    path = Path(path)
    tmp = temporary_for(path)
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        yield tmp
        if not complete(path):
            shutil.rmtree(path, ignore_errors=True)
            try:
                os.replace(tmp, path)
            except OSError:
                if not complete(path):  # not a concurrent writer that finished first: a real failure
                    raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def file_digest(path: str | Path, algorithm: str) -> str:
    """The hex digest of a file's bytes (hashlib's `algorithm`: "sha256", "md5"), read in 1 MiB chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


EXTRACTED = ".extracted"  # written last inside a finished extraction


def extract_once(archive: str | Path, folder: str | Path) -> Path:
    """`archive` (a tar file the caller has verified) extracted whole into `folder`, once: later calls, and a
    process that finished first, reuse it. A damaged archive or a failed write is one sentence."""
    folder = Path(folder)
    done = lambda f: (f / EXTRACTED).is_file()  # noqa: E731
    if done(folder):
        return folder
    try:
        with atomic_folder(folder, complete=done) as tmp, tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")  # "data": no absolute paths, links out or device files
            (tmp / EXTRACTED).write_text(f"{Path(archive).name}\n")
    except (tarfile.TarError, OSError) as e:
        raise UserError(f"archive {archive} could not be extracted into {folder.parent} ({type(e).__name__}: "
                        f"{e}).") from None
    return folder


def write_text(path: str | Path, text: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, data) -> None:
    write_text(path, json.dumps(data, indent=2) + "\n")


def remove_stale_temporaries(folder: str | Path) -> None:
    """Remove the temporaries of writes that were killed (a live process's own are never older than its run)."""
    for stale in Path(folder).glob(".*.tmp*"):
        if stale.is_file():
            stale.unlink(missing_ok=True)


def read_metrics(run_dir: str | Path) -> list[dict]:
    """metrics.csv as a list of rows (strings, as written); [] when there is none yet."""
    path = Path(run_dir) / METRICS
    try:
        with open(path, newline="") as f:
            return [r for r in csv.DictReader(f) if r.get("epoch")]
    except OSError:
        return []  # none yet, or unreadable at this moment (a reader on another node)
