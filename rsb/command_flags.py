"""The command-line flags of a training run that train.py and `python -m rsb.sweep launch` share (recipe, data,
val labels, workers, threads, device), defined once so both commands spell, default and explain them alike."""
from __future__ import annotations

import argparse
from pathlib import Path


def training_run_flags() -> argparse.ArgumentParser:
    """A parent parser (argparse's parents=[...]) holding the shared flags."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--recipe", default="a2", help="a1, a2, a3 or a path to a recipe .yaml (default a2)")
    p.add_argument("--data", type=Path, help="ImageNet as a folder (train/ and val/), tar shards or parquet files "
                                             "(layout detected); omit for the sample data")
    p.add_argument("--val-labels", type=Path, metavar="FILE",
                   help="ground truth of a flat val/ folder: ILSVRC2012_validation_ground_truth.txt (with the "
                        "devkit's meta.mat beside it) or LOC_val_solution.csv; default: found beside val/")
    p.add_argument("--workers", type=int, default=None,
                   help="loader processes per device (default: CPUs per device, at most 8)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch compute threads per device (default: OMP_NUM_THREADS if set, else CPUs per device: "
                        "Slurm's CPUs per task, or the usable CPUs shared among this node's processes)")
    p.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda or cuda:N")
    return p
