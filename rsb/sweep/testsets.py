"""Which test set a score column was measured on, by name and size: the labels of the report and of compare
(a sample sweep's "val" is the sample's 500-image val split, not ImageNet-val), and the test-set sampling
deviation of a top-1 score, which depends on the number of images.

A set is {"name": ..., "images": N or None}, keyed by the results table's prefixes (val, v2, real); a metric is a
column name such as val_top1, v2_top5, gap (val_top1 - v2_top1) or any column of a user's table.
"""
from __future__ import annotations

import math
from pathlib import Path

from rsb.config.schema import DataConfig
from rsb.data.families.registry import family_named

PREFIXES = ("val", "v2", "real")
FULL_IMAGES = {"val": 50_000, "v2": 10_000}  # ImageNet-val; every ImageNet-V2 variant (10 per class)
GENERIC = {"val": "val", "v2": "V2", "real": "ReaL"}
KINDS = {"top1": "top-1", "top5": "top-5"}


def v2_name(v2_set: str | None) -> str:
    """rsb.validate's v2_set ("matched-frequency", "sample", or the folder's name) as a set name."""
    if not v2_set:
        return "ImageNet-V2"
    if v2_set == "sample":
        return "sample V2-style split"
    return f"ImageNet-V2 {v2_set}"


def sweep_sets(spec, scores: dict) -> dict:
    """The sets a sweep's report scored: the sample's splits without --data, CIFAR-10's test set for a CIFAR
    sweep, ImageNet-val (when it has ImageNet-val's 50,000 images; else the val split of the named folder) and
    the V2 variant rsb.validate recorded. `scores`: {seed: rsb.sweep.scores' values}."""
    first = next(iter(scores.values()), {}) if scores else {}
    val_images, v2_images = first.get("val_images"), first.get("v2_images")
    fam = family_named((spec.config.get("data") or {}).get("dataset") or DataConfig().dataset)
    own_test = fam.own_test_split
    if own_test:
        val = fam.test_split_names[1] if spec.sample else fam.test_split_names[0]
    elif spec.sample:
        val = "sample val split"
    elif val_images == FULL_IMAGES["val"]:
        val = "ImageNet-val"
    else:
        val = f"val split of {Path(spec.data).name}"
    sets = {"val": {"name": val, "images": val_images}}
    if first.get("v2_top1") is not None or spec.imagenet_v2 or (spec.sample and not own_test):
        sets["v2"] = {"name": v2_name(first.get("v2_set")), "images": v2_images}
    return sets


def table_sets(columns: dict) -> dict:
    """The sets a user's table names: from its val_set / v2_set / <set>_images columns where it has them (the
    report's seeds.csv and rsb.validate's results.csv do), else the plain names and no image count."""
    sets = {}
    for prefix in PREFIXES:
        name = columns.get(f"{prefix}_set")
        if prefix == "v2" and name is not None:
            name = v2_name(name) if not str(name).startswith(("ImageNet", "sample")) else name
        images = int(float(columns[f"{prefix}_images"])) if columns.get(f"{prefix}_images") else None
        if name is None and prefix == "val" and images == FULL_IMAGES["val"]:
            name = "ImageNet-val"  # as sweep_sets names it (rsb.validate's results.csv has no val_set column)
        sets[prefix] = {"name": name or GENERIC[prefix], "images": images}
    return sets


def metric_label(metric: str, sets: dict) -> str:
    """"ImageNet-val top-1", "sample V2-style split top-5", "gap (val - V2 top-1)", or the column's own name."""
    if metric == "gap":
        return "gap (val - V2 top-1)"
    prefix, _, kind = metric.partition("_")
    if prefix in PREFIXES and kind in KINDS:
        name = (sets.get(prefix) or {}).get("name") or GENERIC[prefix]
        return f"{name} {KINDS[kind]}"
    return metric


def is_percentage(metric: str) -> bool:
    prefix, _, kind = metric.partition("_")
    return metric == "gap" or (prefix in PREFIXES and kind in KINDS)


def images_for(prefix: str, sets: dict) -> tuple[int | None, bool]:
    """(images, assumed): the set's image count, else ImageNet's full size for val and V2 (assumed=True)."""
    images = (sets.get(prefix) or {}).get("images")
    if images:
        return int(images), False
    return FULL_IMAGES.get(prefix), prefix in FULL_IMAGES


def sampling_std(metric: str, means: dict, sets: dict) -> tuple[float | None, bool]:
    """(points, assumed): the test-set sampling deviation 100 * sqrt(p (1 - p) / images) of an accuracy at
    p = its mean / 100 (`means`: metric -> the side's mean); for the gap, that of val and V2 top-1 together
    (independent sets); None for other columns, or when the set's size is unknown."""
    if metric == "gap":
        parts = [sampling_std(m, means, sets) for m in ("val_top1", "v2_top1")]
        if any(s is None for s, _ in parts):
            return None, False
        return math.hypot(parts[0][0], parts[1][0]), any(a for _, a in parts)
    prefix, _, kind = metric.partition("_")
    if prefix not in PREFIXES or kind not in KINDS or means.get(metric) is None:
        return None, False
    images, assumed = images_for(prefix, sets)
    if not images:
        return None, False
    p = min(max(means[metric] / 100.0, 0.0), 1.0)
    return 100.0 * math.sqrt(p * (1 - p) / images), assumed
