"""Weight-decay groups, timm Lamb with the recipe's clipping, and the per-step warmup + cosine schedule."""
from __future__ import annotations

import pytest
import torch
from timm.optim import Lamb
from torch import nn

from rsb.config.schema import OptimConfig, SchedConfig

from rsb.config.load import load_recipe
from rsb.training.optim import WarmupCosine, clips_gradients_itself, create_optimizer


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, bias=True), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, 10))


def groups_by_decay(opt):
    return {g["weight_decay"]: {id(p) for p in g["params"]} for g in opt.param_groups}


@pytest.mark.parametrize("wd", [0.01, 0.02])
def test_weight_decay_groups(wd):
    model = tiny_model()
    opt = create_optimizer(model, OptimConfig(weight_decay=wd), lr=1e-3)
    groups = groups_by_decay(opt)
    assert set(groups) == {0.0, wd}
    conv, bn, lin = model[0], model[1], model[5]
    assert groups[wd] == {id(conv.weight), id(lin.weight)}
    assert groups[0.0] == {id(conv.bias), id(bn.weight), id(bn.bias), id(lin.bias)}
    n_params = sum(len(g["params"]) for g in opt.param_groups)
    assert n_params == len(list(model.parameters()))


def test_weight_decay_groups_timm_resnet():
    import timm
    model = timm.create_model("resnet18", num_classes=10)
    opt = create_optimizer(model, OptimConfig(weight_decay=0.02), lr=1e-3)
    groups = groups_by_decay(opt)
    names = {id(p): n for n, p in model.named_parameters()}
    for pid in groups[0.0]:
        p = dict(model.named_parameters())[names[pid]]
        assert p.ndim <= 1, names[pid]
    for pid in groups[0.02]:
        assert dict(model.named_parameters())[names[pid]].ndim > 1, names[pid]
    assert len(groups[0.0]) + len(groups[0.02]) == len(list(model.parameters()))
    assert any(names[p] == "fc.bias" for p in groups[0.0])
    assert any(names[p] == "bn1.weight" for p in groups[0.0])
    assert any(names[p] == "conv1.weight" for p in groups[0.02])


def test_lamb_with_recipe_settings():
    cfg = load_recipe("a1").optim
    opt = create_optimizer(tiny_model(), cfg, lr=5e-3)
    assert type(opt) is Lamb
    assert clips_gradients_itself(opt)
    assert opt.defaults["max_grad_norm"] == 1.0
    assert opt.defaults["lr"] == 5e-3
    assert tuple(opt.defaults["betas"]) == (0.9, 0.999)
    assert opt.defaults["eps"] == 1e-6
    for g in opt.param_groups:
        assert g["lr"] == 5e-3


@pytest.mark.parametrize("clip", [None, 0.5])
def test_lamb_max_grad_norm_from_config(clip):
    opt = create_optimizer(tiny_model(), OptimConfig(max_grad_norm=clip), lr=1e-3)
    assert opt.defaults["max_grad_norm"] == clip


@pytest.mark.parametrize("clip", [None, 1.0])
def test_lamb_steps(clip):
    model = tiny_model()
    opt = create_optimizer(model, OptimConfig(max_grad_norm=clip), lr=1e-2)
    before = [p.detach().clone() for p in model.parameters()]
    out = model(torch.randn(2, 3, 8, 8))
    out.square().sum().backward()
    opt.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_adamw_option():
    opt = create_optimizer(tiny_model(), OptimConfig(name="adamw", weight_decay=0.05), lr=1e-3)
    assert type(opt) is torch.optim.AdamW
    assert not clips_gradients_itself(opt)
    assert set(groups_by_decay(opt)) == {0.0, 0.05}


SCHED = SchedConfig(epochs=10, warmup_epochs=2, warmup_lr=1e-6, min_lr=1e-6)


