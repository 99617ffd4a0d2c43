"""Per-seed state of a sweep: queued, running (epoch k of n), finished, failed (with the reason), interrupted
(progress on disk but no live job: relaunch to resume) or missing (nothing submitted or nothing done).

The run folder is the truth for finished and failed; for the rest the scheduler's word (sacct) comes first,
because a job killed hard (out of memory, node failure) leaves a stale RUNNING.json behind."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from rsb.sweep import jobs, runfiles, spec as sweepspec
from rsb.sweep.seeds import run_dir_name

STATES = ("finished", "running", "queued", "failed", "interrupted", "missing")
SLURM_QUEUED = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING", "RESIZING", "SUSPENDED"}
SLURM_RUNNING = {"RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING"}
SLURM_FAILED = {"FAILED", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL"}  # others (TIMEOUT, CANCELLED, ...) interrupt


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
    done = runfiles.epochs_done(run_dir)
    job_id = (record or {}).get("job_id")

    def status(state: str, reason: str = "") -> SeedStatus:
        return SeedStatus(seed, state, done, epochs, job_id, reason)

    if runfiles.is_finished(run_dir, epochs):
        return status("finished")
    failed = runfiles.read_failed(run_dir)
    if failed:
        return status("failed", runfiles.failure_reason(failed))
    progress = done > 0 or runfiles.has_checkpoint(run_dir)
    stale = status("interrupted", "no live job; relaunch to resume") if progress else status("missing")
    marker = runfiles.read_running(run_dir)
    marker_alive = bool(marker) and jobs.on_this_host(marker) and jobs.pid_alive(marker.get("pid"))
    cluster = (record or {}).get("cluster")
    if cluster == "slurm":
        if sched_state in SLURM_RUNNING:
            return status("running")
        if sched_state in SLURM_QUEUED:
            return status("queued", "requeued" if progress else "")
        if sched_state in SLURM_FAILED:
            return status("failed", f"Slurm job {job_id} ended {sched_state}; see its log under submitit/")
        if sched_state is None:  # sacct unavailable: the files are all we have
            return status("running" if marker else "queued", "scheduler state unknown")
        ended = "is unknown to Slurm" if sched_state == jobs.NOT_FOUND else f"ended {sched_state}"
        return status("interrupted", f"Slurm job {job_id} {ended}; relaunch to resume")
    if marker_alive:
        return status("running")
    if cluster == "local" and jobs.on_this_host(record) and jobs.pid_alive(record.get("launcher_pid")):
        return status("queued")
    if marker and not jobs.on_this_host(marker):
        return status("running", f"on {marker.get('host')} (cannot check from this host)")
    return stale


def statuses_for(out: Path, seeds: list[int], epochs: int, query_scheduler: bool = True) -> list[SeedStatus]:
    """States of `seeds` in the sweep folder `out`, asking sacct once for all Slurm jobs on record."""
    records = jobs.load_jobs(out)
    slurm_ids = [r["job_id"] for r in records.values() if r.get("cluster") == "slurm" and r.get("job_id")]
    states = jobs.slurm_states(slurm_ids) if query_scheduler and slurm_ids else None
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
