"""The command lines of `compare` (two procedures against seed noise) and `plan` (the seeds a study needs),
added to rsb.sweep.cli's parser; SciPy, numpy and matplotlib load only when one of them runs."""
from __future__ import annotations

import argparse
from pathlib import Path

from rsb.errors import UserError

PUBLISHED_NAMES = ("a1", "a2", "a3", "torchvision")
DEFAULT_DELTAS = (0.1, 0.2)


def _probability(name: str):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number between 0 and 1, got '{text}'") from None
        if not 0 < value < 1:
            raise argparse.ArgumentTypeError(f"{name} must be between 0 and 1 (exclusive), got {text}")
        return value
    return parse


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got '{text}'") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def _power_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--delta", type=_positive_float, nargs="+", metavar="D",
                   help=f"differences to detect, in the metric's units (points); default "
                        f"{' and '.join(map(str, DEFAULT_DELTAS))}")
    p.add_argument("--alpha", type=_probability("--alpha"), default=0.05,
                   help="two-sided significance level; the intervals are at 1 - alpha (default 0.05)")
    p.add_argument("--power", type=_probability("--power"), default=0.8, help="power to detect a delta (default 0.8)")


def add_parsers(sub) -> None:
    cp = sub.add_parser(
        "compare", help="two procedures against seed noise: difference, intervals, p-value, seeds needed, cost",
        description="Compare A and B metric by metric: each a sweep folder (its finished seeds, scored as report "
                    "scores them) or a CSV table with a seed column and score columns (the report's seeds.csv, "
                    "validate.py's results.csv, your own); or A against the released weights with --published. "
                    "Writes compare.md, compare.json and compare.png to --out and prints one verdict per metric.")
    cp.add_argument("a", help="side A: a sweep folder or a CSV file")
    cp.add_argument("b", nargs="?", help="side B: a sweep folder or a CSV file (or use --published)")
    cp.add_argument("--published", choices=PUBLISHED_NAMES,
                    help="compare A with the released ResNet-50 weights' scores (timm's results tables), as fixed "
                         "values")
    cp.add_argument("--metric", nargs="+", metavar="COLUMN",
                    help="score columns to compare (default: val_top1, v2_top1 and gap where both sides have them)")
    cp.add_argument("--paired", action="store_true",
                    help="the sides ran the same seeds (same initialisation and data order): use the per-seed "
                         "differences")
    _power_flags(cp)
    cp.add_argument("--resamples", type=int, default=9999,
                    help="bootstrap resamples, and the most permutations before they are sampled (default 9999)")
    cp.add_argument("--resample-seed", type=int, default=0,
                    help="random seed of the bootstrap and of sampled permutations (default 0)")
    cp.add_argument("--names", nargs=2, metavar=("NAME_A", "NAME_B"),
                    help="names of the sides in the verdicts (default: the sweep folders' or files' names)")
    cp.add_argument("--out", type=Path, help="folder for compare.md, compare.json, compare.png "
                                             "(default: compare_<A>_vs_<B> here)")
    sc = cp.add_argument_group("scoring a sweep folder's seeds (as report does; cached)")
    sc.add_argument("--device", default="auto", help="device for scoring: auto, cpu, cuda")
    sc.add_argument("--workers", type=int, help="decoding processes for scoring")
    sc.add_argument("--batch-size", type=int, help="images per batch for scoring")

    pl = sub.add_parser("plan", help="the seeds per side a study needs to detect a difference",
                        description="Seeds per side for a two-sided t-test (two independent sweeps) to detect each "
                                    "--delta with --power at --alpha, from the noncentral t distribution, for a "
                                    "seed standard deviation --std (the paper's A2: about 0.1 on ImageNet-val, "
                                    "0.23 on ImageNet-V2).")
    pl.add_argument("--std", type=_positive_float, required=True, help="seed standard deviation, in points")
    _power_flags(pl)
    pl.add_argument("--paired", action="store_true",
                    help="the same seeds on both sides; --std is then that of the per-seed differences")


def plan_lines(std: float, deltas, alpha: float, power: float, paired: bool) -> list[str]:
    from rsb.sweep.power import seeds_needed
    design = "paired" if paired else "two-sample"
    per = "seed pairs" if paired else "seeds per side"
    lines = []
    for d in deltas:
        n = seeds_needed(d, std, alpha, power, design)
        what = f"{n} {per}" if n else f"more than a million {per}"
        lines.append(f"to detect {d:g} points at std {std:g}: {what} ({100 * power:g}% power, alpha {alpha:g} "
                     f"two-sided, {design} t-test, noncentral t)")
    return lines


def run(args) -> int:
    deltas = tuple(args.delta) if args.delta else DEFAULT_DELTAS
    if args.command == "plan":
        print("\n".join(plan_lines(args.std, deltas, args.alpha, args.power, args.paired)))
        return 0
    if args.resamples < 1:
        raise UserError(f"--resamples must be positive, got {args.resamples}.")
    from rsb.sweep.compare import Settings
    from rsb.sweep.compare_report import FILES, run as run_compare
    settings = Settings(alpha=args.alpha, power=args.power, deltas=deltas, resamples=args.resamples,
                        seed=args.resample_seed, paired=args.paired)
    doc, out = run_compare(args.a, args.b, args.published, args.metric, settings, args.out, args.names,
                           args.device, args.workers, args.batch_size)
    print()
    print("\n".join(doc["verdicts"] + doc["cost"] + [f"note: {n}" for n in doc["notes"]]))
    print(f"written to {out} ({', '.join(FILES)})")
    return 0
