"""The seed sweep: many seeds of one recipe, on Slurm (submitit) or this machine, then statistics and plots.

  python -m rsb.sweep launch --recipe a2 --seeds 1-100 --data /datasets/imagenet --imagenet-v2 V2 --out sweeps/a2
  python -m rsb.sweep status sweeps/a2
  python -m rsb.sweep report sweeps/a2

One module per job:
  seeds.py     seed lists ("1-100", "1,5,9") and the run folder name of a seed
  spec.py      the sweep definition kept in <out>/sweep.json, and each seed's config from it
  jobs.py      what was submitted (<out>/jobs.json), scheduler states, process liveness
  runfiles.py  the marker files a seed's job leaves in its run folder (RUNNING.json, FAILED.json) and progress
  status.py    per-seed state (queued / running / finished / failed / interrupted / missing) and its table
  plan.py      which seeds a launch submits, skips or resumes
  job.py       the job function: one seed's (DDP) training in a job, requeued by submitit after preemption
  local.py     running seeds on this machine, N at a time
  slurm.py     submitting seeds to Slurm as one array job through submitit
  launch.py    the launch command: spec, plan, dispatch
  evaluate.py  final-epoch scores of each finished seed through validate.py, cached per seed
  stats.py     mean, std, median, Pearson and Spearman
  plots.py     histograms, val-vs-V2 scatter, training curves
  report.py    the report folder and the summary printed
  cli.py       the command line
"""
