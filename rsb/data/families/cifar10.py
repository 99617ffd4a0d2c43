"""CIFAR-10 (rsb.data.cifar): the archive or its folder, or the built-in CIFAR-like sample, held in memory as arrays;
the family of the 2015 ResNet recipes (cifar10_resnet, cifar10_resnet110). Its images are used at 32x32 as stored;
the per-pixel mean image, the padding crop and the flip run on the device (rsb.data.batch)."""
from __future__ import annotations

from pathlib import Path

from rsb.config.load import RECIPE_DIR
from rsb.config.schema import Config
from rsb.data.families.registry import Family, TrainingSet
from rsb.errors import UserError


def _need(ok: bool, msg: str) -> None:
    if not ok:
        raise UserError(msg)


class Cifar10(Family):
    name = "cifar10"
    full_name = "CIFAR-10"
    sample_scale_file = RECIPE_DIR / "sample_scale_cifar10.yaml"
    reads = "CIFAR-10's archive or folder"
    recipe = "cifar10_resnet"
    computes_mean_image = True
    augments_on_device = True
    test_split_names = ("CIFAR-10 test", "CIFAR-like sample test split")
    own_test_split = True  # scored on its 10,000 test images, as the paper reports (the ImageNet sets do not apply)

    def check(self, cfg: Config) -> None:
        from rsb.data.cifar import NUM_CLASSES
        _need(cfg.data.train_size == cfg.data.test_size == 32,
              "data.train_size and data.test_size must be 32 for data.dataset=cifar10 (its images are not resized).")
        _need(not cfg.aug.rand_augment and not cfg.aug.color_jitter,
              "aug.rand_augment and aug.color_jitter are not applied to CIFAR-10 (data.dataset=cifar10); clear them.")
        _need(list(cfg.aug.scale) == [1.0, 1.0] and list(cfg.aug.ratio) == [1.0, 1.0],
              "aug.scale and aug.ratio must be [1.0, 1.0] for data.dataset=cifar10 (no RandomResizedCrop there).")
        _need(cfg.model.num_classes == NUM_CLASSES,
              f"CIFAR-10 has {NUM_CLASSES} classes but model.num_classes is {cfg.model.num_classes}; "
              f"set model.num_classes={NUM_CLASSES}.")

    def recognises(self, path: Path) -> bool:
        from rsb.data.cifar import looks_like_cifar
        return looks_like_cifar(path)

    def train_images(self, sample: bool) -> int:
        from rsb.data.cifar import train_images
        return train_images(sample)

    @property
    def sample_classes(self) -> int:
        from rsb.data.cifar import NUM_CLASSES
        return NUM_CLASSES

    def ensure_sample(self) -> Path:
        from rsb.data.cifar import ensure_cifar_sample
        return ensure_cifar_sample()

    def input_path(self, cfg: Config) -> str:
        from rsb.data.cifar import INPUT_PATH
        return INPUT_PATH

    def open(self, root, cfg: Config, log, val_labels=None) -> tuple[TrainingSet, object]:
        """(train, val) arrays: val is data.val_holdout training images held out, or the test split when 0."""
        from rsb.data.cifar import INPUT_PATH, open_cifar10
        if root is None:
            self.use_sample(log)
        else:
            self.refuse_other_families(root)
        train, val = open_cifar10(root, cfg.data.val_holdout)
        log(f"CIFAR-10: {len(train)} train images, val: {len(val)} images of {val.where}")
        return TrainingSet(train, INPUT_PATH), val

    def loader_workers(self, workers: int) -> int:
        return 0  # the arrays are in memory: indexing them is cheaper than sending batches between processes

    def eval_loader(self, cfg: Config, val, *, workers: int, rank: int, world: int):
        from rsb.data.cifar import array_eval_loader
        return array_eval_loader(val, cfg.train.batch_per_device, rank=rank, world=world)

    def mean_image(self, cfg: Config, train: TrainingSet):
        return train.dataset.mean_image() if cfg.data.normalize == "pixel_mean" else None

    def test_split(self, data, log):
        """CIFAR-10's 10,000 test images (of the archive or folder `data`), or the built-in sample's."""
        from rsb.data import cifar
        test = (cifar.read_sample(cifar.ensure_cifar_sample()) if data is None else cifar.read_cifar10(Path(data)))[1]
        log(f"CIFAR-10 checkpoint: scoring {len(test)} test images of {test.where}")
        return test


FAMILY = Cifar10()