def test_schedule_endpoints():
    s = WarmupCosine(SCHED, peak_lr=5e-3, total_steps=1000, warmup_steps=200)
    assert s.lr_at(0) == pytest.approx(1e-6, rel=1e-12)
    assert s.lr_at(200) == pytest.approx(5e-3, rel=1e-12)
    assert s.lr_at(999) == pytest.approx(1e-6, rel=1e-9)
    assert s.lr_at(100) == pytest.approx(1e-6 + (5e-3 - 1e-6) * 0.5)
    # midway through the cosine: halfway between peak and floor
    assert s.lr_at(200 + 799 // 2) == pytest.approx((5e-3 + 1e-6) / 2, rel=2e-3)


def test_schedule_monotonic():
    s = WarmupCosine(SCHED, peak_lr=8e-3, total_steps=500, warmup_steps=50)
    lrs = [s.lr_at(i) for i in range(500)]
    assert all(a < b for a, b in zip(lrs[:50], lrs[1:51]))
    assert all(a >= b for a, b in zip(lrs[50:], lrs[51:]))
    assert lrs[50] > lrs[51]
    assert max(lrs) == pytest.approx(8e-3)
    assert min(lrs) >= 1e-6 - 1e-15


def test_schedule_other_floor():
    s = WarmupCosine(SchedConfig(warmup_lr=0.0, min_lr=1e-4), peak_lr=1e-2, total_steps=100, warmup_steps=10)
    assert s.lr_at(0) == 0.0
    assert s.lr_at(99) == pytest.approx(1e-4)
    assert s.lr_at(150) == pytest.approx(1e-4)


def test_schedule_no_warmup():
    s = WarmupCosine(SCHED, peak_lr=1e-3, total_steps=100, warmup_steps=0)
    assert s.lr_at(0) == pytest.approx(1e-3)
    assert s.lr_at(99) == pytest.approx(1e-6)


def test_apply_sets_every_group():
    model = tiny_model()
    opt = create_optimizer(model, OptimConfig(), lr=5e-3)
    assert len(opt.param_groups) == 2
    s = WarmupCosine(SCHED, peak_lr=5e-3, total_steps=100, warmup_steps=10)
    lr = s.apply(opt, 5)
    assert lr == pytest.approx(s.lr_at(5))
    assert all(g["lr"] == lr for g in opt.param_groups)
    s.apply(opt, 10)
    assert all(g["lr"] == pytest.approx(5e-3) for g in opt.param_groups)


# ---- SGD and the step schedule (the 2015 paper and torchvision's classic recipe) -------------------------------
from rsb.training.optim import StepDecay, create_schedule  # noqa: E402


def test_sgd_with_the_papers_settings_decays_every_parameter():
    cfg = load_recipe("cifar10_resnet").optim
    model = tiny_model()
    opt = create_optimizer(model, cfg, lr=0.1)
    assert type(opt) is torch.optim.SGD and not clips_gradients_itself(opt)
    assert (opt.defaults["momentum"], opt.defaults["nesterov"], opt.defaults["dampening"]) == (0.9, False, 0)
    assert groups_by_decay(opt) == {1e-4: {id(p) for p in model.parameters()}}  # biases and BN too
    grouped = create_optimizer(model, OptimConfig(name="sgd", weight_decay=1e-4), lr=0.1)
    assert set(groups_by_decay(grouped)) == {0.0, 1e-4}  # the A1-A3 rule when decay_biases_and_norms is false


def test_step_schedule_by_steps_the_papers_milestones():
    sched = load_recipe("cifar10_resnet").sched
    s = create_schedule(sched, 0.1, 64000, 0, steps_per_epoch=351)
    assert type(s) is StepDecay
    assert [s.lr_at(i) for i in (0, 31999, 32000, 47999, 48000, 63999)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 0.001, 0.001], rel=1e-12)


def test_step_schedule_by_epochs_torchvision():
    sched = load_recipe("torchvision").sched
    s = create_schedule(sched, 0.1, 90 * 5005, 0, steps_per_epoch=5005)
    assert s.lr_at(30 * 5005 - 1) == pytest.approx(0.1)
    assert s.lr_at(30 * 5005) == pytest.approx(0.01)  # the first step of epoch 31, as StepLR per epoch
    assert s.lr_at(60 * 5005) == pytest.approx(0.001)
    assert s.lr_at(90 * 5005 - 1) == pytest.approx(0.001)


def test_step_schedule_fixed_warmup_scaled_with_the_batch_rule():
    sched = SchedConfig(name="step", milestones=[10], unit="steps", warmup_lr=0.01, warmup_epochs=1)
    s = create_schedule(sched, 0.05, 100, warmup_steps=4, steps_per_epoch=4, lr_scale=0.5)  # lr 0.1 -> 0.05
    assert [s.lr_at(i) for i in (0, 3, 4, 9, 10)] == pytest.approx([0.005, 0.005, 0.05, 0.05, 0.005])


def test_step_schedule_error_warmup_ends_when_error_falls_and_resumes():
    sched = load_recipe("cifar10_resnet110").sched
    s = create_schedule(sched, 0.1, 64000, 0, steps_per_epoch=351)
    assert s.waiting_for_error and s.lr_at(0) == s.lr_at(1000) == pytest.approx(0.01)
    s.observe_error(390, 85.0)
    assert s.waiting_for_error  # still above 80%
    s.observe_error(400, 79.0)
    assert not s.waiting_for_error
    assert (s.lr_at(399), s.lr_at(400), s.lr_at(32000)) == pytest.approx((0.01, 0.1, 0.01))
    again = create_schedule(sched, 0.1, 64000, 0, steps_per_epoch=351)
    again.load_state_dict(s.state_dict())  # a resumed run keeps where the warm-up ended
    assert not again.waiting_for_error and again.lr_at(400) == pytest.approx(0.1)


