"""The CPU budget: how many CPUs this process may use, and how many loader processes it starts by default.
train.py, validate.py, the sweep's jobs and runners, and the benchmarks all count CPUs here."""
from __future__ import annotations

import os


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, which Slurm and taskset set), not the machine's count."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def default_workers(processes_sharing: int | None = None) -> int:
    """Loader processes per training process: its share of the CPUs, at most 8. Under Slurm the share is the
    task's SLURM_CPUS_PER_TASK (the affinity mask may show the whole node when Slurm does not bind CPUs);
    elsewhere the usable CPUs divided among the processes that share them: `processes_sharing` (a local sweep's
    seeds at once), by default this job's processes (the world size)."""
    from rsb.runtime.distributed import env_rank_world  # torch loads only here: counting CPUs does not need it
    cpus = usable_cpus()
    if os.environ.get("SLURM_CPUS_PER_TASK"):
        return max(1, min(8, cpus, int(os.environ["SLURM_CPUS_PER_TASK"])))
    share = processes_sharing if processes_sharing is not None else env_rank_world()[1]
    return max(1, min(8, cpus // max(1, share)))
