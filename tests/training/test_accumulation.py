"""Gradient accumulation: k micro-batches of b give the gradient of one batch of k x b; DDP all-reduces only on
the last micro-batch of each step; an interrupted run with accumulation resumes bitwise; the float16
GradScaler path and the AdamW clipping path each run once."""
from __future__ import annotations

import csv
import json
import signal
import subprocess

import pytest
import torch
import yaml

from tests._tiny import REPO, tiny_data
from rsb.run import checkpoint
from rsb.runtime import distributed
from rsb.runtime import precision
from rsb.config.schema import SchedConfig
from rsb.training.engine import train_one_epoch
from rsb.training.optim import WarmupCosine
from tests.e2e.test_faults import (FAULT_OVERRIDES, _args, _env, _interrupt_at_step, _run, _same, _same_records,
                                   _weights)

CPU = torch.device("cpu")
# Accumulate 2 micro-batches of 8 up to the reference batch of 16: with the tiny data (3 repeats dealt over 4
# sampler lanes, 1 process x 2 micro-steps x 2) an epoch has several optimizer steps, so a run can be stopped and
# resumed mid-epoch (with micro-batches of 16 it would have 2).
ACCUM_OVERRIDES = ["optim.batch_rule=accumulate", "optim.reference_batch=16", "train.batch_per_device=8"]
# One epoch, no periodic checkpoint: enough for the in-process runs of the float16 and clipping paths.
SHORT = ["sched.epochs=1", "sched.warmup_epochs=0", "run.checkpoint_every_steps=0", "run.log_every=50"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tiny_data(tmp_path_factory.mktemp("accum") / "sample")


# ---- engine level ---------------------------------------------------------------------------------------------
def _mlp(dtype=torch.float64) -> torch.nn.Module:
    """No batch norm: a batch's gradient is the mean of its samples' gradients, however they are split."""
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3)).to(dtype)


def _samples(n: int, seed: int, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 6, generator=g, dtype=dtype), torch.randint(0, 3, (n,), generator=g)


def _batches(x, y, size: int):
    return [(x[i:i + size], y[i:i + size], 0) for i in range(0, len(x), size)]


class Counter:
    """prep for train_one_epoch that counts the micro-batches it has prepared."""

    def __init__(self):
        self.micro = 0

    def __call__(self, images, labels, train=False):
        self.micro += 1
        return images, labels


class SpySchedule(WarmupCosine):
    def __init__(self, *args):
        super().__init__(*args)
        self.applied = []

    def apply(self, optimizer, step):
        self.applied.append(step)
        return super().apply(optimizer, step)


def _spy_steps(optimizer, prep: Counter, params):
    """Record, at every optimizer.step, the micro-batch count, the lr and a copy of the gradients."""
    calls = []
    real = optimizer.step

    def step(*args, **kwargs):
        calls.append({"micro": prep.micro, "lr": optimizer.param_groups[0]["lr"],
                      "grads": [p.grad.detach().clone() for p in params]})
        return real(*args, **kwargs)

    optimizer.step = step
    return calls


def _train(batches, accum: int, steps: int, first_step: int, opt_name: str, **kw):
    model = _mlp()
    params = list(model.parameters())
    opt = (torch.optim.AdamW(params, lr=1.0, weight_decay=0.05) if opt_name == "adamw"
           else torch.optim.SGD(params, lr=1.0, momentum=0.9))
    schedule = SpySchedule(SchedConfig(warmup_lr=1e-3, min_lr=1e-4), 0.05, 10, 3)
    prep = Counter()
    calls = _spy_steps(opt, prep, params)
    stats = train_one_epoch(model, batches, prep, torch.nn.functional.cross_entropy, opt, schedule, device=CPU,
                            first_step=first_step, steps=steps, accum_steps=accum, **kw)
    return model, stats, calls, schedule, prep


