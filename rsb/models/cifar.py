"""The CIFAR-10 networks of He et al. 2015 ("Deep Residual Learning for Image Recognition", section 4.2) and the
pre-activation ResNets of He et al. 2016 ("Identity Mappings in Deep Residual Networks"), registered in timm's
model registry, so `timm.create_model("cifar_resnet56")` and `model.name=cifar_resnet56` build them.

Why our own: timm's ResNet is the ImageNet family (a 7x7 stem, max pooling, four stages of 64-512 filters);
the CIFAR nets are 6n+2 layers in three stages of 16/32/64 filters on 32x32 inputs, with parameter-free
shortcuts (option A), which timm has no building block for.

  cifar_resnet20/32/44/56/110   basic blocks, conv-BN-ReLU; shortcut="A" (default, the paper's CIFAR choice:
                                stride-2 subsampling and zero-padded channels, no parameters) or "B" (1x1
                                projection + BN where the shape changes)
  cifar_plain20/32/44/56        the same layers without shortcuts (the paper's plain nets)
  cifar_preact_resnet110/164    full pre-activation units (BN-ReLU-conv); 164 uses bottlenecks (4x expansion);
                                projection shortcuts where the shape changes, as the 2016 paper's code
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import DropPath
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from torch import nn

STAGE_WIDTHS = (16, 32, 64)
SHORTCUTS = ("A", "B")


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride, 1, bias=False)


class ShortcutA(nn.Module):
    """Option A: identity, subsampled by taking every other pixel and padded with zero channels; no parameters."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.extra, self.stride = cout - cin, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, ::self.stride, ::self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra)) if self.extra else x


def _shortcut(kind: str, cin: int, cout: int, stride: int, norm: bool = True) -> nn.Module:
    if cin == cout and stride == 1:
        return nn.Identity()
    if kind == "A":
        return ShortcutA(cin, cout, stride)
    proj = nn.Conv2d(cin, cout, 1, stride, bias=False)
    return nn.Sequential(proj, nn.BatchNorm2d(cout)) if norm else proj


class BasicBlock(nn.Module):
    """conv-BN-ReLU-conv-BN, plus the shortcut (none in a plain net), then ReLU (the 2015 paper's Figure 2)."""

    def __init__(self, cin: int, cout: int, stride: int, shortcut: str | None, drop_path: float = 0.0):
        super().__init__()
        self.conv1, self.bn1 = _conv3x3(cin, cout, stride), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = _conv3x3(cout, cout), nn.BatchNorm2d(cout)
        self.shortcut = _shortcut(shortcut, cin, cout, stride) if shortcut else None
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        if self.shortcut is not None:
            out = self.drop_path(out) + self.shortcut(x)
        return F.relu(out)


