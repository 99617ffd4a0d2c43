"""The CPU budget (rsb.runtime.cpus): the CPUs this process may run on, and the one default-workers rule that
train.py, validate.py and the sweep's jobs share."""
from __future__ import annotations

import os

import pytest

from rsb.runtime import cpus


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity on this platform")
def test_usable_cpus_follow_the_affinity_mask_not_the_machine():
    mask = os.sched_getaffinity(0)
    assert cpus.usable_cpus() == len(mask)
    try:
        os.sched_setaffinity(0, {min(mask)})  # as `taskset -c N` or a Slurm task bound to one CPU
        assert cpus.usable_cpus() == 1
    finally:
        os.sched_setaffinity(0, mask)


def test_without_an_affinity_mask_the_machines_count(monkeypatch):
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert cpus.usable_cpus() == 6
    monkeypatch.setattr(os, "cpu_count", lambda: None)  # unknown: one
    assert cpus.usable_cpus() == 1


def test_one_default_workers_rule(monkeypatch):
    """train.py, validate.py and the sweep's jobs share it: the CPUs Slurm gives a task, else a share of them."""
    monkeypatch.setattr(cpus, "usable_cpus", lambda: 16)
    for k in ("WORLD_SIZE", "RANK", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_CPUS_PER_TASK"):
        monkeypatch.delenv(k, raising=False)
    assert cpus.default_workers() == 8                       # at most 8
    assert cpus.default_workers(processes_sharing=4) == 4    # a local sweep running 4 seeds at once
    monkeypatch.setenv("WORLD_SIZE", "8")
    monkeypatch.setenv("RANK", "0")
    assert cpus.default_workers() == 2                       # 8 processes on 16 CPUs
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "3")
    assert cpus.default_workers() == 3                       # Slurm's share wins
    monkeypatch.setattr(cpus, "usable_cpus", lambda: 1)
    assert cpus.default_workers() == 1                       # never more than the CPUs there are, never 0
    monkeypatch.delenv("SLURM_CPUS_PER_TASK")
    assert cpus.default_workers() == 1
