"""The dataset-family seam (rsb.data.families): the registry, each family's rules, data and facts, no family name
tested outside the seam, and a third family registered by a test alone going through the plan and a training run."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from rsb.config.load import RECIPE_DIR, available_recipes, load_recipe
from rsb.data.families import registry
from rsb.data.families.registry import Family, TrainingSet, family, family_named
from rsb.errors import UserError
from rsb.training.run_config import build_config
from tests._tiny import TINY_OVERRIDES, tiny_data

RSB = Path(__file__).resolve().parents[2] / "rsb"


# ---- the registry ------------------------------------------------------------------------------------------

def test_the_registry_finds_the_two_families_default_first():
    assert registry.names() == ["imagenet", "cifar10"]
    assert [f.name for f in registry.families()] == ["imagenet", "cifar10"]
    assert family(load_recipe("a2")).full_name == "ImageNet-1k"
    assert family(load_recipe("cifar10_resnet")).full_name == "CIFAR-10"


@pytest.mark.parametrize("sample", [False, True])
def test_an_unknown_family_is_one_sentence_naming_the_nearest(sample):
    sentence = "data.dataset must be one of imagenet, cifar10; got 'cifar100' (did you mean 'cifar10'?)."
    with pytest.raises(UserError) as e:
        family_named("cifar100")
    assert str(e.value) == sentence
    with pytest.raises(UserError) as e:  # the run's config, with or without the sample overlay
        build_config("a2", ["data.dataset=cifar100"], sample=sample)
    assert str(e.value) == sentence
    with pytest.raises(UserError, match="got 'imagnet' .did you mean 'imagenet'"):
        build_config("cifar10_resnet", ["data.dataset=imagnet"], sample=False)


def test_no_module_outside_the_seam_tests_a_family_name():
    names = "|".join(registry.names())
    compared = re.compile(rf"""(==|!=|\bin)\s*\(?\s*["']({names})["']|["']({names})["']\s*(==|!=|\bin\b|\bnot in\b)""")
    offenders = [f"{p.relative_to(RSB)}:{n}" for p in RSB.rglob("*.py") if "families" not in p.parts
                 for n, line in enumerate(p.read_text().splitlines(), 1)
                 if compared.search(line) or re.search(r"\.dataset\s*(==|!=|\bin\b)", line)]
    assert offenders == []


# ---- each family's rules -----------------------------------------------------------------------------------

@pytest.mark.parametrize("override,message", [
    ("data.train_size=48", "data.train_size and data.test_size must be 32 for data.dataset=cifar10 (its images are "
                           "not resized)."),
    ("aug.color_jitter=0.4", "aug.rand_augment and aug.color_jitter are not applied to CIFAR-10 "
                             "(data.dataset=cifar10); clear them."),
    ("aug.ratio=[0.75,1.33]", "aug.scale and aug.ratio must be [1.0, 1.0] for data.dataset=cifar10 (no "
                              "RandomResizedCrop there)."),
    ("model.num_classes=100", "CIFAR-10 has 10 classes but model.num_classes is 100; set model.num_classes=10."),
])
def test_cifar10_rules(override, message):
    from rsb.config.load import apply_overrides
    cifar = family_named("cifar10")
    cifar.check(load_recipe("cifar10_resnet"))  # the recipe passes
    with pytest.raises(UserError) as e:
        cifar.check(apply_overrides(load_recipe("cifar10_resnet"), [override]))
    assert str(e.value) == message
    with pytest.raises(UserError, match=re.escape(message)):  # and a run's config is checked with them
        build_config("cifar10_resnet", [override], sample=True)


def test_imagenet_rules():
    from rsb.config.load import apply_overrides
    imagenet = family_named("imagenet")
    imagenet.check(load_recipe("a2"))
    for recipe in ("a2", "cifar10_resnet"):  # the CIFAR rules do not apply to ImageNet, nor the reverse
        cfg = apply_overrides(load_recipe(recipe), ["data.dataset=imagenet", "data.normalize=pixel_mean"])
        with pytest.raises(UserError) as e:
            imagenet.check(cfg)
        assert str(e.value) == ("data.normalize=pixel_mean is for data.dataset=cifar10 (an ImageNet mean image is "
                                "not computed).")
    assert build_config("a2", ["data.train_size=48", "aug.color_jitter=0.4"], sample=False).data.train_size == 48


# ---- each family's facts and data --------------------------------------------------------------------------

def test_overlays_counts_and_input_paths():
    imagenet, cifar = family_named("imagenet"), family_named("cifar10")
    for fam in (imagenet, cifar):
        assert fam.sample_scale_file.parent == RECIPE_DIR and fam.sample_scale_file.is_file()
        assert fam.sample_scale_file.stem not in available_recipes()
    assert (imagenet.train_images(False), imagenet.train_images(True)) == (1_281_167, 2600)
    assert (cifar.train_images(False), cifar.train_images(True)) == (50_000, 2000)
    assert cifar.sample_scale()["sched"]["milestones"] == [100, 150]
    a2 = load_recipe("a2")
    assert imagenet.input_path(a2).startswith("fast uint8 transform")
    a2.run.fast_transform = False
    assert imagenet.input_path(a2) == "timm's transform chain on PIL images (whole-image decode)"
    assert cifar.input_path(load_recipe("cifar10_resnet")).startswith("CIFAR arrays in memory")


def test_imagenet_opens_any_layout_and_builds_its_training_pipeline_once(tmp_path, monkeypatch):
    from rsb.data import loader
    from rsb.data.transforms import TrainPipeline
    built = []
    real = loader.train_pipeline
    monkeypatch.setattr(loader, "train_pipeline", lambda *a: built.append(1) or real(*a))
    data, log = tiny_data(tmp_path / "data"), []
    for fast in ("true", "false"):
        cfg = build_config("a2", [*TINY_OVERRIDES, f"run.fast_transform={fast}"], sample=False)
        train, val = family(cfg).open(data, cfg, log.append)
        assert isinstance(train, TrainingSet) and len(train) == 100 and len(val) == 40
        assert train.input_path == TrainPipeline(train.dataset.transform, train.dataset.decode).describe()
        assert train.input_path.startswith("fast uint8" if fast == "true" else "timm's transform chain")
    assert len(built) == 2  # one pipeline per opened training set, described as built
    cfg = build_config("a2", TINY_OVERRIDES[1:], sample=False)  # model.num_classes stays 1000
    with pytest.raises(UserError, match=re.escape(f"the training data in {data} has 10 classes but model.num_classes "
                                                  f"is 1000; set model.num_classes=10.")):
        family(cfg).open(data, cfg, log.append)


def test_imagenet_names_cifar_data_given_to_it(tmp_path):
    cfg = build_config("a2", TINY_OVERRIDES, sample=False)
    (tmp_path / "cifar-10-batches-py").mkdir()
    with pytest.raises(UserError) as e:
        family(cfg).open(tmp_path, cfg, print)
    assert str(e.value) == (f"{tmp_path} looks like CIFAR-10, but the recipe reads an ImageNet folder; use --recipe "
                            f"cifar10_resnet (or set data.dataset=cifar10).")


def test_cifar10_opens_its_sample_with_a_mean_image_and_its_test_split(tmp_path, monkeypatch):
    monkeypatch.setenv("RSB_CACHE", str(tmp_path / "cache"))
    from rsb.data import cifar
    monkeypatch.setattr(cifar, "SAMPLE_SPLITS", {"train": 12, "test": 3})
    cfg, log = build_config("cifar10_resnet", ["data.val_holdout=20"], sample=False), []
    fam = family(cfg)
    train, val = fam.open(None, cfg, log.append)
    assert (len(train), len(val), train.input_path) == (100, 20, cifar.INPUT_PATH)
    assert log[0].startswith("no --data given: built-in sample data at ") and "sample_scale_cifar10.yaml" in log[0]
    mean = fam.mean_image(cfg, train)
    assert mean.shape == (3, 32, 32) and np.allclose(mean.numpy(), train.dataset.mean_image().numpy())
    cfg.data.normalize = "channel"
    assert fam.mean_image(cfg, train) is None and fam.loader_workers(8) == 0
    assert len(fam.test_split(None, log.append)) == 30 and fam.own_test_split
    assert not family_named("imagenet").own_test_split


# ---- a third family: one module's worth, registered by this test alone ----------------------------------------

class Squares(Family):
    """Bright squares on dark backgrounds at 16x16, as arrays: what a new family module would hold."""
    name, full_name, reads, recipe = "squares", "Squares-4", "a squares folder", "cifar10_resnet"
    augments_on_device = True

    def __init__(self, overlay: Path):
        self.sample_scale_file = overlay

    def check(self, cfg):
        if cfg.data.train_size != 16:
            raise UserError("data.train_size must be 16 for data.dataset=squares.")

    def train_images(self, sample):
        return 64 if sample else 4000

    sample_classes = 4

    def ensure_sample(self):
        return Path("/nowhere/squares-sample")

    def input_path(self, cfg):
        return "squares drawn in memory"

    def open(self, root, cfg, log, val_labels=None):
        from rsb.data.cifar import ArraySplit
        self.use_sample(log)
        rng = np.random.default_rng(0)
        labels = np.arange(80) % 4
        images = (rng.integers(0, 40, (80, 16, 16, 3)) + 180 * (labels[:, None, None, None] == np.arange(3))
                  ).astype(np.uint8)
        split = lambda s: ArraySplit(images[s], labels[s], "squares")  # noqa: E731
        return TrainingSet(split(slice(0, 64)), self.input_path(cfg)), split(slice(64, 80))

    def loader_workers(self, workers):
        return 0

    def eval_loader(self, cfg, val, *, workers, rank, world):
        from rsb.data.cifar import array_eval_loader
        return array_eval_loader(val, cfg.train.batch_per_device, rank=rank, world=world)


@pytest.fixture
def squares(tmp_path, monkeypatch):
    overlay = tmp_path / "sample_scale_squares.yaml"
    overlay.write_text(yaml.safe_dump({"model": {"num_classes": 4, "name": "cifar_resnet20"},
                                       "data": {"train_size": 16, "test_size": 16, "val_holdout": 0},
                                       "optim": {"batch_rule": "accumulate", "reference_batch": 16},
                                       "sched": {"max_steps": 4, "milestones": [2, 3]},
                                       "train": {"batch_per_device": 8, "amp": False}}))
    fam = Squares(overlay)
    monkeypatch.setitem(registry.registered(), fam.name, fam)
    return fam


def test_a_third_family_goes_through_the_config_and_the_plan(squares):
    from rsb.training.plan import assumed_train_images, print_config
    assert registry.names() == ["imagenet", "cifar10", "squares"]
    cfg = build_config("cifar10_resnet", ["data.dataset=squares"], sample=True)
    assert (cfg.data.train_size, cfg.model.num_classes, cfg.sched.max_steps) == (16, 4, 4)  # its overlay
    with pytest.raises(UserError, match="must be 16 for data.dataset=squares"):
        build_config("cifar10_resnet", ["data.dataset=squares", "data.train_size=32"], sample=True)
    assert assumed_train_images(cfg, sample=True) == 64
    text = print_config(cfg, sample=True, device="cpu")
    assert text.startswith("# resolved for built-in sample data at sample scale (sample_scale_squares.yaml)")
    derived = yaml.safe_load(text.split("\n", 1)[1])["derived"]
    assert derived["input_path"] == "squares drawn in memory" and derived["train_images"] == 64
    full = build_config("cifar10_resnet", ["data.dataset=squares", "data.train_size=16", "data.test_size=16",
                                           "data.val_holdout=0"], sample=False)
    assert print_config(full, sample=False, device="cpu").startswith(
        "# resolved for Squares-4 (4000 train images assumed, data not read)")


def test_a_third_family_trains(squares, tmp_path):
    from rsb.runtime import distributed
    from rsb.training.trainer import LaunchOptions, Trainer
    cfg = build_config("cifar10_resnet", ["data.dataset=squares"], sample=True)
    trainer = Trainer(cfg, LaunchOptions(data=None, output=tmp_path / "run", workers=2, device="cpu", quiet=True))
    try:
        trainer.setup()
        loader = trainer.parts.train_loader
        assert loader.loader.num_workers == 0  # the family's choice, not the 2 asked for
        # One lane per micro-step, as the plan computed (2 micro-steps of 8 reach the reference batch of 16).
        assert loader.sampler.lanes == trainer.derived.sampler_lanes == trainer.derived.accum_steps == 2
        assert trainer.parts.prep_train.hflip == cfg.aug.hflip  # flipped on the device, as the family says
        summary = trainer.run()
    finally:
        distributed.cleanup()
    assert trainer.derived.input_path == "squares drawn in memory"
    assert summary["final_val_top1"] is not None


def test_the_runs_schedule_takes_the_plans_lr_scale(squares, tmp_path):
    """The step schedule's warm-up lr is scaled by the batch rule's factor as the plan computed it."""
    from rsb.runtime import distributed
    from rsb.training.trainer import LaunchOptions, Trainer
    cfg = build_config("cifar10_resnet110", ["data.dataset=squares", "optim.batch_rule=linear",
                                             "optim.reference_batch=128"], sample=True)
    trainer = Trainer(cfg, LaunchOptions(data=None, output=tmp_path / "run", workers=0, device="cpu", quiet=True))
    try:
        trainer.setup()
    finally:
        distributed.cleanup()
    assert trainer.derived.lr_scale == 8 / 128 and cfg.sched.warmup_lr == 0.01
    assert trainer.parts.schedule.lr_at(0) == pytest.approx(0.01 * 8 / 128, rel=1e-15)  # held until the error falls