@pytest.mark.parametrize("opt_name", ["sgd", "adamw"])
def test_k_micro_batches_accumulate_to_the_gradient_of_one_batch_of_k_times_b(opt_name):
    k, b, steps, first = 4, 5, 3, 2
    x, y = _samples(k * b * steps, seed=1)
    # One extra step's worth of micro-batches: the loop must stop after `steps` optimizer steps.
    xe, ye = _samples(k * b, seed=2)
    micro = _batches(torch.cat([x, xe]), torch.cat([y, ye]), b)
    acc_model, acc_stats, acc_calls, acc_sched, acc_prep = _train(micro, k, steps, first, opt_name)
    one_model, one_stats, one_calls, one_sched, _ = _train(_batches(x, y, k * b), 1, steps, first, opt_name)

    # One optimizer step per k micro-batches, after the k-th, and no more micro-batches than k x steps read.
    assert acc_stats.steps == one_stats.steps == steps
    assert [c["micro"] for c in acc_calls] == [k * (i + 1) for i in range(steps)]
    assert acc_prep.micro == k * steps
    # The schedule is applied once per optimizer step, at the global step, before the step's first micro-batch.
    assert acc_sched.applied == one_sched.applied == list(range(first, first + steps))
    assert [c["lr"] for c in acc_calls] == [acc_sched.lr_at(s) for s in range(first, first + steps)]
    assert acc_stats.lr == acc_sched.lr_at(first + steps - 1)
    # The same gradient at every step, hence the same weights.
    for a, o in zip(acc_calls, one_calls):
        for ga, go in zip(a["grads"], o["grads"]):
            torch.testing.assert_close(ga, go, rtol=1e-12, atol=1e-14)
    for pa, po in zip(acc_model.parameters(), one_model.parameters()):
        torch.testing.assert_close(pa, po, rtol=1e-12, atol=1e-14)
    assert all(p.grad is None for p in acc_model.parameters())  # zeroed after the last step
    # The reported loss is the mean of the micro-batch losses: the mean over the same samples (summed in float32).
    assert acc_stats.loss == pytest.approx(one_stats.loss, rel=1e-6)


def test_accumulation_is_not_a_bigger_batch_of_the_first_micro_batch_only():
    """The equality above can fail: without dividing each micro-batch's loss by k the gradient is k times too big,
    and a plain step per micro-batch (accum_steps=1) gives other weights."""
    k, b = 4, 5
    x, y = _samples(k * b, seed=3)
    acc_model, _, acc_calls, _, _ = _train(_batches(x, y, b), k, 1, 0, "sgd")
    per_micro_model, _, per_calls, _, _ = _train(_batches(x, y, b), 1, k, 0, "sgd")
    assert len(acc_calls) == 1 and len(per_calls) == k
    assert not torch.allclose(acc_model[0].weight, per_micro_model[0].weight)
    # The accumulated gradient is the mean of the micro-batches' own gradients.
    model = _mlp()
    grads = []
    for xi, yi, _ in _batches(x, y, b):
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(xi), yi).backward()
        grads.append(model[0].weight.grad.clone())
    torch.testing.assert_close(acc_calls[0]["grads"][0], torch.stack(grads).mean(0), rtol=1e-12, atol=1e-14)


