"""The job a runner executes for one seed: train it in the process the job runs in, as one rank of a DDP run
when the job has several tasks. The same object runs under Slurm (submitit pickles it into the job), under the
local runner (`python -m rsb.sweep job OUT SEED`) and by hand.

Preemption and time limits: Slurm sends PREEMPT_SIGNAL shortly before it stops a job (rsb.sweep.slurm asks for
it). The trainer catches it, finishes its step, writes a mid-epoch last.pt and exits with 128 + signal; the job
then re-raises the signal into submitit's own handler (the trainer restores it on the way out), which calls
checkpoint() and requeues the job. The requeued job builds the same config, and the trainer resumes from the run
folder.
"""
from __future__ import annotations

import os
import signal
from pathlib import Path

from rsb.sweep import state
from rsb.sweep.spec import run_dir_name, seed_config

# The signal that means "save and requeue", named here rather than asked of submitit (its JobEnvironment._usr_sig()
# is private): rsb.sweep.slurm puts it in the sbatch --signal and in the job's SUBMITIT_PREEMPT_SIGNAL, the
# variable submitit's handler is bound by (default USR2). USR2, not USR1: NCCL may catch USR1.
PREEMPT_SIGNAL = signal.SIGUSR2


def ddp_environment(env) -> dict[str, str]:
    """torch.distributed's variables from a submitit JobEnvironment, for rsb.runtime.distributed.init to read."""
    from rsb.runtime.distributed import master_port_for_job
    return {"RANK": str(env.global_rank), "WORLD_SIZE": str(env.num_tasks), "LOCAL_RANK": str(env.local_rank),
            "MASTER_ADDR": str(env.hostnames[0]), "MASTER_PORT": str(master_port_for_job(env.raw_job_id))}


class SeedJob:
    """One seed's training. Holds everything it needs (not a path to sweep.json), so a requeued job runs
    exactly what was submitted even if the sweep folder is relaunched with other executor settings."""

    def __init__(self, sweep_dir: str, seed: int, recipe: str, overrides: list[str], data: str | None,
                 workers: int | None = None, device: str = "auto", cpu_share: int = 1, resume_changed: bool = False,
                 val_labels: str | None = None, threads: int | None = None):
        self.params = dict(sweep_dir=str(sweep_dir), seed=int(seed), recipe=recipe, overrides=list(overrides),
                           data=data, workers=workers, device=device, cpu_share=int(cpu_share),
                           resume_changed=bool(resume_changed), val_labels=val_labels, threads=threads)

    @classmethod
    def from_spec(cls, spec, out: Path, seed: int, cpu_share: int = 1) -> "SeedJob":
        return cls(str(Path(out).resolve()), seed, spec.recipe, spec.overrides, spec.data,
                   spec.executor.workers, spec.executor.device, cpu_share, spec.executor.resume_changed,
                   spec.val_labels, spec.executor.threads)

    @property
    def run_dir(self) -> Path:
        return Path(self.params["sweep_dir"]) / run_dir_name(self.params["seed"])

    def _environment(self) -> tuple[int, int, str, int | None]:
        """Set rank variables for rsb.runtime.distributed; (rank, world size, job id, the requeue signal or None)."""
        if os.environ.get("SUBMITIT_EXECUTOR"):
            import submitit
            env = submitit.JobEnvironment()
            os.environ.update(ddp_environment(env))
            return env.global_rank, env.num_tasks, env.job_id, PREEMPT_SIGNAL
        # A single process: also shields the run from rank variables of an enclosing torchrun or srun.
        os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", LOCAL_WORLD_SIZE="1")
        return 0, 1, f"local:{os.getpid()}", None

    def __call__(self) -> dict:
        # torch loads here, where the job runs, not in the commands that submit or follow it
        from rsb.training.trainer import LaunchOptions, train
        p = self.params
        rank, world, job_id, requeue_signal = self._environment()
        run_dir = self.run_dir
        if rank == 0:
            run_dir.mkdir(parents=True, exist_ok=True)
            state.retire_failed(run_dir)
            state.write_running(run_dir, job_id, world)
        try:
            cfg = seed_config(p["recipe"], p["overrides"], p["data"] is None, p["seed"])
            # workers and threads: given, or from the CPU budget as train.py's (rsb.runtime.cpus)
            env = LaunchOptions(data=Path(p["data"]) if p["data"] else None, output=run_dir, workers=p["workers"],
                                threads=p.get("threads"), cpu_share=p["cpu_share"], device=p["device"],
                                resume_changed=p["resume_changed"],
                                val_labels=Path(p["val_labels"]) if p.get("val_labels") else None)
            return train(cfg, env)
        except SystemExit as e:
            if requeue_signal is not None and e.code == 128 + requeue_signal:
                signal.raise_signal(requeue_signal)  # submitit's handler: checkpoint() and requeue (rank 0)
            raise
        except KeyboardInterrupt:
            raise
        except BaseException as e:
            if state.read_failed(run_dir) is None:  # the first error of the job's ranks: the cause, usually
                state.write_failed(run_dir, e, job_id, rank)
            raise
        finally:
            if rank == 0:
                state.clear_running(run_dir)

    def checkpoint(self, *args, **kwargs):
        """Called by submitit on preemption or timeout: resubmit the same seed; the trainer's last.pt (saved
        when it caught the signal) is where the new job resumes."""
        from submitit.helpers import DelayedSubmission
        return DelayedSubmission(type(self)(**self.params))

    def __repr__(self) -> str:
        return f"SeedJob(seed={self.params['seed']}, run_dir={self.run_dir})"
