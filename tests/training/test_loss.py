"""ThresholdedBCE (the recipes' loss) and SoftTargetCE."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from rsb.config.schema import LossConfig

from rsb.config.load import load_recipe
from rsb.training.loss import SoftTargetCE, ThresholdedBCE, create_loss

K = 10


def mixed(pairs):
    """Dense targets: each row {class: weight}."""
    t = torch.zeros(len(pairs), K)
    for r, row in enumerate(pairs):
        for c, w in row.items():
            t[r, c] = w
    return t


def test_int_labels_one_hot():
    loss = ThresholdedBCE(K, target_threshold=0.2, smoothing=0.0)
    t = loss.targets(torch.tensor([0, 3, 9]))
    assert t.dtype == torch.float32 and t.shape == (3, K)
    assert torch.equal(t, F.one_hot(torch.tensor([0, 3, 9]), K).float())


def test_mixed_above_threshold_both_one():
    loss = ThresholdedBCE(K, target_threshold=0.2)
    t = loss.targets(mixed([{2: 0.7, 5: 0.3}]))
    expected = torch.zeros(1, K)
    expected[0, 2] = expected[0, 5] = 1.0
    assert torch.equal(t, expected)


def test_mixed_below_threshold_dropped():
    loss = ThresholdedBCE(K, target_threshold=0.2)
    t = loss.targets(mixed([{2: 0.85, 5: 0.15}]))
    expected = torch.zeros(1, K)
    expected[0, 2] = 1.0
    assert torch.equal(t, expected)


def test_threshold_is_strict():
    loss = ThresholdedBCE(K, target_threshold=0.25)
    t = loss.targets(mixed([{2: 0.75, 5: 0.25}]))
    assert t[0, 2] == 1.0 and t[0, 5] == 0.0


def test_no_threshold_keeps_soft_targets():
    loss = ThresholdedBCE(K, target_threshold=None)
    m = mixed([{2: 0.85, 5: 0.15}])
    assert torch.allclose(loss.targets(m), m)


def test_smoothing_after_threshold():
    eps = 0.1
    loss = ThresholdedBCE(K, target_threshold=0.2, smoothing=eps, smoothing_after_threshold=True)
    t = loss.targets(mixed([{2: 0.7, 5: 0.3}, {1: 0.9, 4: 0.1}]))
    pos, neg = 1 - eps + eps / K, eps / K
    assert pos == pytest.approx(0.91) and neg == pytest.approx(0.01)
    expected = torch.full((2, K), neg)
    expected[0, 2] = expected[0, 5] = expected[1, 1] = pos
    assert torch.allclose(t, expected, atol=1e-7)


def test_smoothing_after_threshold_int_labels():
    eps = 0.1
    loss = ThresholdedBCE(K, target_threshold=0.2, smoothing=eps, smoothing_after_threshold=True)
    t = loss.targets(torch.tensor([4]))
    assert t[0, 4].item() == pytest.approx(1 - eps + eps / K)
    assert torch.allclose(t[0, torch.arange(K) != 4], torch.full((K - 1,), eps / K))


def test_smoothing_before_threshold_vanishes():
    """timm's order: smoothing first, then the threshold turns targets back into exact 0/1."""
    loss = ThresholdedBCE(K, target_threshold=0.2, smoothing=0.1, smoothing_after_threshold=False)
    t = loss.targets(mixed([{2: 0.7, 5: 0.3}, {1: 0.9, 4: 0.1}]))
    assert set(t.unique().tolist()) <= {0.0, 1.0}
    expected = torch.zeros(2, K)
    expected[0, 2] = expected[0, 5] = expected[1, 1] = 1.0
    assert torch.equal(t, expected)
    assert torch.equal(loss.targets(torch.tensor([3])), F.one_hot(torch.tensor([3]), K).float())


def test_loss_value_matches_hand_built_targets():
    torch.manual_seed(0)
    logits = torch.randn(2, K)
    eps = 0.1
    loss = ThresholdedBCE(K, target_threshold=0.2, smoothing=eps, smoothing_after_threshold=True)
    target = mixed([{2: 0.7, 5: 0.3}, {1: 0.85, 4: 0.15}])
    hand = torch.full((2, K), eps / K)
    hand[0, 2] = hand[0, 5] = hand[1, 1] = 1 - eps + eps / K
    expected = F.binary_cross_entropy_with_logits(logits, hand)
    assert loss(logits, target).item() == pytest.approx(expected.item(), rel=1e-6)
    # and it is not the loss on the unthresholded targets
    assert loss(logits, target).item() != pytest.approx(
        F.binary_cross_entropy_with_logits(logits, target).item(), rel=1e-3)


