"""CIFAR-10 data (rsb.data.cifar): the archive's MD5 check, torchvision's reader on the extracted layout, the
built-in sample, the fixed held-out split; and the on-device pad-crop-flip and mean image (rsb.data.batch)."""
from __future__ import annotations

import pickle
import tarfile

import numpy as np
import pytest
import torch

from rsb.config.load import load_recipe
from rsb.data import cifar
from rsb.data.batch import DeviceBatch, pad_crop_flip
from rsb.errors import UserError


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RSB_CACHE", str(tmp_path / "cache"))


def fake_batches(root, n_per_file=4):
    """cifar-10-batches-py in the published layout (pickled dicts of 3072-byte rows), with made-up pixels."""
    folder = root / cifar.BATCHES_FOLDER
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (n_per_file, 3072), dtype=np.uint8)
        with open(folder / name, "wb") as f:
            pickle.dump({"data": data, "labels": list(range(n_per_file))}, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, f)
    return folder


def test_wrong_archive_is_refused_by_md5(tmp_path):
    bad = tmp_path / cifar.ARCHIVE_NAME
    with tarfile.open(bad, "w:gz") as tar:
        tar.add(fake_batches(tmp_path / "src"), arcname=cifar.BATCHES_FOLDER)
    with pytest.raises(UserError, match="is not the CIFAR-10 archive .*c58f30108f718f92721af3b95e74349a"):
        cifar.open_cifar10(bad, 0)


def test_torchvision_reader_on_the_extracted_folder(tmp_path, monkeypatch):
    folder = fake_batches(tmp_path)
    with pytest.raises(UserError, match="incomplete or corrupt"):  # torchvision's own MD5s: these are fakes
        cifar.open_cifar10(tmp_path, 0)
    import torchvision.datasets.cifar as tv_cifar
    monkeypatch.setattr(tv_cifar.CIFAR10, "_check_integrity", lambda self: True)  # pass our fakes' MD5s
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda path, md5=None: True)
    for path in (tmp_path, folder):  # the root torchvision takes, or cifar-10-batches-py itself
        train, test = cifar.open_cifar10(path, 0)
        assert (len(train), len(test)) == (20, 4)
        assert train.images.shape == (20, 32, 32, 3) and train.images.dtype == np.uint8
        with open(folder / "data_batch_1", "rb") as f:  # CHW rows become HWC images
            row = pickle.load(f)["data"][1]
        assert np.array_equal(train.images[1], row.reshape(3, 32, 32).transpose(1, 2, 0))
        image, label, skipped = train[(1, 12345)]  # (index, sample seed) as the sampler gives it
        assert image.shape == (3, 32, 32) and (label, skipped) == (1, 0)


def test_folder_without_batches_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="holds no cifar-10-batches-py"):
        cifar.open_cifar10(tmp_path, 0)
    with pytest.raises(UserError, match="does not exist"):
        cifar.open_cifar10(tmp_path / "nope", 0)


def test_sample_and_fixed_holdout(tmp_path):
    root = cifar.ensure_cifar_sample(tmp_path / "s", splits={"train": 12, "test": 3})
    train, test = cifar.read_sample(root)
    assert train.images.shape == (120, 32, 32, 3) and len(test) == 30
    assert sorted(set(train.labels.tolist())) == list(range(10))
    kept, held = cifar.holdout(train, 20)
    again, held_again = cifar.holdout(train, 20)
    assert len(kept) == 100 and len(held) == 20
    assert np.array_equal(held.images, held_again.images)  # fixed: the same images every time
    flat = {img.tobytes() for img in kept.images}
    assert not any(img.tobytes() in flat for img in held.images)  # disjoint
    with pytest.raises(UserError, match="leaves no training images"):
        cifar.holdout(train, 120)


def test_sample_mean_image_is_per_pixel():
    split = cifar.ArraySplit(np.stack([np.full((32, 32, 3), v, np.uint8) for v in (10, 30)]), np.array([0, 1]), "x")
    split.images[0, 0, 0] = 250
    mean = split.mean_image()
    assert mean.shape == (3, 32, 32)
    assert mean[0, 0, 0] == pytest.approx(140.0) and mean[0, 5, 5] == pytest.approx(20.0)


def test_pad_crop_flip_offsets_zero_padding_and_flip():
    torch.manual_seed(0)
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8) + 1  # no zeros inside
    assert torch.equal(pad_crop_flip(x, 0, 0.0), x)
    assert torch.equal(pad_crop_flip(x, 0, 1.0), x.flip(3))
    seen_zero_border, offsets = False, set()
    for _ in range(40):
        y = pad_crop_flip(x, 2, 0.0)
        assert y.shape == x.shape
        for b in range(2):  # every output is a window of the zero-padded image
            padded = torch.nn.functional.pad(x[b], (2, 2, 2, 2))
            match = [(dy, dx) for dy in range(5) for dx in range(5)
                     if torch.equal(padded[:, dy:dy + 8, dx:dx + 8], y[b])]
            assert len(match) == 1
            offsets.add(match[0])
            seen_zero_border |= bool((y[b] == 0).any())
    assert seen_zero_border and len(offsets) > 10  # the offsets vary; padding is zero


def test_device_batch_subtracts_the_mean_image_then_augments():
    aug = load_recipe("cifar10_resnet").aug
    mean = torch.full((3, 32, 32), 100.0)
    images = torch.full((4, 3, 32, 32), 100, dtype=torch.uint8)
    x, y = DeviceBatch(torch.device("cpu"), False, mean_image=mean)(images, torch.arange(4))
    assert torch.equal(x, torch.zeros_like(x))  # eval: (x - mean) / 255, nothing else
    images[:, :, 10, 10] = 151
    x, _ = DeviceBatch(torch.device("cpu"), False, aug, 10, mean_image=mean, flip_on_device=True)(
        images, torch.arange(4), train=True)
    assert x.shape == (4, 3, 32, 32)
    assert torch.allclose(x.max(), torch.tensor(51 / 255))  # the bright pixel moved, its value kept
    assert (x == 0).all(dim=1).float().mean() > 0.9  # mean-valued pixels and zero padding are both 0
