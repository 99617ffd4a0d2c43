"""Device-side batch work (rsb.data.batch) and the per-image transforms (rsb.data.transforms)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from rsb.config.schema import AugConfig, DataConfig

from rsb.config.load import load_recipe
from rsb.data.batch import DeviceBatch
from rsb.data.transforms import collate_uint8, eval_transform, train_transform

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
CPU = torch.device("cpu")


def uint8_batch(b=4, s=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, 3, s, s), generator=g, dtype=torch.uint8)


def manual_norm(images):
    x = images.double() / 255.0
    mean = torch.tensor(MEAN, dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor(STD, dtype=torch.float64).view(1, 3, 1, 1)
    return (x - mean) / std


@pytest.mark.parametrize("channels_last", [False, True])
def test_normalise(channels_last):
    images = uint8_batch()
    labels = torch.tensor([0, 1, 2, 3])
    x, y = DeviceBatch(CPU, channels_last=channels_last)(images, labels, train=False)
    assert x.dtype == torch.float32 and x.shape == (4, 3, 16, 16)
    assert torch.allclose(x.double(), manual_norm(images), atol=1e-5)
    if channels_last:
        assert x.is_contiguous(memory_format=torch.channels_last)
        assert not x.is_contiguous()
    else:
        assert x.is_contiguous()
    assert torch.equal(y, labels)


def test_input_not_modified():
    images = uint8_batch()
    copy = images.clone()
    DeviceBatch(CPU, channels_last=True)(images, torch.zeros(4, dtype=torch.long))
    assert torch.equal(images, copy)


def mix_aug(**kw):
    base = dict(mixup_alpha=0.2, cutmix_alpha=1.0, mix_prob=1.0, mix_switch_prob=0.5)
    base.update(kw)
    return AugConfig(**base)


def test_mixup_dense_targets_when_training():
    torch.manual_seed(0)
    np.random.seed(0)
    db = DeviceBatch(CPU, channels_last=False, aug=mix_aug(), num_classes=10)
    labels = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7])
    for _ in range(4):
        x, y = db(uint8_batch(8), labels, train=True)
        assert y.shape == (8, 10) and y.is_floating_point()
        assert torch.allclose(y.sum(1), torch.ones(8), atol=1e-5)
        assert (y >= 0).all()
        # each row mixes its own label with the label of the flipped batch (timm's batch mode)
        for i in range(8):
            nz = set(torch.nonzero(y[i] > 1e-6).flatten().tolist())
            assert nz <= {int(labels[i]), int(labels[7 - i])}
            assert int(labels[i]) in nz


def test_mixup_only_mixes_images():
    torch.manual_seed(1)
    np.random.seed(1)
    db = DeviceBatch(CPU, channels_last=False, aug=mix_aug(cutmix_alpha=0.0, mixup_alpha=1.0), num_classes=4)
    images = uint8_batch(4)
    labels = torch.tensor([0, 1, 2, 3])
    x, y = db(images, labels, train=True)
    lam = y[0, 0].item()
    ref = manual_norm(images)
    assert torch.allclose(x.double(), lam * ref + (1 - lam) * ref.flip(0), atol=1e-4)


def test_no_mixing_when_evaluating():
    db = DeviceBatch(CPU, channels_last=False, aug=mix_aug(), num_classes=10)
    images = uint8_batch(8)
    labels = torch.arange(8)
    x, y = db(images, labels, train=False)
    assert torch.equal(y, labels) and y.dtype == torch.int64
    assert torch.allclose(x.double(), manual_norm(images), atol=1e-5)


def test_mixing_off_without_alphas():
    db = DeviceBatch(CPU, channels_last=False, aug=AugConfig(), num_classes=10)
    assert db.mixup is None
    labels = torch.arange(4)
    _, y = db(uint8_batch(4), labels, train=True)
    assert torch.equal(y, labels)


def test_mixup_has_no_smoothing():
    db = DeviceBatch(CPU, channels_last=False, aug=mix_aug(), num_classes=10)
    assert db.mixup is not None
    assert db.mixup.label_smoothing == 0.0
    assert db.mixup.mixup_alpha == 0.2 and db.mixup.cutmix_alpha == 1.0
    assert db.mixup.mix_prob == 1.0 and db.mixup.switch_prob == 0.5


def test_random_erasing_only_in_training():
    torch.manual_seed(0)
    db = DeviceBatch(CPU, channels_last=False, aug=AugConfig(random_erasing=1.0), num_classes=10)
    images = uint8_batch(4, s=32)
    x_eval, _ = db(images, torch.arange(4), train=False)
    assert torch.allclose(x_eval.double(), manual_norm(images), atol=1e-5)
    x_train, _ = db(images, torch.arange(4), train=True)
    assert not torch.allclose(x_train, x_eval)


def test_recipe_batch_normalise_then_mix():
    cfg = load_recipe("a3")
    db = DeviceBatch(CPU, channels_last=True, aug=cfg.aug, num_classes=cfg.model.num_classes)
    x, y = db(uint8_batch(4), torch.tensor([1, 2, 3, 4]), train=True)
    assert y.shape == (4, 1000)
    assert torch.allclose(y.sum(1), torch.ones(4))


def hand_eval(img: Image.Image, size=224, crop=0.95) -> np.ndarray:
    short = math.floor(size / crop)
    assert short == 235
    w, h = img.size
    if w <= h:
        nw, nh = short, int(short * h / w)
    else:
        nw, nh = int(short * w / h), short
    r = img.resize((nw, nh), Image.BICUBIC)
    left = int(round((nw - size) / 2.0))
    top = int(round((nh - size) / 2.0))
    c = r.crop((left, top, left + size, top + size))
    return np.asarray(c).transpose(2, 0, 1)


@pytest.mark.parametrize("wh", [(400, 300), (300, 400)])
def test_eval_transform_matches_hand_computation(wh):
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (wh[1], wh[0], 3), dtype=np.uint8)
    img = Image.fromarray(arr)
    out = np.asarray(eval_transform(224, 0.95, "bicubic")(img))
    assert out.dtype == np.uint8
    assert out.shape == (3, 224, 224)
    ref = hand_eval(img)
    assert np.abs(out.astype(int) - ref.astype(int)).max() <= 1
    # a one-pixel shift of the crop would not pass
    shifted = np.roll(ref, 1, axis=2)
    assert np.abs(out.astype(int) - shifted.astype(int)).max() > 1


def test_eval_transform_other_size():
    img = Image.fromarray(np.zeros((50, 80, 3), dtype=np.uint8))
    out = np.asarray(eval_transform(32, 0.875, "bilinear")(img))
    assert out.shape == (3, 32, 32) and out.dtype == np.uint8


@pytest.mark.parametrize("recipe,size", [("a1", 224), ("a3", 160)])
def test_train_transform_uint8(recipe, size):
    cfg = load_recipe(recipe)
    tf = train_transform(cfg.data, cfg.aug)
    rng = np.random.default_rng(1)
    img = Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8))
    torch.manual_seed(0)
    outs = [np.asarray(tf(img)) for _ in range(3)]
    for out in outs:
        assert out.dtype == np.uint8 and out.shape == (3, size, size)
    assert not all(np.array_equal(outs[0], o) for o in outs[1:]), "random crop gave identical outputs"


def test_train_transform_small_size():
    tf = train_transform(DataConfig(train_size=24), AugConfig(rand_augment="rand-m6-mstd0.5-inc1"))
    img = Image.fromarray(np.full((64, 64, 3), 100, dtype=np.uint8))
    out = np.asarray(tf(img))
    assert out.shape == (3, 24, 24) and out.dtype == np.uint8


def test_collate_uint8():
    items = [(np.full((3, 4, 4), i, dtype=np.uint8), i, i % 2) for i in range(3)]
    images, labels, skipped = collate_uint8(items)
    assert images.dtype == torch.uint8 and images.shape == (3, 3, 4, 4)
    assert labels.tolist() == [0, 1, 2] and labels.dtype == torch.int64
    assert skipped == 1
    assert torch.equal(images[2], torch.full((3, 4, 4), 2, dtype=torch.uint8))


def test_collate_uint8_tensor_items_from_transforms():
    tf = eval_transform(16, 0.95, "bicubic")
    img = Image.fromarray(np.zeros((20, 20, 3), dtype=np.uint8))
    images, labels, skipped = collate_uint8([(tf(img), 3, 0), (tf(img), 4, 2)])
    assert images.shape == (2, 3, 16, 16) and images.dtype == torch.uint8
    assert labels.tolist() == [3, 4] and skipped == 2
