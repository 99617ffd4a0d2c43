"""What a seed's run folder tells about it. The trainer writes resolved.yaml, metrics.csv, last.pt and
summary.json; the sweep's job adds two markers: RUNNING.json while a job trains it (host, pid, job id) and
FAILED.json when the job ended with an error (type, message, the end of the traceback)."""
from __future__ import annotations

import json
import os
import socket
import time
import traceback
from pathlib import Path

from rsb import runfolder
from rsb.runfolder import LAST, PREV, SUMMARY, read_metrics

RUNNING, FAILED, FAILED_PREVIOUS = "RUNNING.json", "FAILED.json", "FAILED.previous.json"
LOG = "log.txt"
TRACEBACK_LINES = 15


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(Path(path).read_text())
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None  # absent, or caught mid-write by a reader on another node


def read_summary(run_dir: Path) -> dict | None:
    return _read_json(Path(run_dir) / SUMMARY)


def is_finished(run_dir: Path, epochs: int) -> bool:
    """Finished means the trainer's summary says the last epoch was reached (a summary of a shorter run that
    was later extended does not count)."""
    s = read_summary(run_dir)
    return bool(s) and s.get("final_epoch") is not None and int(s["final_epoch"]) >= epochs


def has_checkpoint(run_dir: Path) -> bool:
    return any((Path(run_dir) / n).is_file() for n in (LAST, PREV))


def epochs_done(run_dir: Path) -> int:
    """Completed epochs, from metrics.csv (one row per finished epoch)."""
    rows = [r for r in read_metrics(run_dir) if r.get("train_loss") not in ("", None, "nan")]
    return max((int(r["epoch"]) for r in rows), default=0)


def first_epoch_loss(run_dir: Path) -> float | None:
    for r in read_metrics(run_dir):
        if int(r["epoch"]) == 1 and r.get("train_loss") not in ("", None):
            return float(r["train_loss"])
    return None


# ---- markers written by the job ------------------------------------------------------------------------------
def write_running(run_dir: Path, job_id: str | None, world_size: int) -> None:
    runfolder.write_json(Path(run_dir) / RUNNING, {"host": socket.gethostname(), "pid": os.getpid(), "job_id": job_id,
                                          "world_size": world_size, "started": time.time()})


def clear_running(run_dir: Path) -> None:
    (Path(run_dir) / RUNNING).unlink(missing_ok=True)


def read_running(run_dir: Path) -> dict | None:
    return _read_json(Path(run_dir) / RUNNING)


def write_failed(run_dir: Path, error: BaseException, job_id: str | None, rank: int) -> None:
    tb = traceback.format_exception(type(error), error, error.__traceback__)
    lines = "".join(tb).rstrip().splitlines()[-TRACEBACK_LINES:]
    runfolder.write_json(Path(run_dir) / FAILED, {
        "type": type(error).__name__, "message": str(error).strip() or type(error).__name__,
        "traceback": lines, "job_id": job_id, "rank": rank, "host": socket.gethostname(), "time": time.time()})


def read_failed(run_dir: Path) -> dict | None:
    return _read_json(Path(run_dir) / FAILED)


def retire_failed(run_dir: Path) -> None:
    """A resubmitted seed is no longer failed; its last error is kept beside, for diagnosis."""
    path = Path(run_dir) / FAILED
    if path.is_file():
        os.replace(path, Path(run_dir) / FAILED_PREVIOUS)


def failure_reason(info: dict) -> str:
    msg = " ".join(str(info.get("message", "")).split())
    return f"{info.get('type', 'error')}: {msg}" if msg else str(info.get("type", "error"))
