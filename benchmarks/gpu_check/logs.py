"""The parts' log files (a worker's, the GPU tests'): their last lines for the console, and a copy on request."""
from __future__ import annotations

import shutil
from pathlib import Path


def last_line(path: Path) -> str:
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:220] if lines else ""


def print_tail(log: Path, n: int = 15) -> None:
    try:
        lines = log.read_text(errors="replace").splitlines()[-n:]
    except OSError:
        return
    print(f"--- last lines of {log.name}:", *("    " + ln for ln in lines), sep="\n", flush=True)


def keep_log(log: Path, keep_logs: str | None) -> None:
    """--keep-logs DIR: a copy of the log there (the work folder with the original is removed at the end)."""
    if keep_logs:
        dest = Path(keep_logs)
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy(log, dest / log.name)
