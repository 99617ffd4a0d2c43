"""What state seed N is in: queued, running (epoch k of n), finished, failed (with the reason), interrupted
(progress on disk but no live job: relaunch to resume) or missing (nothing submitted or nothing done), and from
it which seeds a launch submits.

Two sources. The run folder: the trainer writes resolved.yaml, metrics.csv, last.pt and summary.json; the seed's
job adds RUNNING.json while it trains (host, pid, job id) and FAILED.json when it ended with an error (type,
message, the end of the traceback). The queue: what was submitted for each seed (<out>/jobs.json), Slurm's state
(rsb.sweep.queue: squeue, then sacct) or, for seeds run on this machine, whether the launching process still
lives.

The run folder is the truth for finished and failed; for the rest the scheduler's word comes first, because a
job killed hard (out of memory, node failure) leaves a stale RUNNING.json behind."""
from __future__ import annotations

import json
import os
import socket
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rsb.run import folder as run_folder
from rsb.run.folder import LAST, PREV, SUMMARY, read_metrics
from rsb.sweep import spec as sweepspec
from rsb.sweep.queue import NOT_FOUND, SLURM_FAILED, SLURM_QUEUED, SLURM_RUNNING, slurm_states
from rsb.sweep.spec import run_dir_name

RUNNING, FAILED, FAILED_PREVIOUS = "RUNNING.json", "FAILED.json", "FAILED.previous.json"
LOG = "log.txt"
TRACEBACK_LINES = 15
JOBS_NAME = "jobs.json"
STATES = ("finished", "running", "queued", "failed", "interrupted", "missing")


# ---- the run folder ------------------------------------------------------------------------------------------
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
    run_folder.write_json(Path(run_dir) / RUNNING, {"host": socket.gethostname(), "pid": os.getpid(),
                                                   "job_id": job_id, "world_size": world_size, "started": time.time()})


def clear_running(run_dir: Path) -> None:
    (Path(run_dir) / RUNNING).unlink(missing_ok=True)


def read_running(run_dir: Path) -> dict | None:
    return _read_json(Path(run_dir) / RUNNING)


