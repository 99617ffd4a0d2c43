"""ImageNet-layout folders: index, cache, tolerant decoding (rsb.data.folder)."""
from __future__ import annotations

import io
import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rsb.data import folder as folder_mod
from rsb.data.decode import load_rgb
from rsb.data.dataset import SourceDataset
from rsb.data.folder import ImageFolderIndex
from rsb.errors import UserError


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("RSB_CACHE", str(cache))
    return cache


def jpeg_bytes(color=(200, 30, 30), size=8, mode="RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (size, size), color).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def make_tree(root: Path, classes=("n02", "n01", "n10"), per_class=3) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(classes):
        d = root / name
        d.mkdir()
        for i in range(per_class):
            (d / f"img_{i}.JPEG").write_bytes(jpeg_bytes((10 * k, 100, 20 * i)))
    return root


def age(root: Path, seconds: float = 100.0) -> None:
    """Set the folders' mtimes into the past, as for a data set written earlier (timestamps are coarse)."""
    t = time.time() - seconds
    for d in [root, *[p for p in root.iterdir() if p.is_dir()]]:
        os.utime(d, (t, t))


def test_index_sorted_classes_and_labels(tmp_path):
    root = make_tree(tmp_path / "train")
    (root / "n01" / "notes.txt").write_text("not an image")
    (root / ".hidden").mkdir()
    (root / "README").write_text("file at top level")
    idx = ImageFolderIndex(root)
    assert idx.classes == ["n01", "n02", "n10"]
    assert len(idx) == 9
    assert idx.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    paths = [idx.path(i) for i in range(len(idx))]
    assert paths[0] == root / "n01" / "img_0.JPEG"
    assert paths[-1] == root / "n10" / "img_2.JPEG"
    for i, p in enumerate(paths):
        assert p.is_file()
        assert p.parent.name == idx.classes[idx.labels[i]]


def test_index_extensions_case_insensitive(tmp_path):
    root = tmp_path / "d"
    (root / "a").mkdir(parents=True)
    for name in ("x.jpg", "y.PNG", "z.jpeg", "w.gif"):
        (root / "a" / name).write_bytes(jpeg_bytes())
    idx = ImageFolderIndex(root, use_cache=False)
    assert sorted(idx.path(i).name for i in range(len(idx))) == ["x.jpg", "y.PNG", "z.jpeg"]


def test_missing_folder(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        ImageFolderIndex(tmp_path / "nope")


def test_file_instead_of_folder(tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    with pytest.raises(UserError):
        ImageFolderIndex(f)


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no class folders"):
        ImageFolderIndex(tmp_path / "empty")


def test_class_folders_without_images(tmp_path):
    root = tmp_path / "d"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    (root / "a" / "x.txt").write_text("hi")
    with pytest.raises(UserError, match="no images"):
        ImageFolderIndex(root)


def test_cache_is_written_and_reused(tmp_path, isolated_cache, monkeypatch):
    root = make_tree(tmp_path / "train")
    age(root)
    first = ImageFolderIndex(root)
    files = list((isolated_cache / "index").glob("*.npz"))
    assert len(files) == 1

    def no_scan(_root):
        raise AssertionError("rescanned although the cache is valid")

    monkeypatch.setattr(folder_mod, "scan_folder", no_scan)
    second = ImageFolderIndex(root)
    assert second.classes == first.classes
    assert [second.path(i) for i in range(len(second))] == [first.path(i) for i in range(len(first))]
    assert second.labels.tolist() == first.labels.tolist()


def test_no_cache_when_disabled(tmp_path, isolated_cache):
    root = make_tree(tmp_path / "train")
    ImageFolderIndex(root, use_cache=False)
    assert not list(isolated_cache.rglob("*.npz"))


def test_adding_file_invalidates_cache(tmp_path):
    root = make_tree(tmp_path / "train")
    age(root)
    assert len(ImageFolderIndex(root)) == 9
    (root / "n02" / "img_9.JPEG").write_bytes(jpeg_bytes())
    idx = ImageFolderIndex(root)
    assert len(idx) == 10
    assert root / "n02" / "img_9.JPEG" in [idx.path(i) for i in range(len(idx))]


def test_adding_class_invalidates_cache(tmp_path):
    root = make_tree(tmp_path / "train")
    age(root)
    assert ImageFolderIndex(root).classes == ["n01", "n02", "n10"]
    (root / "n00").mkdir()
    (root / "n00" / "a.JPEG").write_bytes(jpeg_bytes())
    idx = ImageFolderIndex(root)
    assert idx.classes == ["n00", "n01", "n02", "n10"]
    assert idx.labels.tolist()[0] == 0 and len(idx) == 10


def test_removing_file_invalidates_cache(tmp_path):
    root = make_tree(tmp_path / "train")
    age(root)
    assert len(ImageFolderIndex(root)) == 9
    (root / "n10" / "img_0.JPEG").unlink()
    assert len(ImageFolderIndex(root)) == 8


def test_dataset_reads_items(tmp_path):
    root = make_tree(tmp_path / "train")
    ds = SourceDataset(ImageFolderIndex(root))
    assert len(ds) == 9
    img, label, skipped = ds[4]
    assert isinstance(img, Image.Image) and img.mode == "RGB" and img.size == (8, 8)
    assert label == 1 and skipped == 0


def test_dataset_transform_and_label_override(tmp_path):
    root = make_tree(tmp_path / "train")
    idx = ImageFolderIndex(root)
    ds = SourceDataset(idx, transform=lambda im: np.asarray(im).shape, labels=np.arange(9) + 100)
    assert ds[3] == ((8, 8, 3), 103, 0)


@pytest.fixture
def bad_tree(tmp_path):
    root = tmp_path / "bad"
    a = root / "a"
    a.mkdir(parents=True)
    good = jpeg_bytes((1, 2, 3), size=32)
    (a / "0_empty.JPEG").write_bytes(b"")
    (a / "1_text.JPEG").write_text("this is not an image\n" * 10)
    (a / "2_trunc.JPEG").write_bytes(good[: len(good) // 2])
    (a / "3_good.JPEG").write_bytes(good)
    b = root / "b"
    b.mkdir()
    (b / "0_good.JPEG").write_bytes(jpeg_bytes((9, 9, 9)))
    return root


@pytest.mark.parametrize("i,bad_name", [(0, "0_empty.JPEG"), (1, "1_text.JPEG"), (2, "2_trunc.JPEG")])
def test_unreadable_image_is_skipped(bad_tree, capsys, i, bad_name):
    ds = SourceDataset(ImageFolderIndex(bad_tree))
    assert ds.index.path(i).name == bad_name
    img, label, skipped = ds[i]
    assert img.mode == "RGB" and img.size == (32, 32)
    assert label == 0
    assert skipped == 3 - i and skipped >= 1
    err = capsys.readouterr().err
    assert str(bad_tree / "a" / bad_name) in err
    assert "warning" in err


def test_skip_crosses_to_next_class_label(bad_tree, capsys):
    (bad_tree / "a" / "3_good.JPEG").write_bytes(b"garbage")
    ds = SourceDataset(ImageFolderIndex(bad_tree, use_cache=False))
    img, label, skipped = ds[0]
    assert (label, skipped) == (1, 4)
    assert capsys.readouterr().err.count("warning") == 4


def test_all_unreadable_is_user_error(tmp_path, capsys):
    root = tmp_path / "d"
    (root / "a").mkdir(parents=True)
    for i in range(3):
        (root / "a" / f"{i}.JPEG").write_bytes(b"")
    ds = SourceDataset(ImageFolderIndex(root))
    with pytest.raises(UserError):
        ds[0]


def test_load_rgb_grayscale(tmp_path):
    p = tmp_path / "g.JPEG"
    Image.new("L", (8, 8), 128).save(p, format="JPEG")
    img = load_rgb(p)
    assert img.mode == "RGB" and img.size == (8, 8)
    px = np.asarray(img)
    assert px.shape == (8, 8, 3) and np.all(np.abs(px.astype(int) - 128) <= 2)


def test_load_rgb_cmyk(tmp_path):
    p = tmp_path / "c.JPEG"
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(p, format="JPEG")  # red in CMYK
    assert Image.open(p).mode == "CMYK"
    img = load_rgb(p)
    assert img.mode == "RGB" and img.size == (8, 8)
    r, g, b = np.asarray(img).reshape(-1, 3).mean(0)
    assert r > 200 and g < 60 and b < 60


def test_load_rgb_png_behind_jpeg_name(tmp_path):
    p = tmp_path / "p.JPEG"
    Image.new("RGBA", (8, 8), (0, 0, 255, 255)).save(p, format="PNG")
    assert p.read_bytes()[:4] == b"\x89PNG"
    img = load_rgb(p)
    assert img.mode == "RGB"
    assert np.asarray(img)[0, 0].tolist() == [0, 0, 255]


def test_load_rgb_palette_png(tmp_path):
    p = tmp_path / "pal.png"
    Image.new("P", (4, 4), 3).save(p, format="PNG")
    assert load_rgb(p).mode == "RGB"


@pytest.mark.parametrize("content", [b"", b"hello", None])
def test_load_rgb_raises_on_bad_data(tmp_path, content):
    p = tmp_path / "x.JPEG"
    if content is None:
        good = jpeg_bytes(size=32)
        content = good[: len(good) // 2]
    p.write_bytes(content)
    with pytest.raises(Exception):
        load_rgb(p)