def test_grad_scaler_unscales_before_clipping_once_per_step(monkeypatch):
    """float16 loss scaling with accumulation and clipping: the scaled gradients are unscaled once per optimizer
    step, before clip_grad_norm_, so the update equals the unscaled one (a power-of-two scale is exact)."""
    k, b, steps = 2, 6, 3
    x, y = _samples(k * b * steps, seed=4, dtype=torch.float32)
    clip_calls = []
    real_clip = torch.nn.utils.clip_grad_norm_

    def spy_clip(parameters, max_norm, *args, **kwargs):
        parameters = list(parameters)
        clip_calls.append((max_norm, [p.grad.detach().clone() for p in parameters]))
        return real_clip(parameters, max_norm, *args, **kwargs)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", spy_clip)
    results = {}
    for name, scaler, amp in [("plain", None, None), ("scaled", torch.amp.GradScaler("cpu", init_scale=2.0**12), None),
                              ("float16", torch.amp.GradScaler("cpu", init_scale=2.0**12), torch.float16)]:
        clip_calls.clear()
        model = _mlp(torch.float32)
        opt = torch.optim.AdamW(model.parameters(), lr=0.01)
        schedule = WarmupCosine(SchedConfig(), 0.01, 10, 0)
        unscales = []
        if scaler is not None:
            real_unscale = scaler.unscale_
            monkeypatch.setattr(scaler, "unscale_", lambda o: (unscales.append(len(clip_calls)), real_unscale(o)))
        stats = train_one_epoch(model, _batches(x, y, b), Counter(), torch.nn.functional.cross_entropy, opt,
                                schedule, device=CPU, first_step=0, steps=steps, accum_steps=k, amp_dtype=amp,
                                scaler=scaler, clip_grad=0.05)
        assert stats.steps == steps
        assert [c[0] for c in clip_calls] == [0.05] * steps
        if scaler is not None:
            assert unscales == list(range(steps))  # once per step, each before that step's clip
            assert scaler.get_scale() == 2.0**12    # no inf/nan step
        results[name] = (model, [c[1] for c in clip_calls])
    plain, scaled = results["plain"], results["scaled"]
    for gp, gs in zip(plain[1], scaled[1]):  # clip sees unscaled gradients
        for a, s in zip(gp, gs):
            torch.testing.assert_close(a, s, rtol=1e-6, atol=1e-9)
    for a, s in zip(plain[0].parameters(), scaled[0].parameters()):
        torch.testing.assert_close(a, s, rtol=1e-6, atol=1e-8)
    assert all(torch.isfinite(p).all() for p in results["float16"][0].parameters())
    assert not all(torch.equal(a, s) for a, s in zip(plain[0].parameters(), results["float16"][0].parameters()))


