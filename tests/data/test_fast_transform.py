"""The fast training transform draws what timm's draws and makes the images timm makes; the array decoder gives
Pillow's pixels."""
import random
from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image
from timm.data import create_transform
from timm.data.auto_augment import RandAugment

from rsb.config.load import load_recipe
from rsb.data.decode import load_for_crop, load_rgb, load_rgb_array
from rsb.data.fast_transform import FastTrainTransform
from rsb.data.folder import ImageFolderIndex
from rsb.data.loader import train_dataset
from rsb.data.transforms import train_transform


def _photo(rng, h=150, w=200):
    yy, xx = np.mgrid[0:h, 0:w]
    img = sum(np.sin(xx / rng.uniform(2, 20) + rng.uniform(0, 6)) * np.cos(yy / rng.uniform(2, 20)) for _ in range(3))
    img = 128 + 40 * img[..., None] + rng.uniform(-60, 60, 3) + rng.normal(0, 8, (h, w, 3))
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


IMAGES = [_photo(np.random.default_rng(i), 120 + 7 * i, 160 - 5 * i) for i in range(8)]


def _timm_chain(size=96, ra="rand-m7-mstd0.5-inc1", **kw):
    args = dict(is_training=True, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), hflip=0.5, auto_augment=ra,
                color_jitter=0.0, interpolation="bicubic", re_prob=0.0, use_prefetcher=True)
    args.update(kw)
    return create_transform(size, **args)


def _seed(s):
    random.seed(s)
    np.random.seed(s)
    torch.default_generator.manual_seed(s)


def _with_the_same_draws(k, first, second, img, second_img=None):
    """first(img) and second(second_img, else img), each from the generators seeded with k."""
    _seed(k)
    a = first(img)
    _seed(k)
    return a, second(img if second_img is None else second_img)


def _record_draws(transform, log):
    """Log every crop box, and every RandAugment op that runs with its arguments, of a transform."""
    crop = transform.crop if isinstance(transform, FastTrainTransform) else transform.transforms[0]
    get_params = crop.get_params

    def logged_params(*a):
        box = get_params(*a)
        log.append(("crop", tuple(box)))
        return box
    crop.get_params = logged_params
    ra = transform.rand_augment if isinstance(transform, FastTrainTransform) else \
        next(t for t in transform.transforms if isinstance(t, RandAugment))
    for op in ra.ops:
        def logged(img, *args, _fn=op.aug_fn, _name=op.name, **kw):
            log.append((_name, args, tuple(sorted(kw.items()))))
            return _fn(img, *args, **kw)
        op.aug_fn = logged


@pytest.mark.parametrize("size,ra", [(96, "rand-m7-mstd0.5-inc1"), (64, "rand-m6-mstd0.5-inc1")])
def test_same_seed_same_draws_as_timm(size, ra):
    """Crop boxes, op choice, op order and every magnitude are timm's, draw for draw."""
    timm_chain = _timm_chain(size, ra)
    fast = FastTrainTransform.from_timm(_timm_chain(size, ra))
    timm_log, fast_log = [], []
    _record_draws(timm_chain, timm_log)
    _record_draws(fast, fast_log)
    for k in range(120):
        img = IMAGES[k % len(IMAGES)]
        _with_the_same_draws(k, timm_chain, fast, img)
        assert fast_log == timm_log, f"sample {k}"
    assert sum(entry[0] != "crop" for entry in timm_log) > 80  # RandAugment really ran ops


@pytest.mark.parametrize("out", [(96, 96), (64, 112), (112, 64)])
def test_resize_is_pillows_for_every_shape(out):
    """The crop's resize against Pillow's over a grid of crop shapes, shrinking and enlarging either axis, on
    noise (the hardest input: every overshoot is clipped, so the pass order shows)."""
    from timm.data.transforms import RandomResizedCropAndInterpolation
    noise = np.random.default_rng(0).integers(0, 256, (260, 260, 3), dtype=np.uint8)
    fast = FastTrainTransform(RandomResizedCropAndInterpolation(out, interpolation="bicubic"), 0.0, 0.0, None)
    for h in range(20, 260, 21):
        for w in range(20, 260, 17):
            expected = np.asarray(Image.fromarray(noise[:h, :w]).resize(out[::-1], Image.Resampling.BICUBIC))
            x = torch.from_numpy(np.ascontiguousarray(noise[:h, :w])).permute(2, 0, 1).unsqueeze(0)
            got = fast._resize(x)[0].permute(1, 2, 0).numpy()
            diff = np.abs(got.astype(int) - expected)
            assert diff.max() <= 2 and (diff > 0).mean() < 0.02, f"{h}x{w} -> {out}"