def test_training_loop_reports_the_error_to_a_waiting_schedule():
    from rsb.training.engine import ERROR_FEEDBACK_EVERY, train_one_epoch
    torch.manual_seed(0)
    model = tiny_model()
    opt = create_optimizer(model, OptimConfig(name="sgd"), lr=0.1)
    sched = SchedConfig(name="step", milestones=[1000], unit="steps", warmup_lr=0.01, warmup_until_error=99.9)
    s = create_schedule(sched, 0.1, 1000, 0, steps_per_epoch=100)
    batches = [(torch.randn(4, 3, 8, 8), torch.randint(0, 10, (4,)), 0) for _ in range(12)]
    stats = train_one_epoch(model, batches, lambda x, y, train: (x, y), torch.nn.CrossEntropyLoss(), opt, s,
                            device=torch.device("cpu"), first_step=0, steps=12)
    assert s.warm_end == ERROR_FEEDBACK_EVERY  # the first report (error < 99.9%) ended the warm-up
    assert 0 <= stats.train_top1 <= 100
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)


# ---- timm 2021's per-epoch cosine (sched.name=cosine_per_epoch, the _timm2021 recipes) ------------------------
def _timm_2021_lrs(peak: float, epochs: int, scheduled_epochs: int) -> list[float]:
    """The lr of each epoch from timm's own CosineLRScheduler, configured as timm's train.py of 2021 (commit
    cc9bedf3) configured it through create_scheduler: the --warmup-lr, --min-lr defaults and 5 warmup epochs
    (the paper's), t_in_epochs=True, the lr set at construction for epoch 0 and by step(epoch + 1) after each
    epoch; step_update, called after every optimizer update, changes nothing."""
    from timm.scheduler import CosineLRScheduler
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=peak)
    sched = CosineLRScheduler(opt, t_initial=epochs, lr_min=1e-6, warmup_t=5, warmup_lr_init=1e-4,
                              warmup_prefix=False, t_in_epochs=True, cycle_limit=1)
    assert sched.get_cycle_length() + 10 == scheduled_epochs  # train.py's num_epochs, the 10 cooldown epochs in
    lrs, updates = [], 0
    for epoch in range(scheduled_epochs):
        lrs.append(opt.param_groups[0]["lr"])
        for _ in range(3):  # a few optimizer updates: no change within the epoch
            updates += 1
            sched.step_update(num_updates=updates)
            assert opt.param_groups[0]["lr"] == lrs[-1]
        sched.step(epoch + 1)
    return lrs


@pytest.mark.parametrize("recipe,epochs", [("a1_timm2021", 600), ("a2_timm2021", 300), ("a3_timm2021", 100)])
def test_timm2021_recipes_follow_timms_2021_scheduler_every_epoch(recipe, epochs):
    """Every epoch's lr, the 10 cooldown epochs included, is the lr timm's CosineLRScheduler gives, exactly, at the
    recipe's full scale on one process (4 accumulation steps of 512: the recipe's lr as is)."""
    from rsb.data.families.imagenet import TRAIN_IMAGES
    from rsb.training.optim import PerEpochCosine, create_schedule
    from rsb.training.plan import resolve
    from rsb.runtime.precision import Precision
    cfg = load_recipe(recipe)
    d = resolve(cfg, 1, TRAIN_IMAGES, Precision(None, "float32"), input_path="-")
    assert d.epochs == epochs + 10 and d.total_steps == d.steps_per_epoch * (epochs + 10) and d.lr == cfg.optim.lr
    schedule = create_schedule(cfg.sched, d.lr, d.total_steps, d.warmup_steps, d.steps_per_epoch, d.lr_scale)
    assert isinstance(schedule, PerEpochCosine)
    timm_lrs = _timm_2021_lrs(d.lr, epochs, d.epochs)
    n = d.steps_per_epoch
    ours = [schedule.lr_at(e * n) for e in range(d.epochs)]
    assert ours == timm_lrs  # exactly: the same arithmetic, term for term
    assert all(schedule.lr_at(e * n + n - 1) == timm_lrs[e] for e in range(d.epochs))  # one lr per epoch
    assert ours[0] == 1e-4 and ours[epochs:] == [1e-6] * 10  # warmup from 1e-4; the cooldown at the floor
    assert max(ours) < cfg.optim.lr  # the warmup lies inside the cosine: its peak is never reached


def test_per_epoch_cosine_is_not_the_per_step_one():
    """The two cosines differ where it matters (what a silent fallback to the default would change)."""
    from rsb.training.optim import create_schedule
    sched = SchedConfig(name="cosine_per_epoch", epochs=10, warmup_epochs=2, warmup_lr=1e-4, min_lr=1e-6,
                        cooldown_epochs=2)
    per_epoch = create_schedule(sched, 1e-2, total_steps=120, warmup_steps=20, steps_per_epoch=10)
    per_step = create_schedule(SchedConfig(epochs=12, warmup_epochs=2, warmup_lr=1e-4, min_lr=1e-6), 1e-2,
                               total_steps=120, warmup_steps=20, steps_per_epoch=10)
    assert [per_epoch.lr_at(s) for s in range(10)] == [1e-4] * 10
    assert per_step.lr_at(5) > per_step.lr_at(0)
    assert per_epoch.lr_at(100) == per_epoch.lr_at(119) == 1e-6 and per_step.lr_at(100) > 1e-6
