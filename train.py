#!/usr/bin/env python
"""Train with a ResNet Strikes Back recipe: `python train.py --help`.

A thin wrapper for a checkout; the command is rsb.train (`rsb-train` or `python -m rsb.train` wherever rsb is
installed).
"""
import sys

from rsb.train import main, parse_args  # noqa: F401  (parse_args: for callers and tests)

if __name__ == "__main__":
    sys.exit(main())
