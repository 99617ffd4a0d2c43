"""Which seeds a launch submits: finished seeds are skipped (and reported), seeds with a live job are left
alone (a second job would train into the same folder), every other seed is submitted, and those with a
checkpoint resume from it (the trainer's auto-resume from the run folder's last.pt)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rsb.sweep.status import SeedStatus, statuses_for


@dataclass
class Plan:
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
    whose state sacct cannot tell counts as live: a duplicate job in one run folder is worse than a wait."""
    return make_plan(statuses_for(Path(out), seeds, epochs, query_scheduler))
