"""The seed sweep: many seeds of one recipe, on Slurm (submitit) or this machine, then statistics and plots.

  python -m rsb.sweep launch --recipe a2 --seeds 1-100 --data /datasets/imagenet --imagenet-v2 V2 --out sweeps/a2
  python -m rsb.sweep status sweeps/a2
  python -m rsb.sweep report sweeps/a2
  python -m rsb.sweep compare sweeps/a2 sweeps/a2-lr      # or: compare sweeps/a2 --published a2
  python -m rsb.sweep plan --std 0.1 --delta 0.1

One module per job:
  cli.py      the command line: launch (spec, plan, dispatch), status, report, job
  spec.py     seed lists ("1-100", "1,5,9") and each seed's run folder name; the sweep definition kept in
              <out>/sweep.json, and each seed's config from it
  state.py    what state seed N is in (queued / running / finished / failed / interrupted / missing), from its
              run folder (the job's RUNNING.json and FAILED.json markers, progress) and the queue (<out>/jobs.json,
              sacct, process liveness); its table, and which seeds a launch submits, skips or resumes
  queue.py    Slurm's state of a job: squeue, then sacct
  seedjob.py  the job a runner executes for one seed: its (DDP) training, requeued by submitit after preemption
  local.py    running seeds on this machine, N at a time
  slurm.py    submitting seeds to Slurm as one array job through submitit; one job, waited for
  scores.py   final-epoch scores of each finished seed through rsb.validate, cached per seed, here or as a
              Slurm job
  stats.py    mean, std, median; Pearson and Spearman through scipy.stats
  testsets.py which test set a score was measured on (name, images) and its test-set sampling deviation
  cost.py     each run's training time and device-hours from its run folder, resumed parts summed
  report.py   the report folder (tables, figures through rsb.run.plots) and the summary printed
  sides.py    the two sides of a comparison: a sweep folder, a CSV table, or the released weights' scores
  compare.py  one metric of two sides against seed noise: intervals, permutation p, effect size, the verdict
  power.py    the seeds a comparison needs, from the noncentral t distribution
  compare_report.py, compare_markdown.py, compare_cli.py   compare's document, its compare.md, its command line
"""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder holding rsb/


def pythonpath_with_package(pythonpath: str | None) -> str:
    """PYTHONPATH for a child process or job that must import this rsb, from a checkout as from an install."""
    return os.pathsep.join([str(PACKAGE_ROOT)] + [p for p in [pythonpath] if p])
