"""The named seed streams and the one seeding function (rsb.data.seeds)."""
from __future__ import annotations

import random

import numpy as np
import torch

from rsb.data import seeds


def test_each_stream_draws_the_seeds_runs_have_always_drawn():
    """Pinned values (those of every earlier run): a changed tag or key order would change every run's numbers
    and make a resumed run of an older version draw other augmentations than the run it continues."""
    assert seeds.data_order(7, 3) == 2530781778362038830
    assert seeds.loader(7, 3, 1) == 7645226603002592135
    assert seeds.sample_base(7, 3, 1) == 8711250018134922203
    assert seeds.micro_batch(7, 120, 2, 1) == 3374268377462922212


def test_streams_with_the_same_key_differ():
    drawn = {seeds.data_order(5, 2), seeds.loader(5, 2, 0), seeds.sample_base(5, 2, 0),
             seeds.micro_batch(5, 2, 0, 0)}
    assert len(drawn) == 4 and all(0 <= s < 2**63 for s in drawn)


def _draws():
    return random.random(), float(np.random.rand()), torch.rand(3).tolist()


def test_seed_generators_seeds_python_numpy_and_torch():
    seeds.seed_generators(123)
    first = _draws()
    seeds.seed_generators(123)
    assert _draws() == first
    seeds.seed_generators(124)
    assert _draws() != first
    seeds.seed_generators(123, devices=False)  # loader workers: the CPU generators only, the same streams
    assert _draws() == first
