"""The CPU budget (rsb.runtime.cpus): the CPUs this process may run on, the one default-workers rule that
train.py, validate.py and the sweep's jobs share, and torch's threads from the allocation (Slurm, torchrun)."""
from __future__ import annotations

import os

import pytest

from rsb.errors import UserError
from rsb.runtime import cpus

ALLOCATION_VARIABLES = ("WORLD_SIZE", "RANK", "LOCAL_WORLD_SIZE", "SLURM_NTASKS", "SLURM_PROCID",
                        "SLURM_CPUS_PER_TASK", "OMP_NUM_THREADS")


@pytest.fixture
def node(monkeypatch):
    """A 16-CPU affinity mask and no allocation variables; the test sets those it simulates."""
    monkeypatch.setattr(cpus, "usable_cpus", lambda: 16)
    for k in ALLOCATION_VARIABLES:
        monkeypatch.delenv(k, raising=False)
    return monkeypatch


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


def test_one_default_workers_rule(node):
    """train.py, validate.py and the sweep's jobs share it: the CPUs Slurm gives a task, else a share of them."""
    monkeypatch = node
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


def test_a_slurm_task_gets_its_cpus_per_task_as_threads_even_where_the_mask_shows_the_node(node):
    """The preempted seed of issue 25: --cpus-per-task 1 on a 2-CPU node that does not bind CPUs (task/none)."""
    node.setattr(cpus, "usable_cpus", lambda: 2)
    node.setenv("SLURM_CPUS_PER_TASK", "1")
    budget = cpus.cpu_budget()
    assert (budget.cpus, budget.threads, budget.workers) == (1, 1, 1)
    assert budget.describe() == ("CPU budget: 1 CPU(s) for this process (SLURM_CPUS_PER_TASK=1): 1 compute "
                                 "thread(s), 1 loader worker(s)")
    node.setenv("SLURM_CPUS_PER_TASK", "12")
    node.setattr(cpus, "usable_cpus", lambda: 16)
    assert cpus.cpu_budget().as_dict() == {"cpus": 12, "threads": 12, "workers": 8,
                                           "source": "SLURM_CPUS_PER_TASK=12"}
    node.setattr(cpus, "usable_cpus", lambda: 4)  # bound to fewer CPUs than asked: the mask counts
    assert cpus.cpu_budget().threads == 4
    node.setattr(cpus, "usable_cpus", lambda: 16)
    assert cpus.cpu_budget(processes_sharing=3).threads == 4  # a local sweep's 3 seeds inside the allocation


def test_torchrun_processes_share_the_node_and_its_omp_default_is_kept(node):
    node.setenv("WORLD_SIZE", "8")  # two nodes of 4 processes: the share is per node
    node.setenv("RANK", "5")
    node.setenv("LOCAL_WORLD_SIZE", "4")
    budget = cpus.cpu_budget()
    assert (budget.cpus, budget.threads, budget.workers) == (4, 4, 4)
    assert budget.source == "16 CPUs in the affinity mask / LOCAL_WORLD_SIZE=4"
    node.setenv("OMP_NUM_THREADS", "1")  # what torchrun sets for several processes per node unless you do
    budget = cpus.cpu_budget()
    assert (budget.cpus, budget.threads, budget.workers) == (4, 1, 4) and budget.source.endswith("OMP_NUM_THREADS=1")
    node.delenv("OMP_NUM_THREADS")
    node.setenv("SLURM_CPUS_PER_TASK", "32")  # torchrun inside one Slurm task of 32 CPUs (a 16-CPU mask here)
    assert cpus.cpu_budget().threads == 4


def test_the_flags_override_the_budget_and_bad_values_are_one_sentence(node):
    node.setenv("SLURM_CPUS_PER_TASK", "2")
    budget = cpus.cpu_budget(threads=6, workers=0)
    assert (budget.cpus, budget.threads, budget.workers) == (2, 6, 0)
    assert budget.source == "SLURM_CPUS_PER_TASK=2; --threads 6; --workers 0"
    with pytest.raises(UserError) as e:
        cpus.cpu_budget(threads=0)
    assert str(e.value) == "--threads must be 1 or more, got 0."
    with pytest.raises(UserError, match=r"^--workers must be 0 or more, got -1\.$"):
        cpus.cpu_budget(workers=-1)
