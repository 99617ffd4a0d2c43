"""The run's named seed streams and the one function that seeds the generators.

Every random draw of a run comes from the run seed (train.seed) through one of these streams, each keyed by where
the run is, never by the history of a process's generators; that is what makes a resumed run (at an epoch's end
or mid-epoch, with any number of workers or processes) draw exactly what an uninterrupted one draws:

  the weights' initialisation  the run seed itself (rsb.training.parts.build_parts), the same on every process
  data order                   (seed, epoch): the sampler's shuffle, the same on every process (rsb.data.sampler)
  loader                       (seed, epoch, rank): the DataLoader's generator (rsb.data.loader)
  per-sample augmentation      (seed, epoch, rank) + the sample's position in the process's epoch: the transforms
                               of that one sample, in whichever loader worker decodes it (rsb.data.dataset)
  per-micro-batch device draws (seed, optimizer step, micro-step, rank): Mixup/CutMix, random erasing and
                               stochastic depth of that micro-batch (rsb.training.trainer)

The streams are told apart by a tag appended to their key. The tags' values are part of every run's numbers:
changing one changes every seed drawn from that stream, and with it every result and every bitwise-resume test.
"""
from __future__ import annotations

import random

import numpy as np
import torch

# Appended to a stream's key so that two streams never share a seed. Fixed for good (see above).
_LOADER, _SAMPLE, _MICRO_BATCH = 1, 2, 3


def seed_for(*parts: int) -> int:
    """A 63-bit seed that depends on every part (no collisions between e.g. (seed 1, epoch 0) and (0, 1))."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint64)[0] >> np.uint64(1))


def data_order(seed: int, epoch: int) -> int:
    return seed_for(seed, epoch)


def loader(seed: int, epoch: int, rank: int) -> int:
    return seed_for(seed, epoch, rank, _LOADER)


def sample_base(seed: int, epoch: int, rank: int) -> int:
    """The seed of the process's first sample in the epoch; the sample at position p gets base + p (mod 2**63)."""
    return seed_for(seed, epoch, rank, _SAMPLE)


def micro_batch(seed: int, step: int, micro_step: int, rank: int) -> int:
    return seed_for(seed, step, micro_step, rank, _MICRO_BATCH)


def seed_generators(seed: int, devices: bool = True) -> None:
    """Seed python's, numpy's and torch's generators, the ones timm's transforms and layers draw from.

    devices=False seeds torch's CPU generator only, for loader workers: torch.manual_seed also queues a lazy CUDA
    seed with a formatted stack trace, ~0.4 ms per sample in a worker (benchmarks/input_pipeline.py); the CPU
    stream is the same either way."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    if devices:
        torch.manual_seed(seed)
    else:
        torch.default_generator.manual_seed(seed)
