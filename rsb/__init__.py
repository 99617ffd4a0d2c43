"""rsb: the ResNet Strikes Back training procedures (A1, A2, A3) on PyTorch and timm."""
from importlib import metadata

try:
    __version__ = metadata.version("rsb")
except metadata.PackageNotFoundError:  # a checkout on sys.path, not installed
    __version__ = "0+unknown"

from rsb.models import timm_hook as _timm_hook

_timm_hook.install()  # the CIFAR nets join timm's registry when timm is imported (rsb.models.cifar)
