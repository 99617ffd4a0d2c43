"""The environment flags that train.py and `python -m rsb.sweep launch` share (recipe, data, workers, device),
defined once so both commands spell, default and explain them alike."""
from __future__ import annotations

import argparse
from pathlib import Path


def environment_parser() -> argparse.ArgumentParser:
    """A parent parser (argparse's parents=[...]) holding the shared flags."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--recipe", default="a2", help="a1, a2, a3 or a path to a recipe .yaml (default a2)")
    p.add_argument("--data", type=Path, help="ImageNet folder with train/ and val/; omit for the sample data")
    p.add_argument("--workers", type=int, default=None,
                   help="loader processes per device (default: CPUs per device, at most 8)")
    p.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda or cuda:N")
    return p
