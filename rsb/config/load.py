"""Reading configs: recipe files by name or path, `base:` chains, overlays merged as data, strict dotted overrides.

Every key must exist in the schema (an unknown key is an error naming the closest valid one) and every value must
have the field's type and, where the field takes one of a few names, be one of them (rsb.config.checks).
rsb.training.run_config puts a run's config together from these (with its dataset family's sample-scale overlay)
and checks the whole once.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from rsb.config.checks import check_choice, check_value, closest
from rsb.config.schema import Config, all_keys, field_types, to_dict
from rsb.errors import UserError


def _recipe_dir() -> Path:
    """recipes/ of the checkout, installed as the data-only package rsb.recipes (setup.cfg's package_dir)."""
    import importlib.util
    spec = importlib.util.find_spec("rsb.recipes")
    if spec is not None and spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    return Path(__file__).resolve().parents[2] / "recipes"  # a checkout on sys.path, not installed


RECIPE_DIR = _recipe_dir()
# recipes/sample_scale*.yaml are overlays for the built-in samples (each dataset family names its own), not recipes.
OVERLAY_PREFIX = "sample_scale"


def available_recipes() -> list[str]:
    return sorted(p.stem for p in RECIPE_DIR.glob("*.yaml") if not p.stem.startswith(OVERLAY_PREFIX))


def _build(cls, data: dict, prefix: str) -> Any:
    if not isinstance(data, dict):
        raise UserError(f"section '{prefix.rstrip('.') or 'top level'}' must be a mapping, got {data!r}.")
    types = field_types(cls)
    kwargs = {}
    for key, value in data.items():
        if key not in types:
            near = closest(key, list(types))
            raise UserError(f"unknown key '{prefix}{key}'; did you mean '{prefix}{near}'?")
        if dataclasses.is_dataclass(types[key]):
            kwargs[key] = _build(types[key], value, f"{prefix}{key}.")
        else:
            kwargs[key] = check_value(prefix + key, value, types[key])
            check_choice(prefix + key, kwargs[key])
    return cls(**kwargs)


def config_from_dict(data: dict) -> Config:
    return _build(Config, data, "")


def recipe_path(name_or_path: str, relative_to: Path | None = None) -> Path:
    """A recipe name (a1, a2, ...) or a YAML file path (relative to `relative_to`, the folder of the file that
    names it as its base, else to the working folder)."""
    path = Path(name_or_path)
    if not path.suffix:
        path = RECIPE_DIR / f"{name_or_path}.yaml"
        if not path.exists():
            raise UserError(f"unknown recipe '{name_or_path}'; available: {', '.join(available_recipes())} "
                            f"or a path to a .yaml file.")
    elif relative_to is not None and not path.is_absolute():
        path = relative_to / path
    if not path.exists():
        raise UserError(f"recipe file {path} does not exist.")
    return path


def _read_recipe(path: Path, chain: tuple[Path, ...] = ()) -> dict:
    """The recipe file's values as a complete config dict: its base's values (`base:`, followed to the end)
    with the file's own on top; a file without a base must give every key."""
    if path.resolve() in chain:
        raise UserError(f"recipe {path} names itself as a base (through {' -> '.join(map(str, chain))}).")
    try:
        data = yaml.safe_load(path.read_text()) or {}  # safe loader: a recipe can never run code
    except yaml.YAMLError as e:
        raise UserError(f"recipe file {path} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise UserError(f"recipe file {path} must hold a mapping of sections, got {type(data).__name__}.")
    config_from_dict({k: v for k, v in data.items() if k != "base"})  # unknown keys and wrong types, named here
    base = data.pop("base", None)
    if base is None:
        missing = [k for k in all_keys() if k != "base" and not _has_key(data, k)]
        if missing:
            raise UserError(f"recipe file {path} has no `base:` and lacks {len(missing)} keys: "
                            f"{', '.join(missing)}; give them, or start the file with `base: a2` (or another "
                            f"recipe) to change only some values.")
        return data
    if not isinstance(base, str) or not base:
        raise UserError(f"recipe file {path}: `base:` must name a recipe (a1, a2, a3) or a .yaml file.")
    below = _read_recipe(recipe_path(base, path.parent), chain + (path.resolve(),))
    return _merged(below, {"name": path.stem, **data, "base": base})


def _has_key(data: dict, dotted: str) -> bool:
    for part in dotted.split("."):
        if not isinstance(data, dict) or part not in data:
            return False
        data = data[part]
    return True


def load_recipe(name_or_path: str) -> Config:
    """Load a recipe by name (a1, a2, a3) or from a YAML file path (complete, or `base:` plus changes)."""
    return config_from_dict(_read_recipe(recipe_path(name_or_path)))


def read_overlay(path: Path) -> dict:
    """An overlay file (a built-in sample's recipes/sample_scale*.yaml): {section: {key: value}}."""
    return yaml.safe_load(Path(path).read_text())


def with_overlay(cfg: Config, overlay: dict) -> Config:
    """`cfg` with the overlay's values on top, merged as data and checked like a recipe file."""
    return config_from_dict(_merged(to_dict(cfg), overlay))


def describe_overlay(overlay: dict) -> str:
    return " ".join(f"{section}.{key}={value}" for section, values in overlay.items() for key, value in values.items())


def _merged(base: dict, overlay: dict) -> dict:
    out = dict(base)
    for key, value in overlay.items():
        out[key] = _merged(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return out


def apply_overrides(cfg: Config, overrides: list[str]) -> Config:
    """Return a new Config with dotted `section.key=value` overrides applied (values parsed as YAML)."""
    data = to_dict(cfg)
    valid = all_keys()
    for item in overrides:
        if "=" not in item:
            raise UserError(f"override '{item}' must look like section.key=value, e.g. optim.lr=4e-3.")
        key, raw = item.split("=", 1)
        key = key.strip()
        if key not in valid:
            raise UserError(f"unknown key '{key}'; did you mean '{closest(key, valid)}'?")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""  # `key=` sets an empty string (e.g. RandAugment off)
        except yaml.YAMLError:
            value = raw
        node = data
        *parents, leaf = key.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return config_from_dict(data)
