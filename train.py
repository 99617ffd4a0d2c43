#!/usr/bin/env python
"""Train ResNet-50 with a ResNet Strikes Back recipe.

  python train.py --recipe a2 --data /datasets/imagenet          # the A2 procedure on ImageNet
  python train.py --recipe a2                                    # the same procedure on built-in sample data
  python train.py --recipe a1 optim.lr=4e-3 sched.epochs=10      # dotted overrides of recipe values
  python train.py --recipe a3 --print-config                     # the resolved configuration, then exit
  torchrun --nproc_per_node=8 train.py --recipe a2 --data ...    # data-parallel on 8 GPUs

Flags describe the environment; recipe values change only through overrides.
"""
import argparse
import sys
from pathlib import Path

from rsb.envflags import environment_parser


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                parents=[environment_parser()])
    p.add_argument("--output", type=Path, help="run folder (default runs/<recipe>[-sample]); an existing "
                                                "run there is resumed")
    p.add_argument("--resume", type=Path, help="resume from this checkpoint instead of the run folder's last.pt")
    p.add_argument("--resume-changed", action="store_true",
                   help="continue a run whose recipe values differ from these (refused without this flag)")
    p.add_argument("--print-config", action="store_true", help="print the resolved configuration and exit")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("overrides", nargs="*", metavar="section.key=value", help="recipe overrides")
    return p.parse_intermixed_args(argv)  # overrides may come before, between and after the flags


def main(argv=None) -> int:
    args = parse_args(argv)
    from rsb.errors import UserError
    try:
        from rsb import trainer
        from rsb.config import build_config
        from rsb.distributed import default_workers
        from rsb.resolve import print_config
        sample = args.data is None
        cfg = build_config(args.recipe, args.overrides, sample)
        if args.print_config:
            print(print_config(cfg, sample, args.device), end="")
            return 0
        name = Path(args.recipe).stem + ("-sample" if sample else "")
        env = trainer.RunEnv(data=args.data, output=args.output or Path("runs") / name,
                             workers=args.workers if args.workers is not None else default_workers(),
                             device=args.device, resume=args.resume, resume_changed=args.resume_changed,
                             quiet=args.quiet)
        summary = trainer.train(cfg, env)
        if summary.get("final_val_top1") is not None:
            print(f"done: final val top-1 {summary['final_val_top1']:.2f}% "
                  f"(best {summary['best_val_top1']:.2f}% at epoch {summary['best_epoch']}); "
                  f"outputs in {summary['run_dir']}")
        return 0
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
