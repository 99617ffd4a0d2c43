"""Submitting to Slurm through submitit: the seeds as one array job, one array task per seed, each task group a
DDP run (tasks per node: one process per GPU by default, or --tasks-per-node, e.g. for CPU nodes); and a single
job (the report's scoring), waited for here."""
from __future__ import annotations

import shutil
import time
from pathlib import Path

from rsb.errors import UserError
from rsb.sweep import PACKAGE_ROOT, queue
from rsb.sweep.seedjob import PREEMPT_SIGNAL, SeedJob
from rsb.sweep.spec import Executor, SweepSpec

SIGNAL_NAME = PREEMPT_SIGNAL.name.removeprefix("SIG")  # "USR2", as sbatch and submitit spell it
LOG_FOLDER = "submitit"


def slurm_available() -> bool:
    return shutil.which("sbatch") is not None and shutil.which("srun") is not None


def executor_parameters(ex: Executor, name: str, extra: dict | None = None) -> dict:
    """AutoExecutor parameters for the sweep's executor settings (None values are left to the cluster)."""
    params = dict(name=name, nodes=ex.nodes, tasks_per_node=ex.processes_per_node,
                  gpus_per_node=ex.gpus_per_node or None, cpus_per_task=ex.cpus_per_task,
                  timeout_min=int(ex.timeout_min), mem_gb=ex.mem_gb, slurm_partition=ex.partition,
                  slurm_array_parallelism=ex.max_parallel,
                  slurm_stderr_to_stdout=True,  # one log per task: errors next to the lines before them
                  # The preemption signal on both ends, not submitit's pick (from $SUBMITIT_PREEMPT_SIGNAL of the
                  # shell that submits, and of the job): sbatch sends PREEMPT_SIGNAL, submitit's handler in the
                  # job is bound to it, and SeedJob re-raises it into that handler. signal_before_s: room to
                  # finish a step and write a checkpoint before the time limit.
                  slurm_additional_parameters={"signal": f"{SIGNAL_NAME}@{ex.signal_before_s}", **(extra or {})},
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
    except Exception as e:
        raise _refused(e, "the sweep's array job") from None
    return {seed: job.job_id for seed, job in zip(seeds, submitted)}


def submit_job(out: Path, ex: Executor, name: str, fn, extra: dict | None = None):
    """Submit one callable as one plain job; its submitit Job."""
    executor = make_executor(out, ex, name, extra)
    try:
        return executor.submit(fn)
    except Exception as e:
        raise _refused(e, f"the {name} job") from None


def _refused(error: Exception, what: str) -> UserError:
    """sbatch refused a submission (bad partition, limits): its message, on one line, is the useful part."""
    return UserError(f"sbatch refused {what}: {' '.join(str(error).split())[:500]}")


def _job_error(error: Exception) -> str:
    """The last line of the job's traceback in submitit's FailedJobError (the exception), else its first line."""
    parts = str(error).split("-" * 22)
    trace = [line for line in (parts[1] if len(parts) > 2 else str(error)).splitlines() if line.strip()]
    return trace[-1].strip() if trace else type(error).__name__


def wait_for(job, what: str, poll_s: float = 2.0, grace_s: float = 30.0):
    """The result of a submitted job, waited for here. submitit's own wait asks sacct, which a cluster without
    accounting lacks, and would wait forever for a job killed before it wrote its result; here the queue
    (squeue, then sacct) says when a job ended, and an end without a result is an error."""
    ended_at = None
    while not job.paths.result_pickle.exists():
        sched = (queue.slurm_states([job.job_id]) or {}).get(job.job_id)
        if sched is None or sched in queue.SLURM_QUEUED | queue.SLURM_RUNNING:
            ended_at = None
        elif ended_at is None:
            ended_at = time.monotonic()
        elif time.monotonic() - ended_at > grace_s:  # the result file may lag on a shared file system
            raise UserError(f"{what} (Slurm job {job.job_id}) ended {sched} without a result; see "
                            f"{job.paths.stdout}.")
        time.sleep(poll_s)
    try:
        return job.result()
    except Exception as e:  # the job's own error, raised there and pickled back
        raise UserError(f"{what} (Slurm job {job.job_id}) failed: {_job_error(e)}; see {job.paths.stdout}.") \
            from None
