"""A run's configuration, put together and checked in one place, once: the recipe, its dataset family's sample-scale
overlay when no data is given, the command line's overrides; then every check (rsb.config.checks' rules, and the
family's own, rsb.data.families). train.py, --print-config and the sweep (its launch and every seed) build their
config here; rsb.training.plan derives from a config built here and does not check it again.

Why here and not in rsb.config: the overlay and the family's rules belong to the dataset family, which is data,
and the config package sits below data (it knows no family).
"""
from __future__ import annotations

from rsb.config.checks import check_config
from rsb.config.load import apply_overrides, load_recipe, with_overlay
from rsb.config.schema import Config
from rsb.data.families.registry import family, family_named


def build_config(recipe: str, overrides: list[str], sample: bool) -> Config:
    """The recipe, the sample-scale overlay (merged as data, checked like a recipe file) when no data is given,
    then the command line's overrides; the whole checked for consistency."""
    cfg = load_recipe(recipe)
    if sample:  # the overlay of the data set the run ends up with, overrides included
        dataset = apply_overrides(cfg, overrides).data.dataset
        cfg = with_overlay(cfg, family_named(dataset).sample_scale())
    cfg = apply_overrides(cfg, overrides)
    check(cfg)
    return cfg


def check(cfg: Config) -> None:
    """Every check of a whole config: its family is known, the schema's cross-field rules, the family's rules."""
    fam = family(cfg)
    check_config(cfg)
    fam.check(cfg)
