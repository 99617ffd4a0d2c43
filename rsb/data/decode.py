"""Decoding for the fast training transform: whole images to arrays, or JPEGs decoded only where the crop falls.

load_for_crop(source) is the decoder rsb.data.transforms.train_pipeline pairs with the fast training transform
(rsb.data.fast_transform); load_rgb (a PIL image) the one it pairs with timm's chain and evaluation. For a YCbCr, RGB or greyscale JPEG it reads the header only and returns an
EncodedJpeg; the transform draws its crop box from the image size and then asks for just that rectangle, which
rsb.data._jpeg_region decodes with libjpeg-turbo skipping the rows above, everything below and the columns
beside it (same pixels as a full decode; ~25-30% less decoding time at the recipes' crop sizes, see
benchmarks/RESULTS_speed.md). Without the compiled extension (no libjpeg headers at install time) the whole
image is decoded by simplejpeg; anything that is not such a JPEG, or that libjpeg reports as damaged, is decoded
by Pillow, so odd formats and errors are handled as Pillow handles them.

Every decoder takes a path or the encoded bytes themselves: tar shards and parquet files (rsb.data.tar_shards,
rsb.data.parquet) hand over bytes read at an offset, the image folder the file's path; `where` names the image in
errors (a path, or shard and key).
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import simplejpeg
import torch
from PIL import Image

try:
    from rsb.data import _jpeg_region
except ImportError:  # built without libjpeg headers: whole-image decoding only
    _jpeg_region = None

_DIRECT_COLOURSPACES = ("YCbCr", "RGB", "Gray")  # what libjpeg converts to RGB the way Pillow does


def region_decoder_available() -> bool:
    return _jpeg_region is not None


class UnreadableImage(Exception):
    """The file could not be decoded (raised from a transform's deferred decode; the dataset skips it)."""


def encoded_bytes(source: str | Path | bytes) -> bytes:
    """The encoded image: `source` itself when it is bytes, else the contents of the file it names."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return source
    with open(source, "rb") as f:
        return f.read()


def _pillow_rgb(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        return np.array(img.convert("RGB"))


def _whole_image(data: bytes) -> np.ndarray:
    """An HxWx3 uint8 array of the whole image: JPEGs in a colour space libjpeg converts as Pillow does go
    straight to libjpeg-turbo (simplejpeg: no Pillow image object and no copy out of one); anything else (CMYK,
    whose conversion Pillow does its own way; PNG behind a .JPEG name; damaged data) goes through Pillow."""
    if data[:2] == b"\xff\xd8":
        try:
            if simplejpeg.decode_jpeg_header(data)[2] in _DIRECT_COLOURSPACES:
                return simplejpeg.decode_jpeg(data, colorspace="RGB")
        except ValueError:
            pass  # let Pillow decide, and word the error
    return _pillow_rgb(data)


def load_rgb_array(source: str | Path | bytes) -> np.ndarray:
    """The whole image (a path or its bytes) as an HxWx3 uint8 array (see _whole_image)."""
    return _whole_image(encoded_bytes(source))


class EncodedJpeg:
    """A JPEG's bytes and size; decodes a rectangle (or everything) on request."""

    def __init__(self, data: bytes, width: int, height: int, path: str):
        self.data, self.width, self.height, self.path = data, width, height, path

    @property
    def size_probe(self) -> torch.Tensor:
        """An empty (0, H, W) tensor: torchvision's get_image_size reads (W, H) from it, so timm's crop
        get_params works on this image without decoding it."""
        return torch.empty(0, self.height, self.width, dtype=torch.uint8)

    def region(self, x: int, y: int, w: int, h: int) -> np.ndarray:
        try:
            return np.frombuffer(_jpeg_region.decode_region(self.data, x, y, w, h), np.uint8).reshape(h, w, 3)
        except ValueError:
            return np.ascontiguousarray(self.full()[y:y + h, x:x + w])  # damaged or odd: Pillow has the last word

    def full(self) -> np.ndarray:
        try:
            return _pillow_rgb(self.data)
        except Exception as e:  # noqa: BLE001 - any decoder failure means an unreadable file
            raise UnreadableImage(f"{self.path}: {type(e).__name__}: {e}") from e


def load_rgb(source: str | Path | bytes, where: str | None = None) -> Image.Image:
    """Decode any image PIL reads (grayscale, CMYK, PNG data behind a .JPEG name) to RGB; raise on bad data."""
    with Image.open(io.BytesIO(encoded_bytes(source))) as img:
        img.load()
        return img.convert("RGB")


def load_for_crop(source: str | Path | bytes, where: str | None = None):
    """An EncodedJpeg when the region decoder can serve this image, else the whole image as an array. `where`
    names it in a deferred decode's error (default: the path)."""
    data = encoded_bytes(source)
    where = where if where is not None else "<bytes>" if isinstance(source, (bytes, bytearray)) else str(source)
    if _jpeg_region is not None and data[:2] == b"\xff\xd8":
        try:
            width, height, colourspace = _jpeg_region.info(data)
            if colourspace in (_jpeg_region.JCS_YCbCr, _jpeg_region.JCS_RGB, _jpeg_region.JCS_GRAYSCALE):
                return EncodedJpeg(data, width, height, where)
        except ValueError:
            pass
    return _whole_image(data)
