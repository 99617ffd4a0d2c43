"""The sample scale (recipes/sample_scale.yaml) shrinks sizes only: every component of A2 stays on in the run it
builds (LAMB, warmup + cosine, BCE with its threshold, Mixup/CutMix, RandAugment, repeated augmentation,
stochastic depth)."""
from __future__ import annotations

import collections

import pytest
import torch
from timm.layers import DropPath
from timm.optim import Lamb

from rsb.config.load import load_recipe
from rsb.config.schema import to_dict
from rsb.runtime import distributed, precision
from rsb.training.loss import ThresholdedBCE
from rsb.data.families.registry import family
from rsb.training.parts import build_parts
from rsb.training.plan import resolve
from rsb.training.run_config import build_config

# What the overlay may change: sizes, the batch's lr rule, and how often progress is printed.
SIZE_KEYS = {"model.num_classes", "data.train_size", "data.test_size", "sched.epochs", "sched.warmup_epochs",
             "train.batch_per_device", "optim.batch_rule", "run.log_every"}


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in d.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def test_the_overlay_changes_sizes_only():
    recipe, sample = _flat(to_dict(load_recipe("a2"))), _flat(to_dict(build_config("a2", [], sample=True)))
    changed = {key for key in recipe if recipe[key] != sample[key]}
    assert changed <= SIZE_KEYS, f"the sample scale changes recipe values beyond sizes: {sorted(changed - SIZE_KEYS)}"


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory, monkeypatch_module):
    """The parts of `train.py --recipe a2` without --data: the built-in sample at the sample scale, on the CPU."""
    monkeypatch_module.setenv("RSB_CACHE", str(tmp_path_factory.mktemp("cache")))
    cfg = build_config("a2", [], sample=True)
    train_idx, val_idx = family(cfg).open(None, cfg, lambda msg: None)
    dist = distributed.DistContext(0, 1, 0, torch.device("cpu"))
    prec = precision.for_config(cfg.train, dist.device)
    derived = resolve(cfg, 1, len(train_idx), prec)
    return cfg, derived, build_parts(cfg, derived, prec, dist, train_idx, val_idx, workers=0)


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_lamb_with_its_gradient_clipping(sample_run):
    cfg, _, parts = sample_run
    assert isinstance(parts.optimizer, Lamb)
    assert parts.optimizer.defaults["max_grad_norm"] == 1.0 and parts.optimizer.defaults["weight_decay"] == 0.02


def test_warmup_then_cosine_decay(sample_run):
    _, d, parts = sample_run
    assert 0 < d.warmup_steps < d.total_steps
    lr = [parts.schedule.lr_at(step) for step in range(d.total_steps)]
    peak = lr.index(max(lr))
    assert peak == d.warmup_steps and max(lr) == pytest.approx(d.lr)
    assert all(a < b for a, b in zip(lr[:peak], lr[1:peak + 1]))            # linear warmup, rising
    assert all(a > b for a, b in zip(lr[peak:-1], lr[peak + 1:]))           # cosine, falling to the floor
    assert lr[-1] == pytest.approx(1e-6) and d.total_steps - d.warmup_steps >= d.warmup_steps


def test_bce_with_its_threshold(sample_run):
    _, _, parts = sample_run
    assert isinstance(parts.loss_fn, ThresholdedBCE) and parts.loss_fn.threshold == 0.2
    mixed = torch.tensor([[0.85, 0.15] + [0.0] * 8])
    assert parts.loss_fn.targets(mixed).tolist() == [[1.0] + [0.0] * 9]   # 0.15 < 0.2 becomes 0


def test_mixup_and_cutmix_on_every_batch(sample_run):
    _, _, parts = sample_run
    mix = parts.prep_train.mixup
    assert mix is not None and mix.mixup_alpha == 0.1 and mix.cutmix_alpha == 1.0 and mix.mix_prob == 1.0
    images, labels = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8), torch.arange(8) % 10
    _, targets = parts.prep_train(images, labels, train=True)
    assert targets.shape == (8, 10) and (targets.max(dim=1).values < 1).all()  # every row mixes two images


def test_randaugment_in_the_training_transform(sample_run):
    _, _, parts = sample_run
    transform = parts.train_loader.loader.dataset.transform
    assert transform.rand_augment is not None
    names = {op.name for op in transform.rand_augment.ops}
    assert len(names) >= 10 and transform.rand_augment.num_layers == 2


def test_repeated_augmentation_three_copies(sample_run):
    _, _, parts = sample_run
    sampler = parts.train_loader.sampler
    sampler.set_epoch(0)
    counts = collections.Counter(collections.Counter(index for index, _ in sampler).values())
    assert sampler.repeats == 3 and set(counts) <= {1, 2, 3} and counts[3] > 0.9 * sum(counts.values())


def test_stochastic_depth_on(sample_run):
    _, _, parts = sample_run
    rates = [m.drop_prob for m in parts.model.modules() if isinstance(m, DropPath)]
    # ResNet-50's 16 blocks, the rate rising linearly from 0 (timm leaves the first block without a DropPath) to
    # the recipe's 0.05 in the last
    assert len(rates) == 15 and rates == sorted(rates) and rates[-1] == pytest.approx(0.05)
