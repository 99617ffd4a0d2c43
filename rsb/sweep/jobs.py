"""What was submitted for each seed (<out>/jobs.json) and whether it is still alive: Slurm's state from sacct,
or, for seeds run on this machine, whether the launching process still lives."""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
from pathlib import Path

from rsb import runfolder

JOBS_NAME = "jobs.json"
_ARRAY = re.compile(r"^(\d+)_\[([^\]]+)\]$")  # a pending array: 1234_[3-9%4] or 1234_[1,4]


def load_jobs(out: Path) -> dict[int, dict]:
    try:
        doc = json.loads((Path(out) / JOBS_NAME).read_text())
        return {int(k): v for k, v in doc.get("seeds", {}).items()}
    except (OSError, ValueError, AttributeError):
        return {}


def save_jobs(out: Path, records: dict[int, dict]) -> None:
    runfolder.write_json(Path(out) / JOBS_NAME, {"seeds": {str(k): records[k] for k in sorted(records)}})


def local_record(launcher_pid: int | None = None) -> dict:
    return {"cluster": "local", "job_id": None, "host": socket.gethostname(),
            "launcher_pid": launcher_pid or os.getpid(), "submitted": time.time()}


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def on_this_host(record: dict | None) -> bool:
    return bool(record) and record.get("host") == socket.gethostname()


def parse_sacct(text: str) -> dict[str, str]:
    """`sacct -n -P -X -o JobID,State` lines to {job id: STATE}; pending array ranges are expanded."""
    states = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 2 or not parts[0]:
            continue
        job, state = parts[0], (parts[1].split() or ["UNKNOWN"])[0]  # "CANCELLED by 1234" -> CANCELLED
        m = _ARRAY.match(job)
        if not m:
            states[job] = state
            continue
        for item in m.group(2).split("%")[0].split(","):
            lo, _, hi = item.partition("-")
            for i in range(int(lo), int(hi or lo) + 1):
                states[f"{m.group(1)}_{i}"] = state
    return states


NOT_FOUND = "NOT_FOUND"  # sacct answered, without this job: it is long gone


def slurm_states(job_ids: list[str], timeout_s: float = 30) -> dict[str, str] | None:
    """Scheduler states of Slurm job ids (NOT_FOUND for ids sacct does not list); None when sacct is missing
    or fails, and the caller has only the run folders to go by."""
    bases = sorted({j.split("_")[0] for j in job_ids if j})
    if not bases:
        return {}
    try:
        out = subprocess.run(["sacct", "-n", "-P", "-X", "-o", "JobID,State", "-j", ",".join(bases)],
                             capture_output=True, text=True, timeout=timeout_s, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    states = parse_sacct(out.stdout)
    return {j: states.get(j, NOT_FOUND) for j in job_ids if j}
