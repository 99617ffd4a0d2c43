"""Submitting seeds to Slurm through submitit: one array job, one array task per seed, each task group a DDP
run (tasks per node = GPUs per node, one process per GPU)."""
from __future__ import annotations

import shutil
from pathlib import Path

from rsb.errors import UserError
from rsb.sweep import PACKAGE_ROOT
from rsb.sweep.seedjob import PREEMPT_SIGNAL, SeedJob
from rsb.sweep.spec import Executor, SweepSpec

SIGNAL_DELAY_S = 180  # the signal this long before the time limit: room to finish a step and write a checkpoint
SIGNAL_NAME = PREEMPT_SIGNAL.name.removeprefix("SIG")  # "USR2", as sbatch and submitit spell it
LOG_FOLDER = "submitit"


def slurm_available() -> bool:
    return shutil.which("sbatch") is not None and shutil.which("srun") is not None


def executor_parameters(ex: Executor, name: str, extra: dict | None = None) -> dict:
    """AutoExecutor parameters for the sweep's executor settings (None values are left to the cluster)."""
    params = dict(name=name, nodes=ex.nodes, tasks_per_node=max(1, ex.gpus_per_node),
                  gpus_per_node=ex.gpus_per_node or None, cpus_per_task=ex.cpus_per_task,
                  timeout_min=int(ex.timeout_min), mem_gb=ex.mem_gb, slurm_partition=ex.partition,
                  slurm_array_parallelism=ex.max_parallel,
                  # The preemption signal on both ends, not submitit's pick (from $SUBMITIT_PREEMPT_SIGNAL of the
                  # shell that submits, and of the job): sbatch sends PREEMPT_SIGNAL, submitit's handler in the
                  # job is bound to it, and SeedJob re-raises it into that handler.
                  slurm_additional_parameters={"signal": f"{SIGNAL_NAME}@{SIGNAL_DELAY_S}", **(extra or {})},
                  slurm_setup=[f"export SUBMITIT_PREEMPT_SIGNAL={SIGNAL_NAME}",
                               # the job's Python must import this rsb even when it is not installed (a checkout)
                               f'export PYTHONPATH="{PACKAGE_ROOT}${{PYTHONPATH:+:$PYTHONPATH}}"'])
    return {k: v for k, v in params.items() if v is not None}


def check_ready() -> None:
    """Fail before anything is written when Slurm cannot be used from here."""
    try:
        import submitit  # noqa: F401
    except ImportError:
        raise UserError("submitting to Slurm needs submitit: pip install -e '.[slurm]' "
                        "(or pass --cluster local).") from None
    if not slurm_available():
        raise UserError("--cluster slurm, but sbatch/srun are not on PATH; run on a Slurm login node or pass "
                        "--cluster local.")


def make_executor(out: Path, ex: Executor, name: str, extra: dict | None = None):
    check_ready()
    import submitit
    executor = submitit.AutoExecutor(folder=Path(out).resolve() / LOG_FOLDER / "%j", cluster="slurm")
    executor.update_parameters(**executor_parameters(ex, name, extra))
    return executor


def submit(spec: SweepSpec, out: Path, seeds: list[int], extra: dict | None = None) -> dict[int, str]:
    """Submit one array job for `seeds`; their Slurm job ids ("<array id>_<index>")."""
    name = f"rsb-{Path(spec.recipe).stem}-sweep"
    executor = make_executor(out, spec.executor, name, extra)
    fns = [SeedJob.from_spec(spec, out, seed) for seed in seeds]
    try:
        submitted = executor.submit_array(fns)
    except Exception as e:  # sbatch refused (bad partition, limits): its message is the useful part
        msg = " ".join(str(e).split())[:500]
        raise UserError(f"sbatch refused the sweep's array job: {msg}") from None
    return {seed: job.job_id for seed, job in zip(seeds, submitted)}
