"""Register rsb's CIFAR nets (rsb.models.cifar) in timm's model registry as soon as timm is imported, by whoever
imports it, without importing timm (and torch, about 2 s) when rsb is imported: `import rsb` stays light for the
commands that never build a model (`rsb.sweep status`, `--help`, `--list-recipes`).

Why an import hook: timm has no plug-in entry point for model registries, and registration needs timm loaded.
"""
from __future__ import annotations

import importlib.abc
import importlib.util
import sys


def _register() -> None:
    from rsb.models import cifar
    cifar.register()  # idempotent; the module's import registered them already


class _RegisterAfterTimm(importlib.abc.MetaPathFinder):
    """Finds nothing itself: when `timm` is first looked up, it wraps timm's own loader so the registration runs
    right after timm's package has executed, then takes itself off sys.meta_path."""

    def find_spec(self, name, path=None, target=None):
        if name != "timm":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec("timm")
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_register(module):
            exec_module(module)
            _register()

        spec.loader.exec_module = exec_then_register
        return spec


def install() -> None:
    if "timm" in sys.modules:
        _register()
    elif not any(isinstance(f, _RegisterAfterTimm) for f in sys.meta_path):
        sys.meta_path.insert(0, _RegisterAfterTimm())
