"""The built-in synthetic sample data set (rsb.data.sample)."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image

from rsb.data import sample
from rsb.data.folder import ImageFolderIndex
from rsb.data.sample import CLASS_IDS, NUM_CLASSES, SPLITS, draw_image, ensure_sample_dataset


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("sample") / "s"
    out = ensure_sample_dataset(root)
    return root, out


def test_returns_root_and_marker(built):
    root, out = built
    assert out == root
    info = json.loads((root / "COMPLETE.json").read_text())
    assert info["version"] == sample.VERSION and info["seed"] == 0 and info["splits"] == SPLITS
    assert not list(root.parent.glob("*.tmp*")), "temporary build folder left behind"


def test_splits(built):
    root, _ = built
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["train", "v2", "val"]


@pytest.mark.parametrize("split", ["train", "val"])
def test_imagenet_layout(built, split):
    root, _ = built
    folders = sorted(p.name for p in (root / split).iterdir())
    assert len(folders) == NUM_CLASSES == 10
    assert folders == CLASS_IDS == sorted(CLASS_IDS)
    assert all(re.fullmatch(r"n\d{8}", f) for f in folders)
    for wnid in folders:
        files = list((root / split / wnid).iterdir())
        assert len(files) == SPLITS[split]
        assert all(f.suffix == ".JPEG" for f in files)
    idx = ImageFolderIndex(root / split, use_cache=False)
    assert idx.classes == CLASS_IDS
    assert len(idx) == SPLITS[split] * NUM_CLASSES
    assert np.bincount(idx.labels).tolist() == [SPLITS[split]] * NUM_CLASSES


def test_v2_layout(built):
    root, _ = built
    folders = {p.name for p in (root / "v2").iterdir()}
    assert folders == {str(i) for i in range(10)}
    for name in folders:
        files = list((root / "v2" / name).iterdir())
        assert len(files) == SPLITS["v2"]
        for f in files:
            assert re.fullmatch(r"[0-9a-f]{40}\.jpeg", f.name), f.name


def test_images_decode(built):
    root, _ = built
    for p in [next((root / "train" / CLASS_IDS[3]).iterdir()), next((root / "v2" / "7").iterdir())]:
        with Image.open(p) as im:
            assert im.format == "JPEG" and im.mode == "RGB"
            assert im.size == (sample.IMAGE_SIZE, sample.IMAGE_SIZE)


def test_class_colour_carries_label(built):
    """Classes differ in hue: mean colours of two classes differ more than within one class."""
    root, _ = built

    def mean_rgb(wnid):
        files = sorted((root / "train" / wnid).iterdir())[:10]
        return np.mean([np.asarray(Image.open(f)).reshape(-1, 3).mean(0) for f in files], axis=0)

    a, b = mean_rgb(CLASS_IDS[0]), mean_rgb(CLASS_IDS[5])
    assert np.abs(a - b).max() > 20


def test_idempotent(built):
    root, _ = built
    files = sorted(p for p in root.rglob("*") if p.is_file())
    before = {p: p.stat().st_mtime_ns for p in files}
    assert ensure_sample_dataset(root) == root
    after = {p: p.stat().st_mtime_ns for p in sorted(q for q in root.rglob("*") if q.is_file())}
    assert after == before


def test_empty_existing_folder_is_filled(tmp_path, monkeypatch):
    monkeypatch.setattr(sample, "SPLITS", {"train": 2, "val": 1, "v2": 1})
    root = tmp_path / "s"
    root.mkdir()
    assert ensure_sample_dataset(root) == root
    assert (root / "COMPLETE.json").exists()
    assert len(list((root / "train" / CLASS_IDS[0]).iterdir())) == 2


def test_incomplete_folder_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setattr(sample, "SPLITS", {"train": 2, "val": 1, "v2": 1})
    root = tmp_path / "s"
    (root / "train").mkdir(parents=True)  # a half-written folder without the marker
    ensure_sample_dataset(root)
    assert (root / "COMPLETE.json").exists()
    assert len(list((root / "train" / CLASS_IDS[0]).iterdir())) == 2
    assert len(list((root / "v2" / "9").iterdir())) == 1


def test_default_root_uses_rsb_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RSB_CACHE", str(tmp_path))
    assert sample.default_sample_root() == tmp_path / f"sample-v{sample.VERSION}"


def test_draw_image_deterministic():
    a = draw_image(3, np.random.default_rng(42))
    b = draw_image(3, np.random.default_rng(42))
    c = draw_image(3, np.random.default_rng(43))
    assert a.dtype == np.uint8 and a.shape == (sample.IMAGE_SIZE, sample.IMAGE_SIZE, 3)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not np.array_equal(draw_image(4, np.random.default_rng(42)), a)
    s1 = draw_image(3, np.random.default_rng(42), shift=1.0)
    assert np.array_equal(s1, draw_image(3, np.random.default_rng(42), shift=1.0))


def test_build_is_reproducible(tmp_path, monkeypatch):
    monkeypatch.setattr(sample, "SPLITS", {"train": 1, "val": 1, "v2": 1})
    r1 = ensure_sample_dataset(tmp_path / "x")
    r2 = ensure_sample_dataset(tmp_path / "y")
    f = "train/" + CLASS_IDS[2] + f"/train_{CLASS_IDS[2]}_00000.JPEG"
    assert (r1 / f).read_bytes() == (r2 / f).read_bytes()