def write_failed(run_dir: Path, error: BaseException, job_id: str | None, rank: int) -> None:
    tb = traceback.format_exception(type(error), error, error.__traceback__)
    lines = "".join(tb).rstrip().splitlines()[-TRACEBACK_LINES:]
    run_folder.write_json(Path(run_dir) / FAILED, {
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


# ---- the queue: job records, scheduler states, process liveness --------------------------------------------
def load_jobs(out: Path) -> dict[int, dict]:
    try:
        doc = json.loads((Path(out) / JOBS_NAME).read_text())
        return {int(k): v for k, v in doc.get("seeds", {}).items()}
    except (OSError, ValueError, AttributeError):
        return {}


def save_jobs(out: Path, records: dict[int, dict]) -> None:
    run_folder.write_json(Path(out) / JOBS_NAME, {"seeds": {str(k): records[k] for k in sorted(records)}})


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


# ---- the state of each seed ---------------------------------------------------------------------------------
@dataclass
class SeedStatus:
    seed: int
    state: str
    epochs_done: int
    epochs: int
    job_id: str | None = None
    reason: str = ""

    @property
    def text(self) -> str:
        if self.state == "running":
            return f"running (epoch {min(self.epochs_done + 1, self.epochs)} of {self.epochs})"
        return self.state


def seed_status(seed: int, run_dir: Path, epochs: int, record: dict | None, sched_state: str | None) -> SeedStatus:
    """The state of one seed from its run folder, its job record and the scheduler's state of that job
    (None when unknown)."""
    done = epochs_done(run_dir)
    job_id = (record or {}).get("job_id")

    def status(state: str, reason: str = "") -> SeedStatus:
        return SeedStatus(seed, state, done, epochs, job_id, reason)

    if is_finished(run_dir, epochs):
        return status("finished")
    failed = read_failed(run_dir)
    if failed:
        return status("failed", failure_reason(failed))
    progress = done > 0 or has_checkpoint(run_dir)
    stale = status("interrupted", "no live job; relaunch to resume") if progress else status("missing")
    marker = read_running(run_dir)
    marker_alive = bool(marker) and on_this_host(marker) and pid_alive(marker.get("pid"))
    cluster = (record or {}).get("cluster")
    if cluster == "slurm":
        if sched_state in SLURM_RUNNING:
            return status("running")
        if sched_state in SLURM_QUEUED:
            return status("queued", "requeued" if progress else "")
        if sched_state in SLURM_FAILED:
            return status("failed", f"Slurm job {job_id} ended {sched_state}; see its log under submitit/")
        if sched_state is None:  # squeue and sacct unavailable: the files are all we have
            return status("running" if marker else "queued", "scheduler state unknown")
        ended = "is unknown to Slurm" if sched_state == NOT_FOUND else f"ended {sched_state}"
        return status("interrupted", f"Slurm job {job_id} {ended}; relaunch to resume")
    if marker_alive:
        return status("running")
    if cluster == "local" and on_this_host(record) and pid_alive(record.get("launcher_pid")):
        return status("queued")
    if marker and not on_this_host(marker):
        return status("running", f"on {marker.get('host')} (cannot check from this host)")
    return stale


def statuses_for(out: Path, seeds: list[int], epochs: int, query_scheduler: bool = True) -> list[SeedStatus]:
    """States of `seeds` in the sweep folder `out`, asking the scheduler once for all Slurm jobs on record."""
    records = load_jobs(out)
    slurm_ids = [r["job_id"] for r in records.values() if r.get("cluster") == "slurm" and r.get("job_id")]
    states = slurm_states(slurm_ids) if query_scheduler and slurm_ids else None
    result = []
    for seed in seeds:
        rec = records.get(seed)
        sched = states.get((rec or {}).get("job_id")) if states else None
        result.append(seed_status(seed, Path(out) / run_dir_name(seed), epochs, rec, sched))
    return result


def collect(out: str | Path, query_scheduler: bool = True) -> tuple[sweepspec.SweepSpec, list[SeedStatus]]:
    spec = sweepspec.load(out)
    return spec, statuses_for(Path(out), spec.seeds, spec.epochs, query_scheduler)


def counts(statuses: list[SeedStatus]) -> dict[str, int]:
    return {s: sum(st.state == s for st in statuses) for s in STATES}


def format_table(spec: sweepspec.SweepSpec, out: Path, statuses: list[SeedStatus]) -> str:
    head = (f"sweep {out}: recipe {Path(spec.recipe).stem}, {len(spec.seeds)} seeds, {spec.epochs} epochs, "
            f"{'sample data' if spec.sample else spec.data}, {spec.executor.cluster}")
    rows = [("seed", "state", "epochs", "job", "note")]
    for s in statuses:
        rows.append((str(s.seed), s.text, f"{s.epochs_done}/{s.epochs}", s.job_id or "-", s.reason))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [head] + [("  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4]).rstrip()
                      for r in rows]
    c = counts(statuses)
    lines.append("total: " + ", ".join(f"{n} {k}" for k, n in c.items() if n))
    return "\n".join(lines)


def as_json(spec: sweepspec.SweepSpec, statuses: list[SeedStatus]) -> dict:
    return {"recipe": spec.recipe, "epochs": spec.epochs, "counts": counts(statuses),
            "seeds": [{**asdict(s), "text": s.text} for s in statuses]}


# ---- which seeds a launch submits ----------------------------------------------------------------------------
@dataclass
class Plan:
    """Finished seeds are skipped (and reported), seeds with a live job are left alone (a second job would train
    into the same folder), every other seed is submitted, and those with a checkpoint resume from it (the
    trainer's auto-resume from the run folder's last.pt)."""
    submit: list[int] = field(default_factory=list)    # to run now: fresh, resumed or retried
    resume: list[int] = field(default_factory=list)    # of those, the ones with progress to resume from
    retry: list[int] = field(default_factory=list)     # of those, the ones whose last job failed
    finished: list[int] = field(default_factory=list)  # skipped: done
    active: list[int] = field(default_factory=list)    # skipped: queued or running now


def make_plan(statuses: list[SeedStatus]) -> Plan:
    plan = Plan()
    for s in statuses:
        if s.state == "finished":
            plan.finished.append(s.seed)
        elif s.state in ("queued", "running"):
            plan.active.append(s.seed)
        else:
            plan.submit.append(s.seed)
            if s.state == "failed":
                plan.retry.append(s.seed)
            if s.epochs_done > 0 or s.state == "interrupted":
                plan.resume.append(s.seed)
    return plan


def plan_seeds(out: Path, seeds: list[int], epochs: int, query_scheduler: bool = True) -> Plan:
    """The plan for `seeds` of the sweep in `out`, from the run folders and the job records there. A Slurm job
    whose state the scheduler cannot tell counts as live: a duplicate job in one run folder is worse than a wait."""
    return make_plan(statuses_for(Path(out), seeds, epochs, query_scheduler))
