"""The CIFAR nets of He et al. 2015/2016 (rsb.models.cifar): registered in timm when rsb is imported, the
paper's parameter counts, the shortcut options, and the shapes they compute."""
from __future__ import annotations

import subprocess
import sys

import pytest
import timm
import torch

from rsb.models.cifar import ARCHS, ShortcutA
from tests._tiny import REPO

# He et al. 2015, Table 6: parameters of the CIFAR-10 ResNets (option A), as the paper rounds them.
TABLE6_PARAMS_M = {"cifar_resnet20": 0.27, "cifar_resnet32": 0.46, "cifar_resnet44": 0.66,
                   "cifar_resnet56": 0.85, "cifar_resnet110": 1.7}


def params_m(model: torch.nn.Module) -> float:
    return sum(p.numel() for p in model.parameters()) / 1e6


@pytest.mark.parametrize("name,expected", sorted(TABLE6_PARAMS_M.items()))
def test_parameter_counts_match_table_6(name, expected):
    digits = 1 if expected >= 1 else 2  # 1.7M is given to one decimal, the others to two
    assert round(params_m(timm.create_model(name)), digits) == expected


def test_plain_nets_have_the_resnets_parameters_and_no_shortcuts():
    for depth in (20, 32, 44, 56):
        plain, res = timm.create_model(f"cifar_plain{depth}"), timm.create_model(f"cifar_resnet{depth}")
        assert params_m(plain) == params_m(res)  # option A shortcuts have no parameters
        assert all(b.shortcut is None for stage in plain.stages for b in stage)
        assert sum(isinstance(b.shortcut, ShortcutA) for stage in res.stages for b in stage) == 2
        convs = sum(isinstance(m, torch.nn.Conv2d) for m in plain.modules())
        assert convs + 1 == depth  # 6n + 1 convolutions and the fully connected layer: 6n + 2 layers


def test_preactivation_nets_about_1_7m():
    # He et al. 2016, Table 4 (CIFAR-10): ResNet-110 and ResNet-164 (pre-activation), 1.7M parameters each
    for name in ("cifar_preact_resnet110", "cifar_preact_resnet164"):
        assert round(params_m(timm.create_model(name)), 1) == 1.7
    assert timm.create_model("cifar_preact_resnet164").num_features == 256  # bottlenecks: 4 x 64


def test_option_b_projects_where_the_shape_changes():
    a, b = timm.create_model("cifar_resnet20"), timm.create_model("cifar_resnet20", shortcut="B")
    # two 1x1 projections (16->32, 32->64) with their batch norms
    assert params_m(b) - params_m(a) == pytest.approx((16 * 32 + 2 * 32 + 32 * 64 + 2 * 64) / 1e6)
    with pytest.raises(ValueError, match="plain net"):
        timm.create_model("cifar_plain20", shortcut="A")


def test_option_a_subsamples_and_pads_with_zeros():
    x = torch.randn(2, 16, 8, 8)
    y = ShortcutA(16, 32, 2)(x)
    assert y.shape == (2, 32, 4, 4)
    assert torch.equal(y[:, :16], x[:, :, ::2, ::2])
    assert not y[:, 16:].any()


@pytest.mark.parametrize("name", sorted(ARCHS))
def test_forward_shapes_and_timm_config(name):
    model = timm.create_model(name, num_classes=7).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 7)
    assert model.pretrained_cfg["input_size"] == (3, 32, 32)
    assert model.get_classifier().out_features == 7


def test_registered_by_import_rsb_without_loading_torch():
    code = ("import sys, rsb; assert 'torch' not in sys.modules and 'timm' not in sys.modules; import timm; "
            "m = timm.create_model('cifar_resnet56'); print(type(m).__name__, timm.is_model('cifar_plain20'))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["CifarNet", "True"]


def test_model_name_choice_accepts_cifar_nets():
    from rsb.training.run_config import build_config
    cfg = build_config("cifar10_resnet", ["model.name=cifar_plain56"], sample=True)
    assert cfg.model.name == "cifar_plain56"
