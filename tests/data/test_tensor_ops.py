"""Each tensor RandAugment op against timm's Pillow op on the same image and the same arguments."""
import numpy as np
import pytest
import torch
from PIL import Image
from timm.data import auto_augment as timm_aa

from rsb.data import tensor_ops

FILL = (124, 116, 104)  # timm's img_mean fill for ImageNet's mean


def _images():
    """Photo-like test images: smooth colour fields with edges and noise, plus a flat and a two-level image
    (the histogram ops' corner cases), in square and non-square sizes."""
    rng = np.random.default_rng(0)
    out = []
    for h, w in ((64, 64), (48, 80), (81, 37)):
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([np.sin(xx / rng.uniform(3, 9) + c) * np.cos(yy / rng.uniform(3, 9)) for c in range(3)], -1)
        img = 128 + 90 * base + rng.normal(0, 12, (h, w, 3))
        img[h // 3: h // 2, w // 4: w // 2] = rng.uniform(0, 255, 3)
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    out.append(np.full((32, 40, 3), 77, np.uint8))
    two = np.zeros((32, 32, 3), np.uint8)
    two[:, 16:] = 200
    out.append(two)
    return out


IMAGES = _images()

# (timm op name, argument tuples) in the ranges RandAugment produces (timm's level_to_arg functions).
EXACT_OPS = {
    "AutoContrast": [()], "Equalize": [()], "Invert": [()],
    "PosterizeIncreasing": [(1,), (2,), (4,), (8,)], "Posterize": [(6,)],
    "SolarizeIncreasing": [(0,), (100,), (256,)], "Solarize": [(180,)], "SolarizeAdd": [(0,), (77,), (110,)],
    "ColorIncreasing": [(0.1,), (0.63,), (1.0,), (1.9,)], "ContrastIncreasing": [(0.1,), (0.7,), (1.55,)],
    "BrightnessIncreasing": [(0.1,), (0.99,), (1.9,)], "SharpnessIncreasing": [(0.1,), (0.5,), (1.9,)],
    "Rotate": [(0.0,), (21.3,), (-29.9,), (90.0,), (180.0,), (-90.0,)],
}
AFFINE_OPS = {
    "ShearX": [(0.21,), (-0.3,), (0.0,)], "ShearY": [(0.17,), (-0.29,)],
    "TranslateXRel": [(0.31,), (-0.123,), (0.0,), (0.45,)], "TranslateYRel": [(0.2,), (-0.44,)],
    "TranslateX": [(10.5,), (-3.0,)], "TranslateY": [(7.25,)],
}


def _run_both(name, args, img, resample):
    kwargs = dict(fillcolor=FILL, resample=resample)
    expected = np.asarray(timm_aa.NAME_TO_OP[name](Image.fromarray(img), *args, **dict(kwargs))).astype(int)
    chw = torch.from_numpy(img).permute(2, 0, 1).contiguous()
    got = tensor_ops.NAME_TO_TENSOR_OP[name](chw, *args, **dict(kwargs))
    assert got.dtype == torch.uint8 and got.shape == chw.shape and got.is_contiguous()
    return expected, got.permute(1, 2, 0).numpy().astype(int)


@pytest.fixture(params=["compiled", "torch"])
def compiled_or_torch(request, monkeypatch):
    """Shear, Translate and Sharpness run rsb/data/_augment.c when it was built, else torch; both are checked
    (the other ops have one implementation, the same under both params)."""
    if request.param == "torch":
        monkeypatch.setattr(tensor_ops, "_compiled", None)
    elif tensor_ops._compiled is None:
        pytest.skip("rsb.data._augment not built")
    return request.param


@pytest.mark.parametrize("name", sorted(EXACT_OPS))
def test_op_equals_timm(name, compiled_or_torch):
    for args in EXACT_OPS[name]:
        for resample in (Image.Resampling.BICUBIC, Image.Resampling.BILINEAR):
            for img in IMAGES:
                expected, got = _run_both(name, args, img, resample)
                np.testing.assert_array_equal(got, expected, err_msg=f"{name}{args} {img.shape}")


@pytest.mark.parametrize("name", sorted(AFFINE_OPS))
def test_affine_op_matches_timm_within_one_level(name, compiled_or_torch):
    # Pillow's formula in single precision against Pillow's double: where the exact value sits on an integer
    # (a shift like 0.31 * 80 = 24.8 makes (b - a) * 0.8 an integer for many pixel pairs), the two roundings can
    # truncate one level apart. Nothing else may differ: fill region, edges, direction, flat areas.
    for args in AFFINE_OPS[name]:
        for resample in (Image.Resampling.BICUBIC, Image.Resampling.BILINEAR):
            for img in IMAGES:
                expected, got = _run_both(name, args, img, resample)
                diff = np.abs(got - expected)
                where = f"{name}{args} {img.shape} resample={resample}"
                assert diff.max() <= 1, f"{where}: max diff {diff.max()}"
                assert diff.mean() < 0.1, f"{where}: mean diff {diff.mean():.3f}"
                if len(np.unique(img)) == 1:  # a flat image: exact (Pillow's form is exact there, and so is ours)
                    assert diff.max() == 0, where


def test_affine_fill_region_is_pillows(compiled_or_torch):
    """A large translation leaves most of the image filled; the boundary between fill and image is Pillow's."""
    img = IMAGES[0]
    for name, args in (("TranslateXRel", (0.45,)), ("TranslateYRel", (-0.44,)), ("ShearX", (-0.3,))):
        expected, got = _run_both(name, args, img, Image.Resampling.BICUBIC)
        np.testing.assert_array_equal((got == FILL).all(-1), (expected == FILL).all(-1))


def test_compiled_is_built_where_required():
    # .ci/run sets this: the CI machine has a C compiler, so a missing extension there is a build bug.
    import os
    if os.environ.get("RSB_REQUIRE_JPEG_REGION") == "1":
        assert tensor_ops._compiled is not None


def test_compiled_rejects_inconsistent_arguments():
    if tensor_ops._compiled is None:
        pytest.skip("rsb.data._augment not built")
    with pytest.raises(ValueError):
        tensor_ops._compiled.shift_lines(bytes(10), 3, 2, 2, 2, np.zeros(2).tobytes(), 1, FILL)
    with pytest.raises(ValueError):
        tensor_ops._compiled.sharpness(bytes(11), 3, 2, 2, 1.5)


def test_every_randaugment_op_name_has_a_tensor_op():
    for name in timm_aa._RAND_INCREASING_TRANSFORMS + timm_aa._RAND_TRANSFORMS:
        assert name in tensor_ops.NAME_TO_TENSOR_OP, name


def test_other_resample_filters_behave_as_pillow(compiled_or_torch):
    """Filters without a vectorised path go to Pillow itself: nearest gives Pillow's pixels, Lanczos its error."""
    expected, got = _run_both("ShearX", (0.2,), IMAGES[0], Image.Resampling.NEAREST)
    np.testing.assert_array_equal(got, expected)
    chw = torch.zeros(3, 8, 8, dtype=torch.uint8)
    with pytest.raises(ValueError):
        tensor_ops.shear_x(chw, 0.2, resample=Image.Resampling.LANCZOS, fillcolor=FILL)