def test_loss_int_labels_and_half_logits():
    torch.manual_seed(1)
    logits = torch.randn(3, K)
    labels = torch.tensor([0, 5, 9])
    loss = ThresholdedBCE(K, target_threshold=0.2)
    expected = F.binary_cross_entropy_with_logits(logits, F.one_hot(labels, K).float())
    assert loss(logits, labels).item() == pytest.approx(expected.item(), rel=1e-6)
    out = loss(logits.bfloat16(), labels)
    assert out.dtype == torch.float32


def test_soft_ce_equals_cross_entropy_for_hard_labels():
    torch.manual_seed(2)
    logits = torch.randn(4, K)
    labels = torch.tensor([1, 0, 7, 7])
    assert SoftTargetCE(K)(logits, labels).item() == pytest.approx(F.cross_entropy(logits, labels).item(),
                                                                   rel=1e-6)
    smoothed = SoftTargetCE(K, smoothing=0.1)(logits, labels)
    assert smoothed.item() == pytest.approx(
        F.cross_entropy(logits, labels, label_smoothing=0.1).item(), rel=1e-6)


def test_soft_ce_dense_targets():
    torch.manual_seed(3)
    logits = torch.randn(2, K)
    target = mixed([{2: 0.7, 5: 0.3}, {1: 1.0}])
    expected = -(target * F.log_softmax(logits, -1)).sum(-1).mean()
    assert SoftTargetCE(K)(logits, target).item() == pytest.approx(expected.item(), rel=1e-6)


def test_create_loss_bce_from_config():
    cfg = LossConfig(name="bce", target_threshold=0.3, label_smoothing=0.05, smoothing_after_threshold=False)
    loss = create_loss(cfg, num_classes=7)
    assert isinstance(loss, ThresholdedBCE)
    assert loss.num_classes == 7
    assert loss.threshold == 0.3 and loss.smoothing == 0.05 and loss.after is False
    assert loss.targets(torch.tensor([6])).shape == (1, 7)


def test_create_loss_soft_ce_from_config():
    loss = create_loss(LossConfig(name="soft_ce", label_smoothing=0.1), num_classes=5)
    assert isinstance(loss, SoftTargetCE)
    assert loss.num_classes == 5 and loss.smoothing == 0.1


def test_a1_recipe_loss_is_timms_order_as_released():
    """A1 by default trains as the released weights did: smoothing before the threshold, which undoes it."""
    cfg = load_recipe("a1")
    assert cfg.loss.label_smoothing == 0.1 and cfg.loss.smoothing_after_threshold is False
    loss = create_loss(cfg.loss, cfg.model.num_classes)
    t = loss.targets(torch.tensor([0]))
    assert t[0, 0].item() == 1.0 and t[0, 1].item() == 0.0
    # Mixed targets as timm's Mixup makes them (smoothing inside the mix) end as 0/1 too.
    from timm.data.mixup import mixup_target
    mixed = mixup_target(torch.tensor([0, 1]), 1000, lam=0.7, smoothing=0.1)
    assert set(loss.targets(mixed).unique().tolist()) == {0.0, 1.0}


def test_a1_paper_text_order_is_the_option():
    from rsb.config.load import apply_overrides
    cfg = apply_overrides(load_recipe("a1"), ["loss.smoothing_after_threshold=true"])
    t = create_loss(cfg.loss, cfg.model.num_classes).targets(torch.tensor([0]))
    assert t[0, 0].item() == pytest.approx(0.9 + 0.1 / 1000)
    assert t[0, 1].item() == pytest.approx(0.1 / 1000)


def test_smoothing_inside_mixup_moves_the_threshold_to_lambda_0_2221():
    """A1's smoothing in timm's order: a class mixed in with weight lambda gets 0.0001 + 0.9 lambda (timm's own
    mixup_target, 1000 classes), which passes the threshold 0.2 only when lambda > 0.1999 / 0.9 = 0.22211; without
    smoothing the threshold on lambda is 0.2 itself. rsb's targets are timm's, thresholded."""
    from timm.data.mixup import mixup_target
    k = 1000
    ours = ThresholdedBCE(k, target_threshold=0.2, smoothing=0.1, smoothing_after_threshold=False)
    plain = ThresholdedBCE(k, target_threshold=0.2)
    labels = torch.tensor([3, 7])  # the batch's flip pairs sample 0 (class 3) with sample 1 (class 7)
    for lam_partner, counted in ((0.21, False), (0.2221, False), (0.22212, True), (0.25, True)):
        timm_soft = mixup_target(labels, k, lam=1 - lam_partner, smoothing=0.1)
        assert timm_soft[0, 7].item() == pytest.approx(0.0001 + 0.9 * lam_partner, abs=1e-6)
        mixed_target = (1 - lam_partner) * F.one_hot(labels, k).float() + lam_partner * F.one_hot(labels.flip(0), k)
        assert torch.equal(ours.targets(mixed_target), (timm_soft > 0.2).float())
        assert ours.targets(mixed_target)[0, 7].item() == float(counted)
        assert plain.targets(mixed_target)[0, 7].item() == 1.0  # lambda > 0.2: counted without smoothing
