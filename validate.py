#!/usr/bin/env python
"""Score checkpoints on ImageNet-val, ImageNet-V2 and ImageNet-ReaL: `python validate.py --help`.

A thin wrapper for a checkout; the command is rsb.validate (`python -m rsb.validate` wherever rsb is installed).
"""
import sys

from rsb.validate import main, parse_args  # noqa: F401  (parse_args: for callers and tests)

if __name__ == "__main__":
    sys.exit(main())
