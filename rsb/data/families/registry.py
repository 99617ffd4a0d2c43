"""The dataset families by name, and what a family is (Family).

A family is found by the data.dataset value that names it: every module of this package that defines FAMILY (an
instance of a Family subclass) registers it, so adding a family is adding its module. No other module tests a
family's name; it asks the family object: how to open the data (or its built-in sample), the training set and the
evaluation set it gives, its sample-scale overlay, its train-image count where the data is not read, and its own
rules for config values.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from rsb.config.checks import choice_error
from rsb.config.load import describe_overlay, read_overlay
from rsb.config.schema import Config, DataConfig
from rsb.errors import UserError

_FAMILIES: dict[str, "Family"] = {}  # filled from this package's modules at the first look-up


@dataclass(frozen=True)
class TrainingSet:
    """A family's training set: the map-style dataset the loader reads (items by (index, sample seed) from
    rsb.data.sampler), and one line naming the input path it was built with (start-up lines, resolved.yaml)."""
    dataset: object
    input_path: str

    def __len__(self) -> int:
        return len(self.dataset)


class Family:
    """One dataset family. Subclasses set the attributes and implement the methods that raise NotImplementedError;
    the data modules they use are imported inside the methods, so that finding a family (to build a config, or in
    the sweep's command line) loads no torch."""
    name: str = ""                    # the data.dataset value that selects it
    full_name: str = ""               # for --print-config: "ImageNet-1k"
    sample_scale_file: Path           # the overlay of recipes/ applied when no --data is given
    reads: str = ""                   # what its --data is, for messages: "an ImageNet folder"
    recipe: str = ""                  # a recipe of the family, for messages
    computes_mean_image: bool = False  # data.normalize=pixel_mean is possible (the train split's mean image)
    augments_on_device: bool = False  # hflip runs on the device (rsb.data.batch.DeviceBatch), not in the loader
    own_test_split: bool = False      # scored on its own test split (test_split), not on the sets validate asks for
    test_split_names: tuple = ("", "")  # with own_test_split: the test split's name (full data, built-in sample)

    def check(self, cfg: Config) -> None:
        """The family's own rules for config values (rsb.config.checks.check_config has the others)."""

    def recognises(self, path: Path) -> bool:
        """Whether data at `path` (which exists) is evidently of this family, to name it when another reads it."""
        return False

    def train_images(self, sample: bool) -> int:
        """The training split's size where the data is not read: the built-in sample's, or the full data set's."""
        raise NotImplementedError

    @property
    def sample_classes(self) -> int:
        raise NotImplementedError

    def ensure_sample(self) -> Path:
        """The built-in sample, drawn first where this machine has none."""
        raise NotImplementedError

    def input_path(self, cfg: Config) -> str:
        """The line naming the training input path, where no data is read (--print-config, a sweep's launch)."""
        raise NotImplementedError

    def open(self, root: Path | None, cfg: Config, log: Callable[[str], None],
             val_labels: Path | None = None) -> tuple[TrainingSet, object]:
        """(training set, val set) of the data at `root`, or of the built-in sample (root None)."""
        raise NotImplementedError

    def loader_workers(self, workers: int) -> int:
        """Loader worker processes for `workers` asked for."""
        return workers

    def eval_loader(self, cfg: Config, val, *, workers: int, rank: int, world: int):
        """The ordered loader over one process's share of the val set `open` gave."""
        raise NotImplementedError

    def mean_image(self, cfg: Config, train: TrainingSet):
        """The image to subtract instead of the channel mean and std (data.normalize=pixel_mean), or None."""
        return None

    def test_split(self, data: Path | None, log: Callable[[str], None]):
        """The split an evaluation scores (own_test_split): of `data`, or of the built-in sample (data None)."""
        raise NotImplementedError

    def sample_scale(self) -> dict:
        """The sample-scale overlay, {section: {key: value}}, applied over a recipe when no data is given."""
        return read_overlay(self.sample_scale_file)

    def use_sample(self, log: Callable[[str], None]) -> Path:
        where = self.ensure_sample()
        log(f"no --data given: built-in sample data at {where} ({self.sample_classes} classes), at the sample scale "
            f"of {self.sample_scale_file.name}: {describe_overlay(self.sample_scale())}")
        return where

    def refuse_other_families(self, root: Path) -> None:
        """Data that another family recognises is named as such, instead of failing on a layout it lacks."""
        if not Path(root).exists():
            return
        for other in families():
            if other is not self and other.recognises(Path(root)):
                raise UserError(f"{root} looks like {other.full_name}, but the recipe reads {self.reads}; use "
                                f"--recipe {other.recipe} (or set data.dataset={other.name}).")


def register(family: Family) -> Family:
    registered()[family.name] = family
    return family


def registered() -> dict[str, Family]:
    """Every family by name; this package's modules are looked through once, at the first call."""
    if not _FAMILIES:
        import rsb.data.families as package
        found = [getattr(importlib.import_module(f"{package.__name__}.{m.name}"), "FAMILY", None)
                 for m in pkgutil.iter_modules(package.__path__)]
        _FAMILIES.update({f.name: f for f in found if isinstance(f, Family)})
    return _FAMILIES


def names() -> list[str]:
    """The family names, the schema's default first (DataConfig.dataset), then the others alphabetically."""
    default = DataConfig().dataset
    return sorted(registered(), key=lambda name: (name != default, name))


def families() -> list[Family]:
    return [registered()[name] for name in names()]


def family_named(name: str) -> Family:
    """The family data.dataset=`name` selects; a name of none is an error naming the nearest."""
    found = registered().get(name)
    if found is None:
        raise UserError(choice_error("data.dataset", name, names()))
    return found


def family(cfg: Config) -> Family:
    return family_named(cfg.data.dataset)
