"""Markers: `slow` tests run only with RSB_SLOW=1; `gpu` tests only where CUDA is available. Training runs in
the test process get one compute thread."""
import os

import pytest
import torch


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "slow" in item.keywords and os.environ.get("RSB_SLOW") != "1":
            item.add_marker(pytest.mark.skip(reason="slow; set RSB_SLOW=1 to run"))
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU"))


@pytest.fixture(autouse=True)
def _one_compute_thread_per_run(monkeypatch):
    """A training run in the test process takes its threads from the CPU budget (rsb.runtime.cpus), which honours
    OMP_NUM_THREADS: one, as in the tests' training subprocesses, unless the environment says otherwise."""
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
