"""Lock the A1/A2/A3 recipe files to the reference values of /work/shared/RECIPES.md."""
from __future__ import annotations

import shutil

import pytest
import yaml

from rsb.config import RECIPE_DIR, Config, load_recipe
from rsb.errors import UserError

# The RECIPES.md table, one literal dict per recipe (dotted config key -> expected value).
# Rows of the table and where they live in the config:
#   epochs -> sched.epochs; train/test resolution -> data.train_size/test_size; test crop ratio -> data.test_crop_pct
#   global batch -> optim.reference_batch; optimizer -> optim.name; peak lr -> optim.lr; wd -> optim.weight_decay
#   warmup epochs -> sched.warmup_epochs; loss -> loss.name; BCE threshold -> loss.target_threshold
#   label smoothing -> loss.label_smoothing; dropout -> model.drop_rate; stochastic depth -> model.drop_path_rate
#   repeated augmentation (3 repeats / off) -> aug.repeated_aug (3 / 1); flip -> aug.hflip
#   RandomResizedCrop -> aug.scale, aug.ratio; RandAugment -> aug.rand_augment
#   Mixup / CutMix alpha -> aug.mixup_alpha / aug.cutmix_alpha; prob / switch -> aug.mix_prob / aug.mix_switch_prob
#   random erasing, color jitter off -> aug.random_erasing, aug.color_jitter = 0; EMA no -> train.ema
#   mixed precision yes -> train.amp; test interpolation -> data.test_interpolation
#   "Details the paper leaves open": max_grad_norm 1.0 (explicit), warmup_lr = min_lr = 1e-6
COMMON = {
    "data.test_size": 224,
    "data.test_crop_pct": 0.95,
    "optim.reference_batch": 2048,
    "optim.name": "lamb",
    "sched.warmup_epochs": 5,
    "loss.name": "bce",
    "loss.target_threshold": 0.2,
    "model.drop_rate": 0.0,
    "aug.hflip": 0.5,
    "aug.scale": [0.08, 1.0],
    "aug.ratio": [3 / 4, 4 / 3],
    "aug.cutmix_alpha": 1.0,
    "aug.mix_prob": 1.0,
    "aug.mix_switch_prob": 0.5,
    "aug.random_erasing": 0.0,
    "aug.color_jitter": 0.0,
    "train.ema": False,
    "train.amp": True,
    "data.test_interpolation": "bicubic",
    "optim.max_grad_norm": 1.0,
    "sched.warmup_lr": 1e-6,
    "sched.min_lr": 1e-6,
}

TABLE = {
    "a1": {
        **COMMON,
        "sched.epochs": 600,
        "data.train_size": 224,
        "optim.lr": 5e-3,
        "optim.weight_decay": 0.01,
        "loss.label_smoothing": 0.1,
        "model.drop_path_rate": 0.05,
        "aug.repeated_aug": 3,
        "aug.rand_augment": "rand-m7-mstd0.5-inc1",
        "aug.mixup_alpha": 0.2,
    },
    "a2": {
        **COMMON,
        "sched.epochs": 300,
        "data.train_size": 224,
        "optim.lr": 5e-3,
        "optim.weight_decay": 0.02,
        "loss.label_smoothing": 0.0,
        "model.drop_path_rate": 0.05,
        "aug.repeated_aug": 3,
        "aug.rand_augment": "rand-m7-mstd0.5-inc1",
        "aug.mixup_alpha": 0.1,
    },
    "a3": {
        **COMMON,
        "sched.epochs": 100,
        "data.train_size": 160,
        "optim.lr": 8e-3,
        "optim.weight_decay": 0.02,
        "loss.label_smoothing": 0.0,
        "model.drop_path_rate": 0.0,
        "aug.repeated_aug": 1,
        "aug.rand_augment": "rand-m6-mstd0.5-inc1",
        "aug.mixup_alpha": 0.1,
    },
}

CASES = [(r, k, v) for r, table in TABLE.items() for k, v in table.items()]


def _get(obj, dotted: str):
    for part in dotted.split("."):
        obj = obj[part] if isinstance(obj, dict) else getattr(obj, part)
    return obj


def _same(actual, expected) -> bool:
    if isinstance(expected, bool) or isinstance(expected, str) or expected is None:
        return actual == expected and type(actual) is type(expected)
    if isinstance(expected, list):
        return (isinstance(actual, list) and len(actual) == len(expected)
                and all(_same(a, e) for a, e in zip(actual, expected)))
    if isinstance(actual, bool):
        return False
    return actual == pytest.approx(expected, rel=1e-9, abs=0)


@pytest.fixture(scope="module")
def loaded():
    return {name: load_recipe(name) for name in TABLE}


