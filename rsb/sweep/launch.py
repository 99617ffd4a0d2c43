"""The launch command: check and record the sweep definition, decide which seeds to run, then submit them to
Slurm or run them here."""
from __future__ import annotations

import os
import time
from pathlib import Path

from rsb.errors import UserError
from rsb.sweep import jobs, plan as planning, runfiles, slurm, spec as sweepspec
from rsb.sweep.seeds import format_seeds, run_dir_name


def resolve_cluster(cluster: str) -> str:
    if cluster not in ("auto", "local", "slurm"):
        raise UserError(f"--cluster must be auto, local or slurm, got '{cluster}'.")
    if cluster == "auto":
        return "slurm" if slurm.slurm_available() else "local"
    return cluster


def _check_paths(data, imagenet_v2) -> None:
    if data is not None and not Path(data).is_dir():
        raise UserError(f"data folder {data} does not exist; give the ImageNet folder holding train/ and val/.")
    if imagenet_v2 is not None and not Path(imagenet_v2).exists():
        raise UserError(f"ImageNet-V2 path {imagenet_v2} does not exist.")


def _other_local_launcher(out: Path) -> int | None:
    """A local launch still running this sweep (its pid), so that two never train one folder."""
    for rec in jobs.load_jobs(out).values():
        pid = rec.get("launcher_pid")
        if rec.get("cluster") == "local" and jobs.on_this_host(rec) and pid != os.getpid() and jobs.pid_alive(pid):
            return pid
    return None


def describe_plan(p: planning.Plan, total: int) -> list[str]:
    lines = []
    if p.finished:
        lines.append(f"skipping {len(p.finished)} finished seed(s): {format_seeds(p.finished)}")
    if p.active:
        lines.append(f"leaving {len(p.active)} queued or running seed(s) alone: {format_seeds(p.active)}")
    fresh = sorted(set(p.submit) - set(p.resume))
    if fresh:
        lines.append(f"starting {len(fresh)} seed(s): {format_seeds(fresh)}")
    if p.resume:
        lines.append(f"resuming {len(p.resume)} seed(s) from their last checkpoint: {format_seeds(p.resume)}")
    if p.retry:
        lines.append(f"retrying {len(p.retry)} failed seed(s): {format_seeds(p.retry)} (the last error is "
                     f"kept in {runfiles.FAILED_PREVIOUS})")
    if not p.submit:
        lines.append(f"nothing to submit: all {total} seed(s) are finished, queued or running")
    return lines


def launch(recipe: str, seeds: list[int], out: Path, data, imagenet_v2, overrides: list[str],
           executor: sweepspec.Executor, dry_run: bool = False, slurm_extra: dict | None = None,
           log=print) -> int:
    """Exit status: 0 when everything submitted was submitted (Slurm) or finished (local), 1 otherwise."""
    out = Path(out)
    executor.cluster = resolve_cluster(executor.cluster)
    if executor.cluster == "slurm" and not dry_run:
        slurm.check_ready()
    _check_paths(data, imagenet_v2)
    new = sweepspec.make_spec(recipe, seeds, overrides, data, imagenet_v2, executor)
    if (out / sweepspec.SPEC_NAME).is_file():
        new = sweepspec.merge(sweepspec.load(out), new, out)
    pid = _other_local_launcher(out)
    if pid is not None:
        raise UserError(f"another launch (pid {pid}) is running this sweep on this machine; wait for it or "
                        f"stop it (Ctrl-C) before launching again.")
    p = planning.plan_seeds(out, seeds, new.epochs)
    log(f"sweep {out}: recipe {Path(new.recipe).stem}, {new.epochs} epochs, "
        f"{'built-in sample data' if new.sample else new.data}, {executor.cluster}")
    for line in describe_plan(p, len(seeds)):
        log(line)
    if dry_run:
        return 0
    sweepspec.save(new, out)
    if not p.submit:
        return 0
    if executor.cluster == "slurm":
        ids = slurm.submit(new, out, p.submit, slurm_extra)
        _retire_failed(out, p.submit)  # only once resubmitted: a refused submission leaves the errors visible
        records = jobs.load_jobs(out)
        for seed, job_id in ids.items():
            records[seed] = {"cluster": "slurm", "job_id": job_id, "submitted": time.time()}
        jobs.save_jobs(out, records)
        first, last = ids[p.submit[0]], ids[p.submit[-1]]
        log(f"submitted {len(ids)} job(s) ({first}{' .. ' + last if len(ids) > 1 else ''}); logs in "
            f"{out / slurm.LOG_FOLDER}; follow with: python -m rsb.sweep status {out}")
        return 0
    from rsb.sweep.local import run_local
    _retire_failed(out, p.submit)
    if new.sample:
        from rsb.data.sample import ensure_sample_dataset
        ensure_sample_dataset()  # drawn once here, not by several seeds at the same time
    results = run_local(out, p.submit, new.epochs, executor.max_parallel or 1, log=log)
    done = [s for s in p.submit if runfiles.is_finished(out / run_dir_name(s), new.epochs)]
    log(f"{len(done)} of {len(p.submit)} seed(s) finished in this launch; "
        f"status: python -m rsb.sweep status {out}; report: python -m rsb.sweep report {out}")
    return 0 if len(done) == len(results) == len(p.submit) else 1


def _retire_failed(out: Path, seeds: list[int]) -> None:
    for seed in seeds:
        runfiles.retire_failed(out / run_dir_name(seed))