# ---- DDP: the all-reduce only on the last micro-batch of each step -------------------------------------------
def _ddp_worker(rank: int, world: int, init_file: str, out_dir: str, k: int, b: int, micro_batches: int):
    import torch.distributed as dist
    from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        results = {}
        x, y = _samples(micro_batches * b, seed=100 + rank)
        for accum in (k, 1):
            model = _mlp()
            ddp = torch.nn.parallel.DistributedDataParallel(model)
            prep = Counter()
            reduces = []

            def counting_allreduce(state, bucket, prep=prep, reduces=reduces):
                reduces.append((prep.micro, bucket.index()))
                return default_hooks.allreduce_hook(None, bucket)

            ddp.register_comm_hook(None, counting_allreduce)
            opt = torch.optim.SGD(ddp.parameters(), lr=0.5, momentum=0.9)
            schedule = WarmupCosine(SchedConfig(), 0.5, 10, 0)
            stats = train_one_epoch(ddp, _batches(x, y, b), prep, torch.nn.functional.cross_entropy, opt, schedule,
                                    device=CPU, first_step=0, steps=micro_batches // accum, accum_steps=accum,
                                    world_size=world)
            results[accum] = {"reduces": reduces, "steps": stats.steps, "micro": prep.micro, "loss": stats.loss,
                              "weights": {n: t.detach().clone() for n, t in model.state_dict().items()}}
        torch.save(results, f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


DDP_WORLD, DDP_K, DDP_B, DDP_MICRO = 2, 4, 3, 8  # processes, micro-batches per step, their size, micro-batches


def _ddp_checks(rank: int, world: int, out_dir: str):
    """Both DDP checks of this file, one after the other, in the same processes."""
    _ddp_worker(rank, world, f"{out_dir}/store", out_dir, DDP_K, DDP_B, DDP_MICRO)
    _ddp_skip_worker(rank, world, f"{out_dir}/skip_store", out_dir)


@pytest.fixture(scope="module")
def ddp_checks(tmp_path_factory):
    """The results of both DDP checks: starting the processes (each imports torch and timm) takes longer than the
    checks, so one pair of processes runs both."""
    import torch.multiprocessing as mp

    out = tmp_path_factory.mktemp("ddp")
    mp.spawn(_ddp_checks, args=(DDP_WORLD, str(out)), nprocs=DDP_WORLD, join=True)
    return out


def test_ddp_skips_the_all_reduce_on_accumulation_micro_steps(ddp_checks):
    world, k, b, micro = DDP_WORLD, DDP_K, DDP_B, DDP_MICRO
    ranks = [torch.load(ddp_checks / f"rank{r}.pt") for r in range(world)]
    for res in ranks:
        # Without accumulation every micro-batch all-reduces every bucket: this is what the hook counts.
        plain = res[1]["reduces"]
        buckets = sorted({bucket for _, bucket in plain})
        assert sorted(plain) == [(m, bk) for m in range(1, micro + 1) for bk in buckets]
        # With accumulation only the k-th micro-batch of each step does: 2 of 8, every bucket once each.
        accum = res[k]
        assert accum["steps"] == micro // k and accum["micro"] == micro
        assert sorted(accum["reduces"]) == [(m, bk) for m in (k, 2 * k) for bk in buckets]
    for accum in (k, 1):  # every rank ends with the same weights, and reports the loss averaged over ranks
        assert _same(ranks[0][accum]["weights"], ranks[1][accum]["weights"])
        assert ranks[0][accum]["loss"] == ranks[1][accum]["loss"]  # each rank's own data differs
    # And those are the weights of one process taking the mean gradient over all ranks' k micro-batches per step.
    xs = [_samples(micro * b, seed=100 + r) for r in range(world)]
    per_step = k * b
    big = [(torch.cat([xs[r][0][s * per_step:(s + 1) * per_step] for r in range(world)]),
            torch.cat([xs[r][1][s * per_step:(s + 1) * per_step] for r in range(world)]), 0)
           for s in range(micro // k)]
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    train_one_epoch(model, big, Counter(), torch.nn.functional.cross_entropy, opt, WarmupCosine(SchedConfig(), 0.5,
                    10, 0), device=CPU, first_step=0, steps=micro // k)
    for name, t in model.state_dict().items():
        torch.testing.assert_close(ranks[0][k]["weights"][name], t, rtol=1e-10, atol=1e-12)


# ---- whole runs ------------------------------------------------------------------------------------------------
def test_interrupted_run_with_accumulation_ends_bitwise_equal_to_uninterrupted(data, tmp_path):
    reference, run = tmp_path / "reference", tmp_path / "interrupted"
    extra = [*ACCUM_OVERRIDES, "sched.epochs=1", "sched.warmup_epochs=0.5"]
    # The uninterrupted run alongside the interrupted one (they share nothing but the data).
    ref_proc = subprocess.Popen(_args(data, reference, workers=0, extra=extra), cwd=REPO, env=_env(),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    cmd = _args(data, run, workers=0, extra=extra)
    # SIGUSR1 in the middle of the epoch: the run stops after step 2 (or a step later on a slow machine).
    code, log = _interrupt_at_step(cmd, 2, signal.SIGUSR1)
    assert code == 128 + signal.SIGUSR1, log
    mid = checkpoint.load(run / "last.pt")
    derived = mid["derived"]
    assert derived["accum_steps"] == 2 and derived["global_batch"] == 16 and derived["batch_per_device"] == 8
    assert derived["steps_per_epoch"] >= 4, "too few steps per epoch to stop in the middle"
    assert mid["epoch"] == 0 and 2 <= mid["step"] < derived["steps_per_epoch"] and mid["epoch_step"] == mid["step"]
    # The same command resumes mid-epoch: the data stream skips epoch_step x 2 micro-batches of 8.
    res = _run(cmd)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"continuing at epoch 1, step {mid['epoch_step']}" in res.stdout, res.stdout
    out, _ = ref_proc.communicate(timeout=300)
    assert ref_proc.returncode == 0, out
    assert "accumulate 2 steps of 8" in out
    resolved = yaml.safe_load((reference / "resolved.yaml").read_text())["derived"]
    assert resolved["accum_steps"] == 2 and resolved["global_batch"] == 16
    assert yaml.safe_load((run / "resolved.yaml").read_text())["derived"] == resolved
    ref, got = _weights(reference), _weights(run)
    assert got["step"] == ref["step"] == resolved["total_steps"] == resolved["steps_per_epoch"]
    assert _same(ref["model"], got["model"]), "resumed weights differ from the uninterrupted run"
    assert _same(ref["optimizer"], got["optimizer"])
    (row,) = _same_records(reference, run)  # the resumed epoch's loss is the uninterrupted one's, bitwise
    assert row["epoch"] == "1" and row["note"].startswith(f"resumed at step {mid['step']}:")


def _in_process_trainer(data, out, extra):
    from rsb.training.run_config import build_config
    from rsb.training.trainer import LaunchOptions, Trainer

    cfg = build_config("a2", [*FAULT_OVERRIDES, *ACCUM_OVERRIDES, *SHORT, *extra], sample=False)
    trainer = Trainer(cfg, LaunchOptions(data=data, output=out, workers=0, device="cpu", quiet=True))
    trainer.setup()
    return trainer


def _finite(state: dict) -> bool:
    return all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def test_float16_grad_scaler_path_runs(data, tmp_path, monkeypatch):
    # This CPU computes float16 natively as far as the run can tell: the recipe's autocast is kept, in float16.
    monkeypatch.setattr(precision, "cpu_native_features", lambda: ["AMX_FP16"])
    out = tmp_path / "run"
    trainer = _in_process_trainer(data, out, ["train.amp_dtype=float16"])
    try:
        assert trainer.precision.dtype == torch.float16 and trainer.precision.needs_scaler
        assert isinstance(trainer.parts.scaler, torch.amp.GradScaler)
        assert trainer.derived.accum_steps == 2
        scaled, stepped, dtypes = [], [], []
        real_scale, real_step = trainer.parts.scaler.scale, trainer.parts.scaler.step
        monkeypatch.setattr(trainer.parts.scaler, "scale", lambda loss: (scaled.append(1), real_scale(loss))[1])
        monkeypatch.setattr(trainer.parts.scaler, "step", lambda opt: (stepped.append(1), real_step(opt))[1])
        trainer.parts.model.register_forward_hook(lambda m, i, o: dtypes.append(o.dtype) if m.training else None)
        summary = trainer.run()
    finally:
        distributed.cleanup()
    steps = trainer.derived.total_steps
    assert len(stepped) == steps and len(scaled) == 2 * steps  # every micro-batch scaled, one scaled step each
    assert set(dtypes) == {torch.float16}  # the training forward ran in float16 autocast
    last = checkpoint.load(out / "last.pt")
    assert last["step"] == steps and _finite(last["model"])
    assert last["scaler"] is not None and last["scaler"]["scale"] > 0
    derived = yaml.safe_load((out / "resolved.yaml").read_text())["derived"]
    assert derived["precision"] == "float16" and "AMX_FP16" in derived["precision_reason"]
    assert summary["precision"] == "float16"
    assert json.loads((out / "summary.json").read_text())["precision"] == "float16"
    assert [r["precision"] for r in csv.DictReader(open(out / "metrics.csv"))] == ["float16"]


def test_adamw_clipping_path_runs(data, tmp_path, monkeypatch):
    calls = []
    real_clip = torch.nn.utils.clip_grad_norm_

    def spy_clip(parameters, max_norm, *args, **kwargs):
        parameters = list(parameters)
        before = real_clip(parameters, max_norm, *args, **kwargs)
        after = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in parameters]))
        calls.append((max_norm, parameters, float(before), float(after)))
        return before

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", spy_clip)
    out = tmp_path / "run"
    trainer = _in_process_trainer(data, out, ["optim.name=adamw", "optim.max_grad_norm=0.5"])
    try:
        assert isinstance(trainer.parts.optimizer, torch.optim.AdamW) and trainer.parts.clip == 0.5
        assert trainer.parts.scaler is None and trainer.derived.accum_steps == 2
        trainer.run()
    finally:
        distributed.cleanup()
    steps = trainer.derived.total_steps
    assert len(calls) == steps  # once per optimizer step, not per micro-batch
    params = list(trainer.parts.model.parameters())
    for max_norm, clipped, before, after in calls:
        assert max_norm == 0.5
        assert len(clipped) == len(params) and all(a is b for a, b in zip(clipped, params))
        assert after <= min(before, 0.5) * (1 + 1e-5)
    assert any(before > 0.5 for _, _, before, _ in calls)  # the clipping did something
    last = checkpoint.load(out / "last.pt")
    assert last["step"] == steps and _finite(last["model"])


# ---- DDP with run.nonfinite=skip: every process skips the same micro-batch ---------------------------------
def _ddp_skip_worker(rank: int, world: int, init_file: str, out_dir: str):
    import datetime

    import torch.distributed as dist

    torch.set_num_threads(1)
    # A short timeout: were the processes to disagree, their collectives would stop pairing up and wait.
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=60))
    try:
        x, y = _samples(4 * 3, seed=200 + rank)
        model = _mlp()
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        calls = {"n": 0}
        # rank 1: NaN on micro-batch 2 (the update of step 1); rank 0: NaN on micro-batch 3 (an accumulation one)
        bad = {0: 3, 1: 2}[rank]

        def loss_fn(out, target):
            calls["n"] += 1
            loss = torch.nn.functional.cross_entropy(out, target)
            return loss * float("nan") if calls["n"] == bad else loss

        opt = torch.optim.SGD(ddp.parameters(), lr=0.5)
        steps = []
        real_step = opt.step
        opt.step = lambda *a, **k: (steps.append(calls["n"]), real_step(*a, **k))[1]
        stats = train_one_epoch(ddp, _batches(x, y, 3), Counter(), loss_fn, opt,
                                WarmupCosine(SchedConfig(), 0.5, 10, 0), device=CPU, first_step=0, steps=2,
                                accum_steps=2, world_size=world, skip_nonfinite=True)
        torch.save({"nonfinite": stats.nonfinite_skipped, "steps": stats.steps, "optimizer_steps": steps,
                    "weights": {n: t.detach().clone() for n, t in model.state_dict().items()}},
                   f"{out_dir}/skip{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_ddp_skip_nonfinite_agrees_across_processes(ddp_checks):
    """One process's NaN makes every process skip that micro-batch (no hang, no drift); a skipped last
    micro-batch drops its step, whose gradients were never all-reduced."""
    r0, r1 = (torch.load(ddp_checks / f"skip{r}.pt") for r in range(2))
    for r in (r0, r1):
        assert r["nonfinite"] == 2 and r["steps"] == 2
        assert r["optimizer_steps"] == [4]  # step 1 (micro-batches 1-2) dropped, step 2 taken
    assert _same(r0["weights"], r1["weights"])
    assert not _same(r0["weights"], {n: t for n, t in _mlp().state_dict().items()})


def test_seeding_each_micro_batch_makes_its_random_draws_independent_of_the_process_history():
    """A resumed process (or another DDP rank restoring rank 0's generator state) draws what an uninterrupted
    one draws: seed_micro_batch(step, k) reseeds before every micro-batch's device work (here a dropout)."""
    x, y = _samples(40, seed=3)
    seeds = []

    def run(history_seed: int):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Dropout(0.5), torch.nn.Linear(16, 3))
        model = model.to(torch.float64)
        torch.manual_seed(history_seed)  # whatever the process drew before
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        schedule = WarmupCosine(SchedConfig(warmup_lr=1e-3, min_lr=1e-4), 0.05, 10, 0)

        def reseed(step, k):
            seeds.append((step, k))
            torch.manual_seed(1000 * step + k)
        train_one_epoch(model, _batches(x, y, 5), lambda a, b, train=False: (a, b),
                        torch.nn.functional.cross_entropy, opt, schedule, device=CPU, first_step=4, steps=4,
                        accum_steps=2, seed_micro_batch=reseed)
        return [p.detach().clone() for p in model.parameters()]

    a, b = run(1), run(2)
    assert all(torch.equal(p, q) for p, q in zip(a, b))
    assert seeds[:8] == [(4, 0), (4, 1), (5, 0), (5, 1), (6, 0), (6, 1), (7, 0), (7, 1)]
