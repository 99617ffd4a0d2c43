"""The trainer's run-policy checks and its CPU budget (rsb.training.trainer)."""
from __future__ import annotations

import pytest
import torch

from rsb.training.run_config import build_config
from rsb.errors import UserError
from rsb.runtime import cpus
from rsb.training.trainer import LaunchOptions, Trainer, check_bad_images
from tests.runtime.test_cpus import node  # noqa: F401 (a fixture)


def test_too_many_unreadable_images_stop_the_run_in_one_sentence():
    check_bad_images(1, 10, 0.0)  # one is always tolerated
    check_bad_images(10, 1000, 0.01)
    with pytest.raises(UserError) as e:
        check_bad_images(11, 1000, 0.01)
    assert str(e.value) == ("11 of 1000 training samples were unreadable images (more than "
                            "run.max_bad_image_fraction=0.01); see the warnings above for their paths and fix or "
                            "remove them.")


@pytest.fixture
def threads_restored():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_the_trainer_sets_torchs_threads_from_the_slurm_task_not_the_node(node, threads_restored, tmp_path):
    node.setattr(cpus, "usable_cpus", lambda: 2)  # a 2-CPU node that does not bind CPUs
    node.setenv("SLURM_CPUS_PER_TASK", "1")
    torch.set_num_threads(2)
    trainer = Trainer(build_config("a2", [], sample=True), LaunchOptions(output=tmp_path, device="cpu"))
    assert torch.get_num_threads() == 1 and trainer.cpu.workers == 1
    Trainer(build_config("a2", [], sample=True), LaunchOptions(output=tmp_path, device="cpu", threads=2, workers=0))
    assert torch.get_num_threads() == 2  # --threads
