"""ImageNet-layout sources: a folder of class folders, a flat val with its ground truth, tar shards or parquet files
(rsb.data.layout), and the built-in sample of that kind (rsb.data.sample); the family of A1-A3 and torchvision's
recipe. Images are decoded and augmented in the loader's workers (rsb.data.transforms)."""
from __future__ import annotations

from pathlib import Path

from rsb.config.load import RECIPE_DIR
from rsb.config.schema import Config
from rsb.data.families.registry import Family, TrainingSet, families
from rsb.errors import UserError

TRAIN_IMAGES = 1_281_167  # ImageNet-1k's train set: used where the data is not read (--print-config, a sweep launch)


class ImageNet(Family):
    name = "imagenet"
    full_name = "ImageNet-1k"
    sample_scale_file = RECIPE_DIR / "sample_scale.yaml"
    reads = "an ImageNet folder"
    recipe = "a2"

    def check(self, cfg: Config) -> None:
        if cfg.data.normalize != "channel":
            takers = " or ".join(f.name for f in families() if f.computes_mean_image)
            raise UserError(f"data.normalize=pixel_mean is for data.dataset={takers} (an ImageNet mean image is not "
                            f"computed).")

    def train_images(self, sample: bool) -> int:
        from rsb.data.sample import NUM_CLASSES, SPLITS
        return SPLITS["train"] * NUM_CLASSES if sample else TRAIN_IMAGES

    @property
    def sample_classes(self) -> int:
        from rsb.data.sample import NUM_CLASSES
        return NUM_CLASSES

    def ensure_sample(self) -> Path:
        from rsb.data.sample import ensure_sample_dataset
        return ensure_sample_dataset()

    def input_path(self, cfg: Config) -> str:
        from rsb.data.transforms import train_pipeline
        return train_pipeline(cfg.data, cfg.aug, cfg.run.fast_transform).describe()

    def open(self, root, cfg: Config, log, val_labels=None) -> tuple[TrainingSet, object]:
        """The train and val sources in any layout rsb reads; the training set with the recipe's transform."""
        from rsb.data.layout import open_splits
        from rsb.data.loader import train_dataset
        from rsb.data.transforms import TrainPipeline
        if root is None:
            root = self.use_sample(log)
        self.refuse_other_families(root)
        train, val = open_splits(root, val_labels)
        if train.num_classes != cfg.model.num_classes:
            raise UserError(f"the training data in {root} has {train.num_classes} classes but model.num_classes "
                            f"is {cfg.model.num_classes}; set model.num_classes={train.num_classes}.")
        dataset = train_dataset(cfg, train)
        return TrainingSet(dataset, TrainPipeline(dataset.transform, dataset.decode).describe()), val

    def eval_loader(self, cfg: Config, val, *, workers: int, rank: int, world: int):
        from rsb.data.loader import eval_loader
        return eval_loader(val, cfg.data.test_size, cfg.data.test_crop_pct, cfg.data.test_interpolation,
                           cfg.train.batch_per_device, workers, rank=rank, world=world)


FAMILY = ImageNet()