def test_without_randaugment_images_match_timm():
    """Crop, resize and flip alone: the same pixels up to the resize's rounding (at most 2 levels, on a small
    share of pixels). A wrong flip or box would differ everywhere."""
    timm_chain = _timm_chain(96, ra=None, color_jitter=None)
    fast = FastTrainTransform.from_timm(_timm_chain(96, ra=None, color_jitter=None))
    assert fast is not None and fast.rand_augment is None
    flips = 0
    for k in range(40):
        img = IMAGES[k % len(IMAGES)]
        expected, got = _with_the_same_draws(k, timm_chain, fast, img)
        assert got.shape == expected.shape == (3, 96, 96) and got.dtype == torch.uint8
        diff = (got.int() - expected.int()).abs()
        assert diff.max() <= 2 and (diff > 0).float().mean() < 0.02, f"sample {k}"
        _seed(k)
        flips += bool(torch.equal(fast(img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)), got)) is False
    assert flips > 0


def test_with_randaugment_images_match_timm():
    """The whole chain: the resize's one-level differences pass through RandAugment, where Solarize, Posterize
    or Equalize can turn a one-level difference into a larger one at a few pixels; on the typical image almost
    every pixel is equal."""
    timm_chain, fast = _timm_chain(), FastTrainTransform.from_timm(_timm_chain())
    shares = []
    for k in range(60):
        img = IMAGES[k % len(IMAGES)]
        expected, got = _with_the_same_draws(k, timm_chain, fast, img)
        shares.append(((got.int() - expected.int()).abs() > 1).float().mean().item())
    assert np.median(shares) < 0.005 and np.mean(shares) < 0.05


def test_array_input_is_the_same_as_pil_input():
    fast = FastTrainTransform.from_timm(_timm_chain())
    for k, img in enumerate(IMAGES[:4]):
        a, b = _with_the_same_draws(k, fast, fast, img, np.array(img))
        assert torch.equal(a, b)


def test_recipe_distribution_of_the_fast_transform():
    """The recipe's augmentation statistics (A2: crop area U(0.08, 1) of the image before the aspect-ratio
    fit, flip 0.5, two ops a sample each run with p 0.5, ops chosen uniformly, magnitude N(7, 0.5))."""
    cfg = load_recipe("a2")
    cfg.data.train_size = 64
    fast = train_transform(cfg.data, cfg.aug)
    assert isinstance(fast, FastTrainTransform)
    log, mags = [], []
    _record_draws(fast, log)
    for op in fast.rand_augment.ops:
        if op.level_fn is not None:
            op.level_fn = lambda m, hp, _fn=op.level_fn: (mags.append(m), _fn(m, hp))[1]
    img = IMAGES[0]
    n = 1500
    _seed(123)
    for _ in range(n):
        fast(img)
    boxes = [entry[1] for entry in log if entry[0] == "crop"]
    ops = [entry[0] for entry in log if entry[0] != "crop"]
    area = np.array([h * w for _, _, h, w in boxes]) / (img.size[0] * img.size[1])
    assert len(boxes) == n
    assert 0.40 < area.mean() < 0.60 and area.min() >= 0.079 and area.max() <= 1.0
    ratio = np.array([w / h for _, _, h, w in boxes])
    assert np.percentile(ratio, 5) < 0.85 and np.percentile(ratio, 95) > 1.15
    assert abs(len(ops) / (2 * n) - 0.5) < 0.05  # each of the two chosen ops runs with p 0.5
    counts = Counter(ops)
    assert len(counts) == 15 and min(counts.values()) > 0.5 * len(ops) / 15
    assert mags and abs(np.mean(mags) - 7.0) < 0.3 and 0.3 < np.std(mags) < 0.7


def test_fast_path_taken_only_for_chains_it_reproduces():
    assert FastTrainTransform.from_timm(_timm_chain()) is not None
    assert FastTrainTransform.from_timm(_timm_chain(ra=None, color_jitter=0.4)) is None
    assert FastTrainTransform.from_timm(_timm_chain(ra=None, color_jitter=0.0)) is None  # still draws
    assert FastTrainTransform.from_timm(_timm_chain(ra=None, color_jitter=None)) is not None
    assert FastTrainTransform.from_timm(_timm_chain(interpolation="random")) is None
    assert FastTrainTransform.from_timm(_timm_chain(ra="augmix-m5-w4-d2")) is None
    assert FastTrainTransform.from_timm(_timm_chain(ra="original")) is None
    assert FastTrainTransform.from_timm(_timm_chain(vflip=0.5)).vflip == 0.5


def test_recipes_use_the_fast_path_unless_switched_off():
    for name in ("a1", "a2", "a3"):
        cfg = load_recipe(name)
        assert cfg.run.fast_transform is True
        assert isinstance(train_transform(cfg.data, cfg.aug, cfg.run.fast_transform), FastTrainTransform)
        assert not isinstance(train_transform(cfg.data, cfg.aug, fast=False), FastTrainTransform)
    cfg = load_recipe("a2")
    cfg.aug.rand_augment, cfg.aug.color_jitter = "", 0.4  # colour jitter (timm drops it under RandAugment)
    assert not isinstance(train_transform(cfg.data, cfg.aug), FastTrainTransform)


