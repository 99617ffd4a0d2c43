"""Markers: `slow` tests run only with RSB_SLOW=1; `gpu` tests only where CUDA is available. Training runs in
the test process get one compute thread.

Order: the longest files run first. With the README's `-n 2 --dist loadfile` each of the two xdist workers takes
one file at a time, in the order given here; a long file handed out last would run alone at the end while the
other worker idles."""
import os

import pytest
import torch

# Files taking a minute or more on 2 cores (--durations, December 2026), longest first; every other file follows
# in collection order. A file that grows past a minute belongs here.
LONGEST_FIRST = [
    "tests/e2e/test_faults.py", "tests/e2e/test_slurm.py", "tests/e2e/test_train.py",
    "tests/training/test_accumulation.py", "tests/e2e/test_wheel.py", "tests/e2e/test_gpu_check.py",
    "tests/e2e/test_sweep.py", "tests/config/test_original_recipes.py", "tests/data/test_sources.py",
    "tests/commands/test_validate.py", "tests/e2e/test_readme.py", "tests/commands/test_export.py",
]


def pytest_configure(config):
    # pytest-xdist hands out the files with the most tests first unless told not to: keep the order set below.
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False
    # An xdist worker computes with its share of the cores: two workers with a thread per core each would
    # oversubscribe them (the processes the tests start set OMP_NUM_THREADS=1 themselves).
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers:
        torch.set_num_threads(max(1, len(os.sched_getaffinity(0)) // int(workers)))


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "slow" in item.keywords and os.environ.get("RSB_SLOW") != "1":
            item.add_marker(pytest.mark.skip(reason="slow; set RSB_SLOW=1 to run"))
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU"))
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))  # stable: file order kept


@pytest.fixture(autouse=True)
def _one_compute_thread_per_run(monkeypatch):
    """A training run in the test process takes its threads from the CPU budget (rsb.runtime.cpus), which honours
    OMP_NUM_THREADS: one, as in the tests' training subprocesses, unless the environment says otherwise."""
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
