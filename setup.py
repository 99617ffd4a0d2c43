"""Metadata and dependencies are in setup.cfg; this file only declares the optional C extensions.

Both speed up the training transform and both are optional: where one cannot be built, the install skips it and
rsb takes the pure-Python path, slower, with the same results.
- rsb/data/_jpeg_region.c decodes a JPEG only where the training crop falls; it links libjpeg-turbo's libjpeg API
  and needs the libjpeg headers at install time (Debian/Ubuntu: libjpeg-dev). Fallback: rsb/data/decode.py.
- rsb/data/_augment.c runs RandAugment's Shear and Translate (7-10x Pillow) and Sharpness (~4x) in one pass
  each, the only ops where C clearly paid; every other op has one implementation, in rsb/data/tensor_ops.py
  (torch) or Pillow (Rotate). Fallback for these three: the torch code in rsb/data/tensor_ops.py.
"""
from setuptools import Extension, find_packages, setup

setup(
    # The recipes live at the top of the checkout (recipes/), where users read and copy them; they install with
    # the wheel as the data-only package rsb.recipes, so `--recipe a2` works from any folder.
    packages=find_packages(include=["rsb", "rsb.*"]) + ["rsb.recipes"],
    package_dir={"rsb.recipes": "recipes"},
    ext_modules=[
        Extension("rsb.data._jpeg_region", ["rsb/data/_jpeg_region.c"], libraries=["jpeg"], optional=True),
        Extension("rsb.data._augment", ["rsb/data/_augment.c"], extra_compile_args=["-O3"], optional=True),
    ],
)
