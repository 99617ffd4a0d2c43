"""Decoding by crop region gives a full decode's pixels; files it cannot serve go to Pillow; damaged files are
skipped by the dataset as before."""
import os
import random

import numpy as np
import pytest
import torch
from PIL import Image

from rsb.config.load import load_recipe
from rsb.data import decode
from rsb.data.decode import EncodedJpeg, UnreadableImage, load_for_crop, load_rgb, load_rgb_array
from rsb.data.fast_transform import FastTrainTransform
from rsb.data.folder import ImageFolderIndex
from rsb.data.loader import train_dataset
from rsb.data.transforms import train_transform

needs_extension = pytest.mark.skipif(decode._jpeg_region is None, reason="rsb.data._jpeg_region not built")


def test_region_decoder_is_built_where_required():
    # .ci/run sets this: the CI machine has the libjpeg headers, so a missing extension there is a build bug.
    if os.environ.get("RSB_REQUIRE_JPEG_REGION") == "1":
        assert decode._jpeg_region is not None


def _photo(h, w, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = 128 + 60 * np.sin(xx / 7 + yy / 11)[..., None] + rng.normal(0, 25, (h, w, 3)) + rng.uniform(-50, 50, 3)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


VARIANTS = {  # name: (size, save options, mode)
    "420": ((500, 375), {}, "RGB"),
    "444": ((333, 251), {"subsampling": 0}, "RGB"),
    "422": ((257, 190), {"subsampling": 1}, "RGB"),
    "progressive": ((400, 300), {"progressive": True}, "RGB"),
    "grey": ((300, 211), {}, "L"),
    "tiny": ((9, 7), {}, "RGB"),
    "restart_markers": ((320, 240), {"restart_marker_rows": 1}, "RGB"),
}


@needs_extension
@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_region_equals_full_decode_cropped(tmp_path, name):
    (w, h), options, mode = VARIANTS[name]
    path = tmp_path / f"{name}.JPEG"
    _photo(h, w).convert(mode).save(path, quality=90, **options)
    full = np.asarray(load_rgb(path))
    src = load_for_crop(path)
    assert isinstance(src, EncodedJpeg) and (src.width, src.height) == (w, h)
    rng = random.Random(0)
    boxes = [(0, 0, w, h), (w - 1, h - 1, 1, 1), (0, h // 2, w, h - h // 2)]
    for _ in range(40):
        bw, bh = rng.randint(1, w), rng.randint(1, h)
        boxes.append((rng.randint(0, w - bw), rng.randint(0, h - bh), bw, bh))
    for x, y, bw, bh in boxes:
        got = src.region(x, y, bw, bh)
        assert got.shape == (bh, bw, 3) and got.flags.writeable
        np.testing.assert_array_equal(got, full[y:y + bh, x:x + bw], err_msg=f"{name} box {x},{y} {bw}x{bh}")


@needs_extension
def test_region_outside_the_image_is_an_error(tmp_path):
    path = tmp_path / "a.JPEG"
    _photo(50, 60).save(path, quality=90)
    with pytest.raises(ValueError, match="outside"):
        decode._jpeg_region.decode_region(path.read_bytes(), 10, 10, 60, 5)


def test_files_the_region_decoder_cannot_serve_are_pillows(tmp_path):
    img = _photo(120, 90)
    img.convert("CMYK").save(tmp_path / "cmyk.JPEG", quality=90)
    img.save(tmp_path / "png.JPEG", format="PNG")
    for name in ("cmyk.JPEG", "png.JPEG"):
        got = load_for_crop(tmp_path / name)
        assert isinstance(got, np.ndarray)
        np.testing.assert_array_equal(got, np.asarray(load_rgb(tmp_path / name)))
        np.testing.assert_array_equal(load_rgb_array(tmp_path / name), got)


def test_transform_gives_the_same_image_from_every_kind_of_input(tmp_path):
    path = tmp_path / "a.JPEG"
    _photo(375, 500, seed=3).save(path, quality=90)
    cfg = load_recipe("a2")
    cfg.data.train_size = 96
    fast = train_transform(cfg.data, cfg.aug)
    assert isinstance(fast, FastTrainTransform)
    outputs = []
    for src in (load_for_crop(path), load_rgb_array(path), load_rgb(path)):
        random.seed(5)
        np.random.seed(5)
        torch.default_generator.manual_seed(5)
        outputs.append(fast(src))
    assert torch.equal(outputs[0], outputs[1]) and torch.equal(outputs[1], outputs[2])


def test_damaged_jpeg_found_at_crop_time_is_skipped(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RSB_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "data" / "c0"
    folder.mkdir(parents=True)
    _photo(200, 300, seed=1).save(folder / "a_bad.JPEG", quality=90)
    data = (folder / "a_bad.JPEG").read_bytes()
    (folder / "a_bad.JPEG").write_bytes(data[: len(data) // 2])  # header intact, scan data cut
    _photo(200, 300, seed=2).save(folder / "b_good.JPEG", quality=90)
    cfg = load_recipe("a2")
    cfg.data.train_size = 64
    ds = train_dataset(cfg, ImageFolderIndex(tmp_path / "data"))
    img, label, skipped = ds[(0, 7)]
    assert img.shape == (3, 64, 64) and skipped == 1
    assert "a_bad.JPEG" in capsys.readouterr().err
    if decode._jpeg_region is not None:
        src = load_for_crop(folder / "a_bad.JPEG")
        assert isinstance(src, EncodedJpeg)
        with pytest.raises(UnreadableImage):
            src.region(0, 150, 300, 50)