# ---------------------------------------------------------------- the array decoder


def _save_variants(tmp_path):
    img = IMAGES[1]
    paths = {}
    for name, kw, mode in (("baseline", {}, "RGB"), ("progressive", {"progressive": True}, "RGB"),
                           ("grey", {}, "L"), ("cmyk", {}, "CMYK"), ("subsampling444", {"subsampling": 0}, "RGB")):
        paths[name] = tmp_path / f"{name}.JPEG"
        img.convert(mode).save(paths[name], quality=90, **kw)
    paths["png_named_jpeg"] = tmp_path / "png.JPEG"
    img.save(paths["png_named_jpeg"], format="PNG")
    return paths


def test_array_decoder_gives_pillows_pixels(tmp_path):
    for name, path in _save_variants(tmp_path).items():
        got = load_rgb_array(path)
        assert got.dtype == np.uint8 and got.ndim == 3 and got.shape[2] == 3, name
        np.testing.assert_array_equal(got, np.asarray(load_rgb(path)), err_msg=name)


def test_array_decoder_raises_on_damaged_data(tmp_path):
    bad = tmp_path / "bad.JPEG"
    IMAGES[0].save(tmp_path / "good.JPEG", quality=90)
    data = (tmp_path / "good.JPEG").read_bytes()
    bad.write_bytes(data[: len(data) // 3])
    with pytest.raises(Exception):
        load_rgb_array(bad)
    (tmp_path / "junk.JPEG").write_bytes(b"\xff\xd8 not a jpeg")
    with pytest.raises(Exception):
        load_rgb_array(tmp_path / "junk.JPEG")


def test_dataset_uses_array_decoder_and_items_are_reproducible(tmp_path, monkeypatch):
    monkeypatch.setenv("RSB_CACHE", str(tmp_path / "cache"))
    for c in range(2):
        (tmp_path / "data" / f"c{c}").mkdir(parents=True)
        for i in range(3):
            IMAGES[c * 3 + i].save(tmp_path / "data" / f"c{c}" / f"{i}.JPEG", quality=90)
    cfg = load_recipe("a2")
    cfg.data.train_size = 48
    ds = train_dataset(cfg, ImageFolderIndex(tmp_path / "data"))
    assert ds.decode is load_for_crop
    img, label, skipped = ds[(4, 99)]
    assert img.shape == (3, 48, 48) and img.dtype == torch.uint8 and label == 1 and skipped == 0
    assert torch.equal(ds[(4, 99)][0], img)  # the per-sample seed fixes every draw
    assert not torch.equal(ds[(4, 100)][0], img)


def test_malloc_tuning_is_applied_once_and_harmless():
    import platform

    from rsb.data import malloc
    first = malloc.keep_freed_memory_in_heap()
    assert malloc.keep_freed_memory_in_heap() is first
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert first is True
    big = torch.ones(3, 512, 512)  # allocations still work, above and below the new threshold
    assert float(big.sum()) == 3 * 512 * 512 and torch.zeros(64 << 20, dtype=torch.uint8).sum() == 0


def test_the_pipeline_pairs_each_transform_with_its_decoder_and_names_the_path(monkeypatch):
    from rsb.data import decode as decode_module, loader, tensor_ops
    from rsb.data.transforms import train_pipeline
    cfg = load_recipe("a2")
    fast = train_pipeline(cfg.data, cfg.aug, fast=True)
    timm_chain = train_pipeline(cfg.data, cfg.aug, fast=False)
    assert fast.fast and fast.decode is load_for_crop
    assert not timm_chain.fast and timm_chain.decode is load_rgb
    assert timm_chain.describe() == "timm's transform chain on PIL images (whole-image decode)"
    monkeypatch.setattr(decode_module, "_jpeg_region", None)
    monkeypatch.setattr(tensor_ops, "_compiled", None)
    assert fast.describe() == ("fast uint8 transform, whole-image decode (the by-region JPEG decoder is not "
                               "built), torch fallback for Shear/Translate/Sharpness (the C ops are not built)")
    # The loader tunes malloc for the fast path only, before it forks its workers.
    tuned = []
    monkeypatch.setattr(loader, "keep_freed_memory_in_heap", lambda: tuned.append(1))
    index = type("Index", (), {"labels": np.zeros(1, dtype=np.int64), "__len__": lambda self: 1})()
    cfg.run.fast_transform = False
    assert loader.train_dataset(cfg, index).decode is load_rgb and tuned == []
    cfg.run.fast_transform = True
    assert loader.train_dataset(cfg, index).decode is load_for_crop and tuned == [1]
