"""The batch rule, steps per epoch and derived values of rsb.training.plan; the config checks it relies on."""
from __future__ import annotations

import math

import pytest

from rsb.config.checks import check_config
from rsb.config.load import apply_overrides, load_recipe
from rsb.data.families.imagenet import TRAIN_IMAGES
from rsb.errors import UserError
from rsb.training.plan import resolve

N = TRAIN_IMAGES


def cfg_with(recipe="a2", *overrides):
    return apply_overrides(load_recipe(recipe), list(overrides))


def test_imagenet_constant():
    assert TRAIN_IMAGES == 1_281_167


def test_reference_batch_8_devices():
    d = resolve(cfg_with("a2", "train.batch_per_device=256"), world_size=8, train_images=N)
    assert d.accum_steps == 1
    assert d.global_batch == 2048
    assert d.lr == 5e-3
    assert d.world_size == 8 and d.batch_per_device == 256


def test_one_device_accumulates_8():
    d = resolve(cfg_with("a2"), world_size=1, train_images=N)
    assert d.accum_steps == 8
    assert d.global_batch == 2048
    assert d.lr == 5e-3
    assert "accumulate" in d.batch_rule_applied


def test_batch_64_accumulates_32():
    d = resolve(cfg_with("a3", "train.batch_per_device=64", "optim.batch_rule=accumulate"), 1, N)
    assert d.accum_steps == 32
    assert d.global_batch == 2048
    assert d.lr == 8e-3


def test_batch_not_dividing_reference_falls_back_to_linear():
    d = resolve(cfg_with("a2", "train.batch_per_device=96"), 1, N)
    assert d.accum_steps == 1
    assert d.global_batch == 96
    assert d.lr == pytest.approx(5e-3 * 96 / 2048, rel=1e-12)
    assert "linear" in d.batch_rule_applied


def test_linear_rule():
    d = resolve(cfg_with("a2", "train.batch_per_device=128", "optim.batch_rule=linear"), 2, N)
    assert d.accum_steps == 1
    assert d.global_batch == 256
    assert d.lr == pytest.approx(5e-3 * 256 / 2048, rel=1e-12)


def test_sqrt_rule():
    d = resolve(cfg_with("a3", "train.batch_per_device=128", "optim.batch_rule=sqrt"), 2, N)
    assert d.accum_steps == 1
    assert d.lr == pytest.approx(8e-3 * math.sqrt(256 / 2048), rel=1e-12)


def test_none_rule():
    d = resolve(cfg_with("a2", "train.batch_per_device=128", "optim.batch_rule=none"), 1, N)
    assert d.accum_steps == 1
    assert d.global_batch == 128
    assert d.lr == 5e-3


@pytest.mark.parametrize("rule", ["accumulate", "linear", "sqrt", "none"])
def test_every_rule_keeps_lr_at_reference_batch(rule):
    d = resolve(cfg_with("a1", f"optim.batch_rule={rule}"), 8, N)
    assert d.accum_steps == 1 and d.lr == 5e-3


def test_larger_batch_than_reference_scales_up_under_accumulate():
    d = resolve(cfg_with("a2", "train.batch_per_device=512"), 8, N)
    assert d.accum_steps == 1
    assert d.lr == pytest.approx(5e-3 * 4096 / 2048)


