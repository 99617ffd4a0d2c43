"""model.zero_init_last: torchvision's zero-init rule against timm's, and models that have no such switch."""
from __future__ import annotations

import pytest
import torch
from timm.models.resnet import Bottleneck

from rsb.config.load import apply_overrides, load_recipe
from rsb.config.schema import ModelConfig
from rsb.errors import UserError
from rsb.models.factory import create_model


def last_norm_scales(model: torch.nn.Module) -> list[torch.Tensor]:
    """The scale of each bottleneck's last batch-norm (bn3, before the residual sum)."""
    blocks = [m for m in model.modules() if isinstance(m, Bottleneck)]
    assert len(blocks) == 16  # ResNet-50: 3 + 4 + 6 + 3
    return [b.bn3.weight.detach() for b in blocks]


@pytest.mark.parametrize("recipe,zero", [("torchvision", False), ("a1", True), ("a2_timm2021", True)])
def test_each_recipe_starts_the_last_norm_of_each_block_as_its_source_does(recipe, zero):
    """torchvision's resnet50 (zero_init_residual=False) starts every bn3 scale at 1; timm's resnet50, which
    trained the released weights, at 0."""
    cfg = apply_overrides(load_recipe(recipe), ["model.num_classes=10"])
    scales = last_norm_scales(create_model(cfg.model))
    expected = torch.zeros_like if zero else torch.ones_like
    assert all(torch.equal(s, expected(s)) for s in scales)


@pytest.mark.parametrize("switch,value", [(False, 1.0), (True, 0.0), (None, 0.0)])
def test_zero_init_last_is_passed_to_timm(switch, value):
    model = create_model(ModelConfig(num_classes=10, zero_init_last=switch))
    scales = last_norm_scales(model)
    assert all(torch.equal(s, torch.full_like(s, value)) for s in scales)
    last = {id(b.bn3) for b in model.modules() if isinstance(b, Bottleneck)}
    other = [m.weight for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d) and id(m) not in last]
    assert other and all(torch.equal(w, torch.ones_like(w)) for w in other)  # every other norm starts at 1


@pytest.mark.parametrize("name,switch", [("test_efficientnet", False), ("cifar_resnet20", True)])
def test_a_model_without_the_switch_refuses_it_in_one_sentence(name, switch):
    """EfficientNet refuses the keyword; rsb's CIFAR nets would swallow it without honouring it: both refused."""
    with pytest.raises(UserError, match=rf"{name} has no such switch: set model.zero_init_last=null\.$"):
        create_model(ModelConfig(name=name, num_classes=10, zero_init_last=switch))
    assert create_model(ModelConfig(name=name, num_classes=10, zero_init_last=None)) is not None
