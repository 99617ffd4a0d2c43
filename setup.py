"""Metadata and dependencies are in setup.cfg; this file only declares the optional C extension.

rsb/data/_jpeg_region.c (decode a JPEG only where the training crop falls) links libjpeg-turbo's libjpeg API and
needs the libjpeg headers at install time (Debian/Ubuntu: libjpeg-dev). It is optional: without the headers the
build skips it and rsb decodes whole images instead (rsb/data/decode.py).
"""
from setuptools import Extension, setup

setup(ext_modules=[Extension("rsb.data._jpeg_region", ["rsb/data/_jpeg_region.c"], libraries=["jpeg"],
                             optional=True)])
