"""Seed sweeps: train one recipe with many seeds, follow them, and report the spread of their final accuracy.

  python -m rsb.sweep launch --recipe a2 --seeds 1-100 --data /datasets/imagenet \\
      --imagenet-v2 /data/imagenetv2-matched-frequency-format-val --out sweeps/a2 [section.key=value ...]
  python -m rsb.sweep status sweeps/a2            # per seed: queued / running (epoch k of n) / finished / failed
  python -m rsb.sweep report sweeps/a2            # final-epoch val and V2 scores, statistics, plots
  python -m rsb.sweep launch --recipe a2 --seeds 1-4 --out sweeps/sample sched.epochs=2   # sample data, here

Recipe overrides come last, as in train.py (`... --out sweeps/a2 optim.lr=4e-3`, or after `--`); train.seed
is set by the sweep. Each seed trains in <out>/seed_NNNN/, so running the same launch again skips finished
seeds and resumes the others from their last checkpoint. Without --data the sweep runs on the built-in sample
data at sample scale. --cluster auto submits to Slurm when sbatch and srun are found, else runs the seeds on
this machine, --max-parallel at a time (default 1), the command waiting for them (Ctrl-C stops them all with a
checkpoint). Errors: one sentence, exit status 2.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _key_value(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got '{text}'")
    k, v = text.split("=", 1)
    return k.strip(), v


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m rsb.sweep", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="{launch,status,report,job}")

    la = sub.add_parser("launch", help="submit (Slurm) or run (here) one training per seed",
                        description="Submit (Slurm) or run (here) one training per seed. Recipe overrides "
                                    "(section.key=value) come after the flags, or after --.")
    la.add_argument("--recipe", default="a2", help="a1, a2, a3 or a recipe .yaml (default a2)")
    la.add_argument("--seeds", required=True, help="seeds: 1-100, 1,5,9 or 1-10,20,30-32")
    la.add_argument("--out", type=Path, required=True, help="sweep folder (one run folder per seed inside)")
    la.add_argument("--data", type=Path, help="ImageNet folder with train/ and val/ (default: built-in sample)")
    la.add_argument("--imagenet-v2", type=Path, metavar="PATH", help="ImageNet-V2 folder or .tar.gz, scored "
                                                                     "by the report")
    la.add_argument("--cluster", default="auto", choices=["auto", "local", "slurm"],
                    help="where the jobs run (default auto: Slurm if sbatch and srun are found, else here)")
    la.add_argument("--max-parallel", type=int, help="seeds running at once (default: 1 here, no limit on Slurm)")
    la.add_argument("--workers", type=int, help="loader processes per training process (default: its CPUs, "
                                                "max 8)")
    la.add_argument("--device", default="auto", help="auto (default), cpu, cuda")
    sl = la.add_argument_group("Slurm (ignored with --cluster local)")
    sl.add_argument("--partition", help="Slurm partition (default: the cluster's)")
    sl.add_argument("--nodes", type=int, default=1, help="nodes per seed (default 1)")
    sl.add_argument("--gpus-per-node", type=int, default=8,
                    help="GPUs per node = DDP processes per node (default 8)")
    sl.add_argument("--cpus-per-task", type=int, default=10, help="CPUs per process (default 10)")
    sl.add_argument("--mem-gb", type=float, help="memory per node in GB (default: the cluster's)")
    sl.add_argument("--timeout-min", type=int, default=1440, help="time limit per job (default 1440); a job "
                                                                 "that reaches it saves, requeues and resumes")
    sl.add_argument("--slurm", action="append", type=_key_value, default=[], metavar="KEY=VALUE",
                    help="any other sbatch option, e.g. --slurm account=myproj --slurm qos=high")
    la.add_argument("--dry-run", action="store_true", help="print what would be submitted, submit nothing")
    la.add_argument("overrides", nargs="*", metavar="section.key=value", help="recipe overrides")

    st = sub.add_parser("status", help="the state of every seed")
    st.add_argument("out", type=Path, help="sweep folder")
    st.add_argument("--json", action="store_true", help="print JSON instead of a table")

    rp = sub.add_parser("report", help="scores, statistics and plots of the finished seeds")
    rp.add_argument("out", type=Path, help="sweep folder")
    rp.add_argument("--device", default="auto", help="device for scoring: auto, cpu, cuda")
    rp.add_argument("--workers", type=int, help="decoding processes for scoring")
    rp.add_argument("--batch-size", type=int, help="images per batch for scoring")

    jb = sub.add_parser("job", help="train one seed of a sweep in this process (what each local job runs)")
    jb.add_argument("out", type=Path, help="sweep folder")
    jb.add_argument("seed", type=int)
    jb.add_argument("--cpu-share", type=int, default=1, help="seeds sharing this machine's CPUs")
    return p.parse_args(argv)


def _positive(name: str, value) -> None:
    from rsb.errors import UserError
    if value is not None and value <= 0:
        raise UserError(f"{name} must be positive, got {value}.")


def run(args) -> int:
    from rsb.errors import UserError
    if args.command == "launch":
        from rsb.sweep.launch import launch
        from rsb.sweep.seeds import parse_seeds
        from rsb.sweep.spec import Executor
        for name in ("max_parallel", "nodes", "cpus_per_task", "mem_gb", "timeout_min"):
            _positive("--" + name.replace("_", "-"), getattr(args, name))
        if args.workers is not None and args.workers < 0:
            raise UserError(f"--workers must be 0 or more, got {args.workers}.")
        if args.gpus_per_node < 0:
            raise UserError(f"--gpus-per-node must be 0 or more, got {args.gpus_per_node}.")
        ex = Executor(cluster=args.cluster, partition=args.partition, nodes=args.nodes,
                      gpus_per_node=args.gpus_per_node, cpus_per_task=args.cpus_per_task, mem_gb=args.mem_gb,
                      timeout_min=args.timeout_min, max_parallel=args.max_parallel, workers=args.workers,
                      device=args.device)
        return launch(args.recipe, parse_seeds(args.seeds), args.out, args.data, args.imagenet_v2,
                      args.overrides, ex, dry_run=args.dry_run, slurm_extra=dict(args.slurm) or None)
    if args.command == "status":
        from rsb.sweep import status
        spec, statuses = status.collect(args.out)
        if args.json:
            print(json.dumps(status.as_json(spec, statuses), indent=2))
        else:
            print(status.format_table(spec, args.out, statuses))
        return 0
    if args.command == "report":
        from rsb.sweep.report import REPORT_DIR, build_report
        doc = build_report(args.out, args.device, args.workers, args.batch_size)
        print()
        print("\n".join(doc["summary"]))
        print(f"report written to {args.out / REPORT_DIR} (report.md, seeds.csv, report.json, "
              f"{', '.join(doc['figures'])})")
        return 0
    from rsb.sweep import spec as sweepspec
    from rsb.sweep.job import SeedJob
    s = sweepspec.load(args.out)
    if args.seed not in s.seeds:
        raise UserError(f"seed {args.seed} is not part of the sweep in {args.out}; launch it with --seeds.")
    SeedJob.from_spec(s, args.out, args.seed, args.cpu_share)()
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    from rsb.errors import UserError
    try:
        return run(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if args.command == "launch":  # the runner stopped its seeds, each with a checkpoint
            print("interrupted: the stopped seeds saved a checkpoint; the same command resumes them",
                  file=sys.stderr)
        return 130
