"""Seed sweeps: train one recipe with many seeds, follow them, and report the spread of their final accuracy.

  python -m rsb.sweep launch --recipe a2 --seeds 1-100 --data /datasets/imagenet \\
      --imagenet-v2 /data/imagenetv2-matched-frequency-format-val --out sweeps/a2 [section.key=value ...]
  python -m rsb.sweep status sweeps/a2            # per seed: queued / running (epoch k of n) / finished / failed
  python -m rsb.sweep report sweeps/a2            # final-epoch val and V2 scores, statistics, plots
  python -m rsb.sweep report sweeps/a2 --cluster slurm   # the same, scoring in a Slurm job
  python -m rsb.sweep launch --recipe a2 --seeds 1-4 --out sweeps/sample sched.epochs=2   # sample data, here
  python -m rsb.sweep compare sweeps/a2 sweeps/a2-lr   # is the difference real? (or A --published a2)
  python -m rsb.sweep plan --std 0.1 --delta 0.1       # seeds per side a study needs

Recipe overrides come last, as in train.py (`... --out sweeps/a2 optim.lr=4e-3`, or after `--`); train.seed
is set by the sweep. Each seed trains in <out>/seed_NNNN/, so running the same launch again skips finished
seeds and resumes the others from their last checkpoint. Without --data the sweep runs on the built-in sample
data at sample scale. --cluster auto submits to Slurm when sbatch and srun are found, else runs the seeds on
this machine, --max-parallel at a time (default 1), the command waiting for them (Ctrl-C stops them all with a
checkpoint). Errors: one sentence, exit status 2.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from pathlib import Path

from rsb.command_flags import training_run_flags
from rsb.errors import UserError, exit_status
from rsb.sweep import compare_cli, slurm, spec as sweepspec, state
from rsb.sweep.seedjob import SeedJob
from rsb.sweep.spec import format_seeds, parse_seeds, run_dir_name


def _key_value(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got '{text}'")
    k, v = text.split("=", 1)
    return k.strip(), v


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m rsb.sweep", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="{launch,status,report,compare,plan,job}")

    la = sub.add_parser("launch", help="submit (Slurm) or run (here) one training per seed",
                        description="Submit (Slurm) or run (here) one training per seed. Recipe overrides "
                                    "(section.key=value) come after the flags, or after --.",
                        parents=[training_run_flags()])  # --recipe, --data, --workers, --device as train.py's
    la.add_argument("--seeds", required=True, help="seeds: 1-100, 1,5,9 or 1-10,20,30-32")
    la.add_argument("--out", type=Path, required=True, help="sweep folder (one run folder per seed inside)")
    la.add_argument("--imagenet-v2", type=Path, metavar="PATH", help="ImageNet-V2 folder or .tar.gz, scored "
                                                                     "by the report")
    la.add_argument("--cluster", default="auto", choices=["auto", "local", "slurm"],
                    help="where the jobs run (default auto: Slurm if sbatch and srun are found, else here)")
    la.add_argument("--max-parallel", type=int, help="seeds running at once (default: 1 here, no limit on Slurm)")
    sl = la.add_argument_group("Slurm (ignored with --cluster local)")
    sl.add_argument("--partition", help="Slurm partition (default: the cluster's)")
    sl.add_argument("--nodes", type=int, default=1, help="nodes per seed (default 1)")
    sl.add_argument("--gpus-per-node", type=int, default=8,
                    help="GPUs per node = DDP processes per node (default 8); 0 for CPU nodes")
    sl.add_argument("--tasks-per-node", type=int, help="DDP processes per node (default: one per GPU, one "
                                                       "without GPUs); on CPU nodes, e.g. 2 with --gpus-per-node 0")
    sl.add_argument("--cpus-per-task", type=int, default=10, help="CPUs per process (default 10)")
    sl.add_argument("--mem-gb", type=float, help="memory per node in GB (default: the cluster's)")
    sl.add_argument("--timeout-min", type=int, default=1440, help="time limit per job (default 1440); a job "
                                                                 "that reaches it saves, requeues and resumes")
    sl.add_argument("--signal-before-s", type=int, default=180, metavar="S",
                    help="Slurm sends the save-and-requeue signal S seconds before the time limit (default 180)")
    sl.add_argument("--slurm", action="append", type=_key_value, default=[], metavar="KEY=VALUE",
                    help="any other sbatch option, e.g. --slurm account=myproj --slurm qos=high")
    la.add_argument("--dry-run", action="store_true", help="print what would be submitted, submit nothing")
    la.add_argument("--resume-changed", action="store_true",
                    help="continue a sweep whose recipe values differ from these (refused without this flag)")
    la.add_argument("overrides", nargs="*", metavar="section.key=value", help="recipe overrides")

    st = sub.add_parser("status", help="the state of every seed")
    st.add_argument("out", type=Path, help="sweep folder")
    st.add_argument("--json", action="store_true", help="print JSON instead of a table")

    rp = sub.add_parser("report", help="scores, statistics and plots of the finished seeds")
    rp.add_argument("out", type=Path, help="sweep folder")
    rp.add_argument("--device", default="auto", help="device for scoring: auto, cpu, cuda")
    rp.add_argument("--workers", type=int, help="decoding processes for scoring")
    rp.add_argument("--batch-size", type=int, help="images per batch for scoring")
    rp.add_argument("--cluster", default="local", choices=["local", "slurm"],
                    help="where the scoring runs: here (default), or as one Slurm job that this command waits for")
    rs = rp.add_argument_group("the Slurm scoring job (with --cluster slurm)")
    rs.add_argument("--partition", help="Slurm partition (default: the sweep's)")
    rs.add_argument("--timeout-min", type=int, default=60, help="time limit of the scoring job (default 60)")
    rs.add_argument("--slurm", action="append", type=_key_value, default=[], metavar="KEY=VALUE",
                    help="any other sbatch option, e.g. --slurm account=myproj")

    compare_cli.add_parsers(sub)

    jb = sub.add_parser("job", help="train one seed of a sweep in this process (what each local job runs)")
    jb.add_argument("out", type=Path, help="sweep folder")
    jb.add_argument("seed", type=int)
    jb.add_argument("--cpu-share", type=int, default=1, help="seeds sharing this machine's CPUs")
    return p.parse_args(argv)


def _positive(name: str, value) -> None:
    if value is not None and value <= 0:
        raise UserError(f"{name} must be positive, got {value}.")


def _check_launch_numbers(args) -> None:
    for name in ("max_parallel", "nodes", "tasks_per_node", "cpus_per_task", "mem_gb", "timeout_min",
                 "signal_before_s", "threads"):
        _positive("--" + name.replace("_", "-"), getattr(args, name))
    if args.workers is not None and args.workers < 0:
        raise UserError(f"--workers must be 0 or more, got {args.workers}.")
    if args.gpus_per_node < 0:
        raise UserError(f"--gpus-per-node must be 0 or more, got {args.gpus_per_node}.")
    if args.gpus_per_node and args.tasks_per_node not in (None, args.gpus_per_node):
        raise UserError(f"--tasks-per-node {args.tasks_per_node} differs from --gpus-per-node "
                        f"{args.gpus_per_node}; a DDP run has one process per GPU (use --gpus-per-node 0 for CPU "
                        f"tasks).")
    if args.signal_before_s >= args.timeout_min * 60:  # the signal would come at the start, again every requeue
        raise UserError(f"--signal-before-s {args.signal_before_s} is not shorter than the time limit "
                        f"(--timeout-min {args.timeout_min}); give a smaller --signal-before-s.")


def run(args) -> int:
    if args.command == "launch":
        _check_launch_numbers(args)
        ex = sweepspec.Executor(cluster=args.cluster, partition=args.partition, nodes=args.nodes,
                      gpus_per_node=args.gpus_per_node, tasks_per_node=args.tasks_per_node,
                      cpus_per_task=args.cpus_per_task, mem_gb=args.mem_gb, timeout_min=args.timeout_min,
                      signal_before_s=args.signal_before_s, max_parallel=args.max_parallel, workers=args.workers,
                      threads=args.threads, device=args.device, resume_changed=args.resume_changed)
        return launch(args.recipe, parse_seeds(args.seeds), args.out, args.data, args.imagenet_v2,
                      args.overrides, ex, dry_run=args.dry_run, slurm_extra=dict(args.slurm) or None,
                      val_labels=args.val_labels)
    if args.command == "status":
        spec, statuses = state.collect(args.out)
        if args.json:
            print(json.dumps(state.as_json(spec, statuses), indent=2))
        else:
            print(state.format_table(spec, args.out, statuses))
        return 0
    if args.command == "report":
        from rsb.sweep.report import REPORT_DIR, build_report  # numpy and matplotlib: only for the report
        from rsb.sweep.scores import score_on_slurm, score_seeds
        _positive("--timeout-min", args.timeout_min)
        scorer = score_seeds
        if args.cluster == "slurm":
            slurm.check_ready()
            scorer = functools.partial(score_on_slurm, partition=args.partition, timeout_min=args.timeout_min,
                                       extra=dict(args.slurm) or None)
        doc = build_report(args.out, args.device, args.workers, args.batch_size, scorer=scorer)
        print()
        print("\n".join(doc["summary"]))
        print(f"report written to {args.out / REPORT_DIR} (report.md, seeds.csv, report.json, "
              f"{', '.join(doc['figures'])})")
        return 0
    if args.command in ("compare", "plan"):
        return compare_cli.run(args)
    s = sweepspec.load(args.out)
    if args.seed not in s.seeds:
        raise UserError(f"seed {args.seed} is not part of the sweep in {args.out}; launch it with --seeds.")
    SeedJob.from_spec(s, args.out, args.seed, args.cpu_share)()
    return 0


# ---- the launch command ----------------------------------------------------------------------------------------
def resolve_cluster(cluster: str) -> str:
    if cluster not in ("auto", "local", "slurm"):
        raise UserError(f"--cluster must be auto, local or slurm, got '{cluster}'.")
    if cluster == "auto":
        return "slurm" if slurm.slurm_available() else "local"
    return cluster


def _check_paths(data, imagenet_v2, val_labels=None) -> None:
    """What the seeds will read, checked once here rather than failing in every job: the layout is detected
    (rsb.data.layout) as train.py will, without building the indexes; CIFAR-10 (its archive or extracted
    folder) is read by rsb.data.cifar."""
    if data is not None:
        from rsb.data.cifar import looks_like_cifar
        if not Path(data).exists():
            raise UserError(f"data path {data} does not exist; give the ImageNet folder holding train/ and val/ "
                            f"(or, for CIFAR-10, cifar-10-python.tar.gz or its extracted folder).")
        if Path(data).is_dir() and not looks_like_cifar(data):
            from rsb.data.layout import detect
            detect(data, val_labels)  # raises a UserError where train.py would
    if imagenet_v2 is not None and not Path(imagenet_v2).exists():
        raise UserError(f"ImageNet-V2 path {imagenet_v2} does not exist.")


def _other_local_launcher(out: Path) -> int | None:
    """A local launch still running this sweep (its pid), so that two never train one folder."""
    for rec in state.load_jobs(out).values():
        pid = rec.get("launcher_pid")
        if rec.get("cluster") == "local" and state.on_this_host(rec) and pid != os.getpid() and state.pid_alive(pid):
            return pid
    return None


def describe_plan(p: state.Plan, total: int) -> list[str]:
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
                     f"kept in {state.FAILED_PREVIOUS})")
    if not p.submit:
        lines.append(f"nothing to submit: all {total} seed(s) are finished, queued or running")
    return lines


def launch(recipe: str, seeds: list[int], out: Path, data, imagenet_v2, overrides: list[str],
           executor: sweepspec.Executor, dry_run: bool = False, slurm_extra: dict | None = None,
           log=print, val_labels=None) -> int:
    """Check and record the sweep definition, decide which seeds to run, then submit them to Slurm or run them
    here. Exit status: 0 when everything submitted was submitted (Slurm) or finished (local), 1 otherwise."""
    out = Path(out)
    executor.cluster = resolve_cluster(executor.cluster)
    if executor.cluster == "slurm" and not dry_run:
        slurm.check_ready()
    _check_paths(data, imagenet_v2, val_labels)
    new = sweepspec.make_spec(recipe, seeds, overrides, data, imagenet_v2, executor, val_labels)
    if (out / sweepspec.SPEC_NAME).is_file():
        new = sweepspec.merge(sweepspec.load(out), new, out)
    pid = _other_local_launcher(out)
    if pid is not None:
        raise UserError(f"another launch (pid {pid}) is running this sweep on this machine; wait for it or "
                        f"stop it (Ctrl-C) before launching again.")
    p = state.plan_seeds(out, seeds, new.epochs)
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
        records = state.load_jobs(out)
        for seed, job_id in ids.items():
            records[seed] = {"cluster": "slurm", "job_id": job_id, "submitted": time.time()}
        state.save_jobs(out, records)
        first, last = ids[p.submit[0]], ids[p.submit[-1]]
        log(f"submitted {len(ids)} job(s) ({first}{' .. ' + last if len(ids) > 1 else ''}); logs in "
            f"{out / slurm.LOG_FOLDER}; follow with: python -m rsb.sweep status {out}")
        return 0
    from rsb.sweep.local import run_local  # torch, for the GPUs to share out
    _retire_failed(out, p.submit)
    if new.sample:
        from rsb.data.sample import ensure_sample_dataset
        ensure_sample_dataset()  # drawn once here, not by several seeds at the same time
    results = run_local(out, p.submit, new.epochs, executor.max_parallel or 1, log=log)
    done = [s for s in p.submit if state.is_finished(out / run_dir_name(s), new.epochs)]
    log(f"{len(done)} of {len(p.submit)} seed(s) finished in this launch; "
        f"status: python -m rsb.sweep status {out}; report: python -m rsb.sweep report {out}")
    return 0 if len(done) == len(results) == len(p.submit) else 1


def _retire_failed(out: Path, seeds: list[int]) -> None:
    for seed in seeds:
        state.retire_failed(out / run_dir_name(seed))


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        return exit_status(lambda: run(args))
    except KeyboardInterrupt:
        if args.command == "launch":  # the runner stopped its seeds, each with a checkpoint
            print("interrupted: the stopped seeds saved a checkpoint; the same command resumes them",
                  file=sys.stderr)
        return 130
