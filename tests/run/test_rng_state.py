"""The generators' state as plain data a checkpoint stores (rsb.run.rng_state)."""
from __future__ import annotations

import random

import numpy as np
import torch

from rsb.run import rng_state
from rsb.run.checkpoint import load, save_atomic


def draw():
    return (random.random(), random.randint(0, 10 ** 9), np.random.rand(3).tolist(), np.random.randn(),
            torch.rand(3).tolist(), torch.randint(0, 1000, (2,)).tolist())


def test_rng_round_trip():
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    draw()
    np.random.randn()  # leave a cached gaussian in numpy's state
    state = rng_state.capture()
    a = draw()
    draw()
    rng_state.restore(state)
    b = draw()
    assert a == b


def test_rng_state_survives_weights_only_save_load(tmp_path):
    random.seed(5)
    np.random.seed(6)
    torch.manual_seed(7)
    np.random.randn()
    state = rng_state.capture()
    a = draw()
    p = tmp_path / "rng.pt"
    torch.save({"model": {}, "rng": state}, p)
    loaded = torch.load(p, weights_only=True)["rng"]
    random.seed(99)
    np.random.seed(99)
    torch.manual_seed(99)
    rng_state.restore(loaded)
    assert draw() == a


def test_rng_state_through_checkpoint_module(tmp_path):
    torch.manual_seed(11)
    p = tmp_path / "last.pt"
    save_atomic({"model": {}, "rng": rng_state.capture()}, p)
    a = draw()
    rng_state.restore(load(p)["rng"])
    assert draw() == a
