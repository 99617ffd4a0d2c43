"""Data sets and loaders for training and evaluation."""
from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from rsb.config.schema import Config
from rsb.data.dataset import SourceDataset
from rsb.data import seeds
from rsb.data.sampler import RepeatedAugSampler
from rsb.data.malloc import keep_freed_memory_in_heap
from rsb.data.transforms import collate_uint8, eval_transform, train_pipeline
from rsb.runtime.signals import worker_init


def train_dataset(cfg: Config, index) -> SourceDataset:
    """The training set of an image source (rsb.data.dataset) with the recipe's transform and the decoder paired
    with it, as rsb.data.families.imagenet gives it. The fast path's tensor ops
    allocate large temporaries: keep freed memory in the heap (rsb.data.malloc), set here before the loader forks
    its workers, which inherit it."""
    pipeline = train_pipeline(cfg.data, cfg.aug, cfg.run.fast_transform)
    if pipeline.fast:
        keep_freed_memory_in_heap()
    return SourceDataset(index, pipeline.transform, decode=pipeline.decode)


class TrainLoader:
    """A DataLoader whose order is set per epoch from (seed, epoch, rank) and whose every sample's augmentation
    is seeded by its position in the epoch, so a resumed run (at an epoch boundary or mid-epoch, with any number
    of workers) sees exactly the data and augmentations of an uninterrupted one."""

    def __init__(self, cfg: Config, dataset, rank: int, world: int, workers: int, pin_memory: bool,
                 lanes: int | None = None):
        """`dataset`: the training set a dataset family gives (rsb.data.families), items by (index, sample seed);
        `lanes`: the sampler's lanes as the run's plan computed them (rsb.training.plan's Derived.sampler_lanes,
        one per process and micro-step); None: one process's lanes without accumulation."""
        self.seed, self.rank = cfg.train.seed, rank
        self.sampler = RepeatedAugSampler(len(dataset), world, rank, cfg.aug.repeated_aug, cfg.train.seed,
                                          batch_size=cfg.train.batch_per_device, lanes=lanes)
        self.generator = torch.Generator()
        self.loader = DataLoader(
            dataset, batch_size=cfg.train.batch_per_device, sampler=self.sampler, num_workers=workers,
            collate_fn=collate_uint8, pin_memory=pin_memory, drop_last=True, generator=self.generator,
            worker_init_fn=worker_init(),  # signals are the trainer's to handle (rsb.runtime.signals)
            # Workers live across epochs (as timm's loader's do): no start-up or warm-up per epoch. Safe here
            # because every random draw comes from the per-sample seed, not from worker state.
            persistent_workers=workers > 0)

    def epoch(self, epoch: int, start_sample: int = 0):
        self.sampler.set_epoch(epoch, start_sample)
        self.generator.manual_seed(seeds.loader(self.seed, epoch, self.rank))
        return iter(self.loader)


def eval_loader(index, size: int, crop_pct: float, interpolation: str, batch_size: int,
                workers: int, labels=None, rank: int = 0, world: int = 1) -> DataLoader:
    """Ordered loader over one process's contiguous share of the set (no padding: nothing is counted twice)."""
    dataset = SourceDataset(index, eval_transform(size, crop_pct, interpolation), labels=labels)
    per = -(-len(dataset) // world)
    subset = torch.utils.data.Subset(dataset, range(rank * per, min(len(dataset), (rank + 1) * per)))
    return DataLoader(subset, batch_size=batch_size, shuffle=False, num_workers=workers,
                      collate_fn=collate_uint8, pin_memory=torch.cuda.is_available(), worker_init_fn=worker_init())
