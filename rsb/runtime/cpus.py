"""The CPU budget: how many CPUs this process may use, and from them its torch compute threads and the loader
processes it starts. train.py, validate.py, the sweep's jobs and runners, and the benchmarks all count CPUs here.

Torch sizes its thread pool from the machine (or OMP_NUM_THREADS), not from the allocation: a Slurm task given
one CPU on a node that does not pin CPUs (task/none) ran with two threads and competed with its neighbour. The
budget takes the allocation instead: Slurm's CPUs per task, shared among the processes torchrun starts in it;
else the affinity mask shared among this node's processes.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass

from rsb.errors import UserError

MAX_DEFAULT_WORKERS = 8


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, which Slurm and taskset set), not the machine's count."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@dataclass(frozen=True)
class CpuBudget:
    cpus: int       # CPUs this process may use
    threads: int    # torch's compute threads
    workers: int    # loader processes
    source: str     # where the numbers come from, in words

    def describe(self) -> str:
        """The start-up line."""
        return (f"CPU budget: {self.cpus} CPU(s) for this process ({self.source}): {self.threads} compute "
                f"thread(s), {self.workers} loader worker(s)")

    def as_dict(self) -> dict:
        """resolved.yaml's environment.cpu."""
        return asdict(self)

    def apply(self) -> None:
        import torch
        torch.set_num_threads(self.threads)


def _env_int(name: str) -> int | None:
    value = os.environ.get(name, "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def _allocation(processes_sharing: int | None) -> tuple[int, str]:
    """(CPUs of this process, where that count comes from)."""
    mask = usable_cpus()
    torchrun_local = _env_int("LOCAL_WORLD_SIZE")  # torchrun's processes on this node
    slurm = _env_int("SLURM_CPUS_PER_TASK")
    if slurm is not None:  # the task's CPUs (the mask may show the whole node when Slurm does not bind CPUs)
        # shared by the processes torchrun starts in the task, or by a local sweep's seeds run inside it
        share = processes_sharing or torchrun_local or 1
        where = f"SLURM_CPUS_PER_TASK={slurm}" + (f" / {share} processes in the task" if share > 1 else "")
        return max(1, min(mask, slurm) // share), where
    if processes_sharing is not None:
        share, why = processes_sharing, f"{processes_sharing} run(s) sharing them"
    elif torchrun_local is not None:
        share, why = torchrun_local, f"LOCAL_WORLD_SIZE={torchrun_local}"
    else:
        from rsb.runtime.distributed import env_rank_world  # torch loads only here: counting CPUs does not need it
        share, why = env_rank_world()[1], "the job's processes"
    share = max(1, share)
    where = f"{mask} CPUs in the affinity mask" + (f" / {why}" if share > 1 else "")
    return max(1, mask // share), where


def cpu_budget(threads: int | None = None, workers: int | None = None,
               processes_sharing: int | None = None) -> CpuBudget:
    """This process's CPUs and, from them, torch's threads and the loader processes: `threads` (--threads),
    else OMP_NUM_THREADS where set (torchrun sets 1 for several processes per node unless you do), else one per
    CPU; `workers` (--workers), else one per CPU, at most 8. `processes_sharing`: the runs sharing this
    machine's CPUs (a local sweep's seeds at once); by default this node's processes of the job (torchrun's
    LOCAL_WORLD_SIZE, else the world size). Under Slurm the task's SLURM_CPUS_PER_TASK is the pool."""
    for flag, value in (("--threads", threads), ("--workers", workers)):
        if value is not None and value < (1 if flag == "--threads" else 0):
            raise UserError(f"{flag} must be {'1' if flag == '--threads' else '0'} or more, got {value}.")
    cpus, source = _allocation(processes_sharing)
    omp = _env_int("OMP_NUM_THREADS")
    if threads is not None:
        source += f"; --threads {threads}"
    elif omp is not None:
        threads, source = omp, source + f"; OMP_NUM_THREADS={omp}"
    else:
        threads = cpus
    if workers is not None:
        source += f"; --workers {workers}"
    else:
        workers = min(MAX_DEFAULT_WORKERS, cpus)
    return CpuBudget(cpus, threads, workers, source)


def default_workers(processes_sharing: int | None = None) -> int:
    """Loader processes per process: its share of the CPUs, at most 8 (cpu_budget's rule)."""
    return cpu_budget(processes_sharing=processes_sharing).workers