class PreActBlock(nn.Module):
    """BN-ReLU-conv-BN-ReLU-conv plus the shortcut, nothing after the addition (the 2016 paper's Figure 1b)."""

    expansion = 1

    def __init__(self, cin: int, width: int, stride: int, shortcut: str, drop_path: float = 0.0):
        super().__init__()
        cout = width * self.expansion
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), _conv3x3(cin, width, stride)
        self.bn2, self.conv2 = nn.BatchNorm2d(width), _conv3x3(width, cout)
        self.shortcut = _shortcut(shortcut, cin, cout, stride, norm=False)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.relu(self.bn2(self.conv1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = F.relu(self.bn1(x))
        # A projection takes the pre-activated input (as in the 2016 paper's code); the identity takes x itself.
        skip = x if isinstance(self.shortcut, (nn.Identity, ShortcutA)) else self.shortcut(pre)
        return self.drop_path(self.residual(pre)) + skip


class PreActBottleneck(PreActBlock):
    """BN-ReLU-conv1x1, BN-ReLU-conv3x3, BN-ReLU-conv1x1 (4x the width), plus the shortcut."""

    expansion = 4

    def __init__(self, cin: int, width: int, stride: int, shortcut: str, drop_path: float = 0.0):
        nn.Module.__init__(self)
        cout = width * self.expansion
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, width, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(width), _conv3x3(width, width, stride)
        self.bn3, self.conv3 = nn.BatchNorm2d(width), nn.Conv2d(width, cout, 1, bias=False)
        self.shortcut = _shortcut(shortcut, cin, cout, stride, norm=False)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(F.relu(self.bn2(self.conv1(x))))
        return self.conv3(F.relu(self.bn3(out)))


class CifarNet(nn.Module):
    """3x3 conv stem of 16 filters, three stages of `blocks` units at 16/32/64 filters (stride 2 at the first
    unit of stages 2 and 3), global average pooling, a fully connected classifier.

    `block`: "basic" (2015), "preact" or "preact_bottleneck" (2016); `shortcut`: "A", "B" or None (plain)."""

    def __init__(self, blocks: int, block: str = "basic", shortcut: str | None = "A", num_classes: int = 10,
                 in_chans: int = 3, drop_rate: float = 0.0, drop_path_rate: float = 0.0, **_timm_kwargs):
        super().__init__()
        if shortcut is not None and shortcut not in SHORTCUTS:
            raise ValueError(f"shortcut must be one of {SHORTCUTS} or None, got {shortcut!r}")
        if block != "basic" and shortcut is None:
            raise ValueError("a pre-activation net needs shortcuts")
        self.preact = block != "basic"
        self.num_classes, self.drop_rate = num_classes, drop_rate
        self.conv1 = _conv3x3(in_chans, STAGE_WIDTHS[0])
        self.bn1 = None if self.preact else nn.BatchNorm2d(STAGE_WIDTHS[0])  # pre-act: the first unit's BN
        unit = {"basic": BasicBlock, "preact": PreActBlock, "preact_bottleneck": PreActBottleneck}[block]
        expansion = getattr(unit, "expansion", 1)
        total, done, cin = 3 * blocks, 0, STAGE_WIDTHS[0]
        stages = []
        for i, width in enumerate(STAGE_WIDTHS):
            units = []
            for j in range(blocks):
                # stochastic depth rising linearly over the units, timm's rule
                dpr = drop_path_rate * done / max(1, total - 1)
                units.append(unit(cin, width, 2 if i > 0 and j == 0 else 1, shortcut, dpr))
                cin, done = width * expansion, done + 1
            stages.append(nn.Sequential(*units))
        self.stages = nn.Sequential(*stages)
        self.final_norm = nn.BatchNorm2d(cin) if self.preact else nn.Identity()  # pre-act ends with BN-ReLU
        self.num_features = cin
        self.fc = nn.Linear(cin, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        # He initialisation (the paper's reference [13]) for convolutions; BN scale 1, shift 0
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int, global_pool: str = "avg") -> None:
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        if self.bn1 is not None:
            x = F.relu(self.bn1(x))
        x = self.stages(x)
        return F.relu(self.final_norm(x)) if self.preact else x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean(dim=(2, 3))
        if self.drop_rate > 0:
            x = F.dropout(x, self.drop_rate, self.training)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _cfg(**kwargs) -> dict:
    # Test settings for validate.py and export: the native 32x32, no resize or crop. The mean and std are
    # CIFAR-10's per-channel ones; the recipe itself subtracts the per-pixel mean image (rsb.data.cifar).
    return {"num_classes": 10, "input_size": (3, 32, 32), "pool_size": (8, 8), "crop_pct": 1.0,
            "interpolation": "bilinear", "mean": (0.4914, 0.4822, 0.4465), "std": (0.2470, 0.2435, 0.2616),
            "first_conv": "conv1", "classifier": "fc", **kwargs}


# (blocks per stage, block type, default shortcut) per registered name; depth = 6n+2, or 9n+2 for bottlenecks
ARCHS = {
    **{f"cifar_resnet{6 * n + 2}": (n, "basic", "A") for n in (3, 5, 7, 9, 18)},
    **{f"cifar_plain{6 * n + 2}": (n, "basic", None) for n in (3, 5, 7, 9)},
    "cifar_preact_resnet110": (18, "preact", "B"),
    "cifar_preact_resnet164": (18, "preact_bottleneck", "B"),
}
default_cfgs = generate_default_cfgs({name: _cfg() for name in ARCHS})  # timm reads it at register_model


def _create(name: str, pretrained: bool = False, **kwargs) -> CifarNet:
    blocks, block, shortcut = ARCHS[name]
    kwargs.setdefault("shortcut", shortcut)
    if ARCHS[name][2] is None and kwargs["shortcut"] is not None:
        raise ValueError(f"{name} is a plain net: it has no shortcuts")
    return build_model_with_cfg(CifarNet, name, pretrained, blocks=blocks, block=block, **kwargs)


# One entry point per name: timm registers a function under its own __name__.
def _entry(name: str):
    def fn(pretrained: bool = False, **kwargs) -> CifarNet:
        return _create(name, pretrained, **kwargs)
    fn.__name__ = fn.__qualname__ = name
    fn.__module__ = __name__
    fn.__doc__ = f"{name}: {ARCHS[name][0]} units per stage, {ARCHS[name][1]} blocks."
    return fn


def register() -> None:
    """Register every CIFAR net in timm's registry (idempotent: a name already registered by us is skipped)."""
    import timm
    for name in ARCHS:
        if not timm.is_model(name):
            register_model(_entry(name))


register()
