"""Helpers for end-to-end tests: a tiny data set of the sample kind and a tiny-scale command line."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from rsb.data.sample import ensure_sample_dataset

REPO = Path(__file__).resolve().parent.parent
# 100 train images: at batch 16 one process deals them over 3 sampler lanes of 34, 2 whole batches each, so an
# epoch has 6 optimizer steps (rsb.data.sampler).
TINY_SPLITS = {"train": 10, "val": 4, "v2": 2}  # per class, 10 classes

# Every recipe component stays on; only sizes shrink so a run takes seconds on one CPU core.
TINY_OVERRIDES = ["model.num_classes=10", "data.train_size=32", "data.test_size=32", "sched.epochs=2",
                  "sched.warmup_epochs=1", "train.batch_per_device=16", "optim.batch_rule=sqrt"]


def tiny_data(root: Path) -> Path:
    return ensure_sample_dataset(root, splits=TINY_SPLITS)


def run_train(args: list[str], env: dict | None = None, timeout: int = 300, **kw) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", **(env or {}))
    return subprocess.run([sys.executable, str(REPO / "train.py"), *args], cwd=kw.pop("cwd", REPO),
                          env=full_env, capture_output=True, text=True, timeout=timeout, **kw)
