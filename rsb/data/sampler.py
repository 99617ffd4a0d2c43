"""Repeated-augmentation sampler (Hoffer et al. 2020; DeiT's RASampler), seeded by (run seed, epoch), dealt
over virtual replicas.

Each epoch: shuffle the indices with a generator seeded by (seed, epoch), repeat each index `repeats` times, and
deal the list round-robin to `lanes` virtual replicas, so consecutive copies of one image land in different
lanes. A lane is what one GPU of a data-parallel run sees (the paper's batch of 2048 was 4 GPUs of 512), each
micro-batch holding distinct images and the copies of an image on different GPUs. Here there is one lane per
(process, accumulation micro-step), world_size x accum_steps in all, so one GPU accumulating 8 micro-batches
sees, step by step, exactly what 8 GPUs without accumulation would: every micro-batch holds distinct images and
each copy of an image is in a different micro-batch. With fewer lanes than repeats (one process, no
accumulation) the lanes are multiplied until there are at least `repeats`, so the copies still fall in different
(consecutive) batches. Each lane keeps ceil(N / lanes) samples, cut to whole batches, so an epoch has about N
samples in all and sees about N / repeats distinct images. repeats=1 is a plain distributed shuffle.

A process's stream is its lanes interleaved batch by batch: step t's micro-batch j is batch t of lane
j * world_size + rank. Positions in that stream are fixed, so a mid-epoch resume skips a prefix of it.

Why our own: timm's RepeatAugSampler seeds the shuffle with the epoch only (a seed study would see one data
order for every seed), refuses a single process and knows nothing of accumulation.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch.utils.data import Sampler

from rsb.data import seeds


def lane_count(world: int, accum_steps: int, repeats: int) -> int:
    """Virtual replicas an epoch is dealt over: world x accum, times the smallest factor reaching `repeats`.
    A run's plan computes them once (rsb.training.plan) and gives them to the sampler."""
    lanes = world * accum_steps
    return lanes * math.ceil(repeats / lanes)


def samples_per_process(num_samples: int, lanes: int, world: int, batch_size: int) -> int:
    """Samples one process draws per epoch: its lanes, each cut to whole batches of `batch_size`."""
    per_lane = math.ceil(num_samples / lanes)
    return (per_lane // batch_size) * batch_size * (lanes // world)


class RepeatedAugSampler(Sampler[int]):
    def __init__(self, num_samples: int, num_replicas: int = 1, rank: int = 0, repeats: int = 3,
                 seed: int = 0, shuffle: bool = True, batch_size: int = 1, accum_steps: int = 1,
                 lanes: int | None = None):
        """`lanes`: the lanes to deal over, as the run's plan computed them (lane_count); None: lane_count of
        (num_replicas, accum_steps, repeats), for a caller without a plan."""
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} out of range for {num_replicas} processes")
        lanes = lane_count(num_replicas, accum_steps, repeats) if lanes is None else lanes
        if lanes % num_replicas or lanes < repeats:
            raise ValueError(f"{lanes} lanes cannot be shared by {num_replicas} processes with {repeats} repeats")
        self.n, self.world, self.rank = num_samples, num_replicas, rank
        self.repeats, self.seed, self.shuffle = repeats, seed, shuffle
        self.batch_size, self.lanes = batch_size, lanes
        self.batches_per_lane = math.ceil(num_samples / lanes) // batch_size
        self.per_rank = samples_per_process(num_samples, lanes, num_replicas, batch_size)
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Select the epoch's order; `start` skips the first samples of this process (mid-epoch resume)."""
        self.epoch, self.start = epoch, start

    def slots(self) -> np.ndarray:
        """This process's positions in the epoch's repeated order, in stream order: lane l's k-th sample is
        position l + k * lanes; batch t of each of the process's lanes in turn."""
        own = np.arange(self.lanes // self.world) * self.world + self.rank          # lane of micro-step j
        k = (np.arange(self.batches_per_lane)[:, None, None] * self.batch_size
             + np.arange(self.batch_size)[None, None, :])                           # (batch t, 1, position)
        return (own[None, :, None] + k * self.lanes).reshape(-1)

    def order(self) -> torch.Tensor:
        """The epoch's repeated order: a (seed, epoch) shuffle, each index `repeats` times in a row."""
        if self.shuffle:
            g = torch.Generator().manual_seed(seeds.data_order(self.seed, self.epoch))
            order = torch.randperm(self.n, generator=g)
        else:
            order = torch.arange(self.n)
        return order.repeat_interleave(self.repeats)

    def indices(self) -> list[int]:
        order = self.order().numpy()
        return order[self.slots() % len(order)].tolist()  # a slot past the end wraps (repeats=1, N not divisible)

    def __iter__(self):
        """(index, sample seed) pairs from `start` on. The seed depends on (run seed, epoch, rank, position in this
        process's epoch); the dataset seeds the sample's augmentation with it, so an image's augmentation does
        not depend on which worker decodes it or on where a resumed run restarted: resuming mid-epoch
        reproduces the uninterrupted run exactly."""
        base = seeds.sample_base(self.seed, self.epoch, self.rank)
        for pos, index in enumerate(self.indices()[self.start:], start=self.start):
            yield index, (base + pos) % 2**63

    def __len__(self) -> int:
        return self.per_rank - self.start
