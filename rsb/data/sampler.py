"""Repeated-augmentation sampler (Hoffer et al. 2020; DeiT's RASampler), seeded by (run seed, epoch).

Each epoch: shuffle the indices with a generator seeded by (seed, epoch), repeat each index `repeats` times,
and deal the list round-robin to the processes, so the copies of one image land on different processes
(when there are at least `repeats` of them). Each process keeps ceil(N / world) samples, so an epoch has about
N samples in all and sees about N / repeats distinct images. repeats=1 is a plain distributed shuffle.

Why our own: timm's RepeatAugSampler seeds the shuffle with the epoch only (a seed study would see one data
order for every seed) and refuses a single process.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch.utils.data import Sampler


def seed_for(*parts: int) -> int:
    """A 63-bit seed that depends on every part (no collisions between e.g. (seed 1, epoch 0) and (0, 1))."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint64)[0] >> np.uint64(1))


class RepeatedAugSampler(Sampler[int]):
    def __init__(self, num_samples: int, num_replicas: int = 1, rank: int = 0, repeats: int = 3,
                 seed: int = 0, shuffle: bool = True):
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} out of range for {num_replicas} processes")
        self.n, self.world, self.rank = num_samples, num_replicas, rank
        self.repeats, self.seed, self.shuffle = repeats, seed, shuffle
        self.epoch, self.start = 0, 0
        self.per_rank = math.ceil(num_samples / num_replicas)

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Select the epoch's order; `start` skips the first samples of this process (mid-epoch resume)."""
        self.epoch, self.start = epoch, start

    def indices(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(seed_for(self.seed, self.epoch))
            order = torch.randperm(self.n, generator=g)
        else:
            order = torch.arange(self.n)
        order = order.repeat_interleave(self.repeats)
        total = self.per_rank * self.world
        if len(order) < total:  # pad by wrapping so every process gets the same count
            order = torch.cat([order, order[: total - len(order)]])
        return order[self.rank:total:self.world][: self.per_rank].tolist()

    def __iter__(self):
        return iter(self.indices()[self.start:])

    def __len__(self) -> int:
        return self.per_rank - self.start


class SeededSampler(Sampler):
    """Wraps a sampler to yield (index, sample seed) pairs; the seed depends on (run seed, epoch, position in
    this process's epoch). The dataset seeds its augmentation with it, so an image's augmentation does not
    depend on which worker decodes it or on where a resumed run restarted: resuming mid-epoch reproduces the
    uninterrupted run exactly."""

    def __init__(self, sampler: RepeatedAugSampler):
        self.sampler = sampler

    def __iter__(self):
        s = self.sampler
        base = seed_for(s.seed, s.epoch, s.rank, 2)
        for pos, index in enumerate(s.indices()[s.start:], start=s.start):
            yield index, (base + pos) % 2**63

    def __len__(self) -> int:
        return len(self.sampler)