@pytest.mark.parametrize("world,batch", [(8, 256), (1, 256), (4, 256), (2, 512), (1, 64)])
def test_imagenet_steps_per_epoch(world, batch):
    cfg = cfg_with("a1", f"train.batch_per_device={batch}")
    d = resolve(cfg, world, N)
    # The documented rule (rsb.data.sampler): the epoch is dealt over world x accum lanes (at least 3 with
    # repeats), each lane keeps ceil(N / lanes) samples cut to whole batches; a device holds lanes / world lanes.
    lanes = d.sampler_lanes
    v = world * d.accum_steps
    assert lanes == v * math.ceil(3 / v)
    per_lane_batches = math.ceil(N / lanes) // batch
    assert d.samples_per_device == per_lane_batches * batch * (lanes // world)
    expected = d.samples_per_device // batch // d.accum_steps
    assert d.steps_per_epoch == expected
    assert d.global_batch == 2048
    # RECIPES.md: 1,281,167 / 2048 ~ 626 steps per epoch.
    assert abs(d.steps_per_epoch - 626) <= 1


def test_imagenet_8x256_exact():
    d = resolve(cfg_with("a1"), 8, N)
    # ceil(1,281,167 / 8) = 160,146 per lane, cut to 625 whole batches of 256
    assert d.sampler_lanes == 8 and d.samples_per_device == 160_000
    assert d.steps_per_epoch == 625


@pytest.mark.parametrize("world", [1, 2, 4, 8])
def test_one_gpu_accumulating_sees_the_steps_of_eight(world):
    """1 x 8 micro-steps, 2 x 4, 4 x 2 and 8 x 1 deal over the same 8 lanes: the same steps per epoch."""
    d = resolve(cfg_with("a2"), world, N)
    assert (d.sampler_lanes, d.accum_steps * world, d.steps_per_epoch) == (8, 8, 625)


@pytest.mark.parametrize("recipe", ["a1_timm2021", "a2_timm2021", "a3_timm2021"])
@pytest.mark.parametrize("world,accum", [(1, 4), (2, 2), (4, 1)])
def test_timm2021_recipes_hold_512_per_device_over_4_lanes(recipe, world, accum):
    """The paper's 4 GPUs x 512: batch-norm statistics and Mixup partners over 512 images, the repeated copies
    dealt over 4 replicas. One process gets there by 4 accumulation steps of 512 over 4 sampler lanes, 2 by 2."""
    d = resolve(cfg_with(recipe), world, N)
    assert (d.batch_per_device, d.accum_steps, d.global_batch, d.sampler_lanes) == (512, accum, 2048, 4)
    assert d.lr == load_recipe(recipe).optim.lr  # at the reference batch: the recipe's lr as is
    # ceil(1,281,167 / 4) = 320,292 per lane, cut to 625 whole batches of 512: the 8 x 256 runs' 625 steps
    assert (d.samples_per_device * world, d.steps_per_epoch) == (1_280_000, 625)


@pytest.mark.parametrize("recipe,epochs,approx_total", [("a1", 600, 375_000), ("a2", 300, 188_000),
                                                         ("a3", 100, 63_000)])
def test_total_and_warmup_steps(recipe, epochs, approx_total):
    d = resolve(cfg_with(recipe), 8, N)
    assert d.total_steps == d.steps_per_epoch * epochs
    assert d.warmup_steps == d.steps_per_epoch * 5
    # RECIPES.md rounds to ~375k / ~188k / ~63k (626 steps x epochs, rounded to thousands)
    assert abs(d.total_steps - approx_total) / approx_total < 0.01


def test_fractional_warmup_rounds():
    d = resolve(cfg_with("a2", "sched.warmup_epochs=0.5"), 8, 2048 * 11)
    assert d.steps_per_epoch == 11
    assert d.warmup_steps == round(11 * 0.5)


def test_small_dataset_steps():
    d = resolve(cfg_with("a2", "train.batch_per_device=32"), 1, 2600)
    # 2048 / 32 = 64 accumulation steps; 2600 // 32 = 81 batches -> 1 optimizer step.
    assert d.accum_steps == 64 and d.steps_per_epoch == 1


def test_too_small_dataset():
    with pytest.raises(UserError, match="too few"):
        resolve(cfg_with("a2"), 8, 1000)
    with pytest.raises(UserError, match="batch_per_device"):
        # accumulation to 2048 needs 2048 images on one device
        resolve(cfg_with("a2", "train.batch_per_device=64"), 1, 2000)


def test_odd_batch_with_mixup_is_rejected():
    with pytest.raises(UserError, match="even"):
        check_config(cfg_with("a2", "train.batch_per_device=255"))


def test_odd_batch_without_mixing_is_allowed():
    d = resolve(cfg_with("a2", "train.batch_per_device=255", "aug.mixup_alpha=0", "aug.cutmix_alpha=0",
                         "optim.batch_rule=linear"), 1, N)
    assert d.batch_per_device == 255


def test_invalid_batch_rule():
    with pytest.raises(UserError, match="batch_rule"):
        resolve(cfg_with("a2", "optim.batch_rule=cubic"), 1, N)


@pytest.mark.parametrize("override,word", [
    ("optim.name=rmsprop", "optim.name"),
    ("loss.name=mse", "loss.name"),
    ("train.amp_dtype=float8", "amp_dtype"),
    ("sched.epochs=0", "sched.epochs"),
    ("sched.warmup_epochs=300", "warmup_epochs"),
    ("optim.lr=0", "optim.lr"),
    ("aug.repeated_aug=0", "repeated_aug"),
    ("aug.scale=[0.1]", "aug.scale"),
    ("data.test_crop_pct=1.5", "test_crop_pct"),
    ("model.num_classes=1", "num_classes"),
])
def test_check_config_rejects(override, word):
    with pytest.raises(UserError, match=word.replace(".", r"\.")):
        check_config(cfg_with("a2", override))


@pytest.mark.parametrize("recipe", ["a1", "a2", "a3"])
def test_recipes_pass_check(recipe):
    check_config(load_recipe(recipe))


def test_derived_values_in_resolved_yaml_are_plain():
    from rsb.training.plan import resolved_document
    d = resolved_document(cfg_with("a2"), resolve(cfg_with("a2"), 1, N))["derived"]
    assert d["accum_steps"] == 8 and isinstance(d["batch_rule_applied"], str)


def test_the_input_path_and_versions_are_named_with_one_warning_for_missing_extensions(monkeypatch, tmp_path):
    import rsb
    from rsb.data import decode, tensor_ops
    from rsb.training.plan import startup_lines
    fast = resolve(cfg_with("a2"), 1, 1_281_167)
    assert fast.input_path.startswith("fast uint8 transform, ")
    lines = startup_lines(cfg_with("a2"), fast, "cpu", tmp_path)
    assert lines[0].startswith(f"rsb {rsb.__version__}, torch ") and " timm " in lines[0]
    assert f"input: {fast.input_path}" in lines
    timm_chain = resolve(cfg_with("a2", "run.fast_transform=false"), 1, 1_281_167)
    assert timm_chain.input_path == "timm's transform chain on PIL images (whole-image decode)"
    monkeypatch.setattr(decode, "_jpeg_region", None)
    monkeypatch.setattr(tensor_ops, "_compiled", None)
    slow = resolve(cfg_with("a2"), 1, 1_281_167)
    lines = startup_lines(cfg_with("a2"), slow, "cpu", tmp_path)
    warnings = [line for line in lines if line.startswith("warning:")]
    assert len(warnings) == 1 and "apt-get install gcc libjpeg-dev" in warnings[0] and "pip install" in warnings[0]
    assert not [line for line in startup_lines(cfg_with("a2"), timm_chain, "cpu", tmp_path) if "warning" in line]


@pytest.mark.parametrize("recipe,overrides,world,scale", [
    ("a2", [], 8, 1.0), ("a2", [], 1, 1.0),  # the reference batch, or accumulation up to it: the recipe's lr
    ("a2", ["train.batch_per_device=96"], 1, 96 / 2048),  # accumulate falls back to linear
    ("a2", ["train.batch_per_device=128", "optim.batch_rule=linear"], 2, 256 / 2048),
    ("a3", ["train.batch_per_device=128", "optim.batch_rule=sqrt"], 2, math.sqrt(256 / 2048)),
    ("a2", ["train.batch_per_device=128", "optim.batch_rule=none"], 1, 1.0)])
def test_the_lr_scale_is_the_batch_rules_factor_computed_once(recipe, overrides, world, scale):
    """The schedule takes Derived.lr_scale as computed (the step warm-up's lr), not a ratio of lr back out."""
    cfg = cfg_with(recipe, *overrides)
    d = resolve(cfg, world, N)
    assert d.lr_scale == pytest.approx(scale, rel=1e-15)
    assert d.lr == pytest.approx(cfg.optim.lr * d.lr_scale, rel=1e-15)


def test_the_config_is_checked_once_where_the_run_builds_it(monkeypatch):
    """build_config checks (the schema's rules and the family's); resolve and --print-config do not again."""
    from rsb.data.families import imagenet
    from rsb.training import run_config
    from rsb.training.plan import print_config
    calls = []
    monkeypatch.setattr(run_config, "check_config", lambda cfg: calls.append("schema"))
    monkeypatch.setattr(imagenet.ImageNet, "check", lambda self, cfg: calls.append("family"))
    cfg = run_config.build_config("a2", ["train.batch_per_device=32"], sample=True)
    resolve(cfg, 1, 2600)
    print_config(cfg, sample=True, device="cpu")
    assert calls == ["schema", "family"]
    odd = cfg_with("a2", "train.batch_per_device=255")  # built around build_config: resolve takes it as it is
    assert resolve(odd, 1, N).batch_per_device == 255