@pytest.fixture(scope="module")
def raw():
    return {name: yaml.safe_load((RECIPE_DIR / f"{name}.yaml").read_text()) for name in TABLE}


@pytest.mark.parametrize("recipe,key,expected", CASES, ids=[f"{r}-{k}" for r, k, _ in CASES])
def test_recipe_value(loaded, recipe, key, expected):
    actual = _get(loaded[recipe], key)
    assert _same(actual, expected), f"{recipe}: {key} = {actual!r}, RECIPES.md says {expected!r}"


@pytest.mark.parametrize("recipe,key,expected", CASES, ids=[f"{r}-{k}" for r, k, _ in CASES])
def test_recipe_value_written_in_file(raw, recipe, key, expected):
    """Every reference value is written in the file itself, not inherited from a dataclass default."""
    section, leaf = key.split(".")
    assert leaf in raw[recipe][section], f"{recipe}.yaml does not set {key} explicitly"
    actual = _get(raw[recipe], key)
    assert _same(actual, expected), f"{recipe}.yaml: {key} = {actual!r}, RECIPES.md says {expected!r}"


@pytest.mark.parametrize("recipe", sorted(TABLE))
def test_recipe_name_and_type(loaded, recipe):
    cfg = loaded[recipe]
    assert isinstance(cfg, Config)
    assert cfg.name == recipe
    assert cfg.model.name == "resnet50"
    assert cfg.model.num_classes == 1000


@pytest.mark.parametrize("recipe", sorted(TABLE))
def test_recipe_global_batch_default_is_reference(loaded, recipe):
    # 8 devices x 256 = 2048, the reference batch (the batch includes the repeated-augmentation copies).
    cfg = loaded[recipe]
    assert cfg.train.batch_per_device * 8 == cfg.optim.reference_batch == 2048


@pytest.mark.parametrize("recipe", sorted(TABLE))
def test_recipe_files_are_commented(recipe):
    text = (RECIPE_DIR / f"{recipe}.yaml").read_text()
    assert "#" in text
    lines = text.splitlines()
    # The choices RECIPES.md asks to record beside the value carry a comment on or just above their line.
    for key in ("max_grad_norm:", "warmup_lr:", "label_smoothing:", "repeated_aug:"):
        idx = next(i for i, line in enumerate(lines) if line.strip().startswith(key))
        nearby = lines[max(0, idx - 3): idx + 1]
        assert any("#" in line for line in nearby), f"{recipe}.yaml: no comment near {key}"


def test_python_tag_is_rejected_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    bad = tmp_path / "evil.yaml"
    bad.write_text(f"name: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(UserError):
        load_recipe(str(bad))
    assert not marker.exists()


def test_recipe_loads_from_path(tmp_path):
    dst = tmp_path / "mine.yaml"
    shutil.copy(RECIPE_DIR / "a2.yaml", dst)
    text = dst.read_text().replace("epochs: 300", "epochs: 7")
    assert text != dst.read_text()
    dst.write_text(text)
    cfg = load_recipe(str(dst))
    assert cfg.sched.epochs == 7
    assert cfg.optim.lr == pytest.approx(5e-3)
    assert cfg.name == "a2"


def test_missing_recipe_path_is_user_error(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_recipe(str(tmp_path / "nope.yaml"))


def test_invalid_yaml_is_user_error(tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("optim: [unclosed\n")
    with pytest.raises(UserError):
        load_recipe(str(bad))


@pytest.mark.parametrize("recipe", sorted(TABLE))
def test_every_config_key_is_written_in_every_recipe_file(raw, recipe):
    """A recipe file is complete: no value comes silently from a dataclass default."""
    import dataclasses
    for section in dataclasses.fields(Config):
        if not dataclasses.is_dataclass(section.default_factory if section.default_factory is not
                                        dataclasses.MISSING else None):
            continue
        keys = {f.name for f in dataclasses.fields(section.default_factory)}
        assert section.name in raw[recipe], f"{recipe}.yaml has no '{section.name}' section"
        missing = keys - set(raw[recipe][section.name])
        assert not missing, f"{recipe}.yaml does not set {sorted(missing)} in '{section.name}'"


def test_run_policy_is_its_own_section():
    from rsb.config import RunConfig, TrainConfig, recipe_values, to_dict
    policy = {"log_every", "eval_every", "checkpoint_every_minutes", "checkpoint_every_steps", "keep_checkpoints",
              "nonfinite", "deterministic", "fast_transform", "max_bad_image_fraction"}
    assert policy == set(RunConfig.__dataclass_fields__)
    assert not policy & set(TrainConfig.__dataclass_fields__)
    assert "run" not in recipe_values(to_dict(load_recipe("a2")))
