"""Markers: `slow` tests run only with RSB_SLOW=1; `gpu` tests only where CUDA is available."""
import os

import pytest
import torch


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "slow" in item.keywords and os.environ.get("RSB_SLOW") != "1":
            item.add_marker(pytest.mark.skip(reason="slow; set RSB_SLOW=1 to run"))
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU"))
