"""The training-run flags (rsb.command_flags): train.py and `python -m rsb.sweep launch` spell, parse and default
--recipe, --data, --val-labels, --workers, --threads and --device alike."""
from __future__ import annotations

from pathlib import Path

from rsb import train
from rsb.sweep import cli

SHARED = ("recipe", "data", "val_labels", "workers", "threads", "device")
LAUNCH = ["--seeds", "1", "--out", "sweep"]


def _shared(args) -> dict:
    return {name: getattr(args, name) for name in SHARED}


def test_train_and_sweep_launch_read_the_training_run_flags_alike():
    argv = ["--recipe", "a3", "--data", "/datasets/imagenet", "--val-labels", "gt.txt", "--workers", "3",
            "--threads", "2", "--device", "cpu"]
    given = _shared(train.parse_args(argv))
    assert given == {"recipe": "a3", "data": Path("/datasets/imagenet"), "val_labels": Path("gt.txt"),
                     "workers": 3, "threads": 2, "device": "cpu"}
    assert _shared(cli.parse_args(["launch", *argv, *LAUNCH])) == given
    defaults = _shared(train.parse_args([]))
    assert defaults == {"recipe": "a2", "data": None, "val_labels": None, "workers": None, "threads": None,
                        "device": "auto"}
    assert _shared(cli.parse_args(["launch", *LAUNCH])) == defaults
