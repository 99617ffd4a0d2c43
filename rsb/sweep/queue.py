"""Slurm's word on a job: squeue for the jobs the controller still holds (pending, running, requeued, and ended
ones for MinJobAge), sacct for the rest (accounting may be off: a small cluster without slurmdbd has no sacct).

Job ids are submitit's: "<id>" for a plain job, "<array id>_<index>" for an array task."""
from __future__ import annotations

import re
import subprocess

NOT_FOUND = "NOT_FOUND"  # the scheduler answered, without this job: it is long gone
SLURM_QUEUED = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING", "RESIZING", "SUSPENDED"}
SLURM_RUNNING = {"RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING"}
SLURM_FAILED = {"FAILED", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL"}  # others (TIMEOUT, CANCELLED, ...) interrupt
_ARRAY = re.compile(r"^(\d+)_\[([^\]]+)\]$")  # a pending array: 1234_[3-9%4] or 1234_[1,4]


def parse_states(text: str) -> dict[str, str]:
    """`JobID|State` lines (sacct -P, or squeue -o '%i|%T') to {job id: STATE}; pending array ranges are
    expanded."""
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


def _ask(cmd: list[str], timeout_s: float) -> dict[str, str] | None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_states(out.stdout)


def _bases(job_ids: list[str]) -> str:
    return ",".join(sorted({j.split("_")[0] for j in job_ids}))


def squeue_states(job_ids: list[str], timeout_s: float = 30) -> dict[str, str] | None:
    return _ask(["squeue", "-h", "-r", "-t", "all", "-o", "%i|%T", "-j", _bases(job_ids)], timeout_s)


def sacct_states(job_ids: list[str], timeout_s: float = 30) -> dict[str, str] | None:
    return _ask(["sacct", "-n", "-P", "-X", "-o", "JobID,State", "-j", _bases(job_ids)], timeout_s)


def slurm_states(job_ids: list[str], timeout_s: float = 30) -> dict[str, str] | None:
    """Scheduler states of Slurm job ids (NOT_FOUND for ids neither squeue nor sacct lists); None when neither
    command answers, and the caller has only the run folders to go by."""
    job_ids = [j for j in job_ids if j]
    if not job_ids:
        return {}
    live = squeue_states(job_ids, timeout_s)
    rest = [j for j in job_ids if live is None or j not in live]
    ended = sacct_states(rest, timeout_s) if rest else {}
    if live is None and ended is None:
        return None
    states = {**(ended or {}), **(live or {})}
    return {j: states.get(j, NOT_FOUND) for j in job_ids}
