"""The report and compare on sweep folders without training: run folders written here, scores from a stand-in
scorer. What a run cost (summed over resumed parts), the names of the sets scored, and the report's statistics
unchanged by the move to SciPy."""
from __future__ import annotations

import csv
import json
import math
import random

import pytest

from rsb.run import folder as run_folder
from rsb.sweep import cli, cost, report, scores, stats
from rsb.sweep.spec import Executor, SweepSpec, run_dir_name, save

METRIC_HEADER = ("epoch,step,train_loss,train_top1,lr,val_top1,val_top5,val_loss,ema_top1,ema_top5,images_per_sec,"
                 "epoch_seconds,skipped_images,nonfinite_steps,precision,note\n")


def _metrics_row(epoch: int, step: int, rate: float, seconds: float) -> str:
    return f"{epoch},{step},0.5,,0.001,50.0,90.0,1.0,,,{rate},{seconds},0,0,float32,\n"


def write_run(run_dir, rows: list[tuple], world_size: int = 2, global_batch: int = 64, summary: dict | None = None):
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / run_folder.METRICS).write_text(METRIC_HEADER + "".join(_metrics_row(*r) for r in rows))
    (run_dir / run_folder.RESOLVED).write_text(f"derived:\n  world_size: {world_size}\n  global_batch: "
                                               f"{global_batch}\n")
    (run_dir / run_folder.SUMMARY).write_text(json.dumps(summary or {"final_epoch": len(rows)}))
    (run_dir / run_folder.LAST).write_bytes(b"checkpoint")
    return run_dir


# ---- cost ------------------------------------------------------------------------------------------------------
def test_cost_sums_every_part_of_a_resumed_run(tmp_path):
    # 10 steps of 64 images an epoch at 64 images/s: 10 s an epoch. The run was stopped after epoch 2 and again in
    # the middle of epoch 3: its resumed part trained 4 of 10 steps (256 images, 4 s), and summary.json holds only
    # the last session's seconds.
    d = write_run(tmp_path / "run", [(1, 10, 64.0, 10.0), (2, 20, 64.0, 10.0), (3, 30, 64.0, 4.0), (4, 40, 64.0, 10.0)],
                  world_size=8, summary={"final_epoch": 4, "train_seconds_this_session": 14.0, "world_size": 8})
    c = cost.run_cost(d)
    assert c == {"train_seconds": 40.0, "devices": 8, "device_hours": pytest.approx(8 * 40.0 / 3600)}
    # Without the rate, an epoch is taken as timed.
    assert cost.epoch_seconds([{"epoch_seconds": "4.0", "step": "30"}], 64) == 4.0
    # Rounding of a whole epoch's figures (0.34 s shown as 0.3) does not make it look partial.
    assert cost.epoch_seconds([{"epoch_seconds": "0.3", "step": "1", "images_per_sec": "188.2"}], 64) == 0.3
    assert cost.total([c, cost.run_cost(tmp_path / "none")]) == {
        "seeds": 2, "seeds_known": 1, "train_seconds": 40.0, "device_hours": pytest.approx(8 * 40.0 / 3600),
        "devices": [8]}


# ---- a sweep folder scored by a stand-in -----------------------------------------------------------------------
def fake_sweep(out, seeds, val, v2, rows=((1, 10, 64.0, 30.0), (2, 20, 64.0, 30.0))):
    spec = SweepSpec(recipe="a2", seeds=list(seeds), overrides=[], data=None, imagenet_v2=None, epochs=len(rows),
                     config={"data": {"dataset": "imagenet"}}, executor=Executor(cluster="local"))
    save(spec, out)
    for s in seeds:
        write_run(out / run_dir_name(s), list(rows))
    scored = {s: {"val_top1": val[s], "v2_top1": v2[s], "gap": round(val[s] - v2[s], 3), "val_top5": 99.0,
                  "v2_top5": 98.0, "v2_set": "sample", "val_images": 500, "v2_images": 100, "data_order": f"o{s}"}
              for s in seeds}

    def scorer(spec, out, seeds, cache_dir, *args, **kwargs):
        return {s: scored[s] for s in seeds}
    return scorer


def test_report_names_the_sample_sets_and_shows_the_cost(tmp_path):
    out = tmp_path / "sweep"
    scorer = fake_sweep(out, [1, 2, 3], {1: 80.0, 2: 81.0, 3: 82.6}, {1: 70.0, 2: 72.0, 3: 71.0})
    doc = report.build_report(out, log=lambda m: None, scorer=scorer)
    md = (out / "report" / "report.md").read_text()
    assert "ImageNet" not in md + "\n".join(doc["summary"])
    assert "| sample val split top-1 | 3 |" in md and "| sample V2-style split top-1 | 3 |" in md
    assert "best seed on sample val split top-1: 3 (82.60)" in doc["summary"]
    # 2 epochs of 30 s on 2 devices per seed: 60 s and 2 * 60 / 3600 device-hours each, 0.1 in all.
    assert "cost: 0.1 device-hours in all, 60 s of training per seed on 2 device(s)" in doc["summary"]
    with open(out / "report" / "seeds.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows[0]["val_set"] == "sample val split" and rows[0]["v2_set"] == "sample"
    assert (rows[0]["val_images"], rows[0]["train_seconds"], rows[0]["devices"]) == ("500", "60.0", "2")
    assert float(rows[0]["device_hours"]) == pytest.approx(2 * 60 / 3600)


def test_compare_of_two_sweep_folders_names_sets_and_states_the_cost(tmp_path, capsys, monkeypatch):
    a, b = tmp_path / "a2", tmp_path / "a2-half-lr"
    score_a = fake_sweep(a, [1, 2, 3], {1: 80.0, 2: 81.0, 3: 82.6}, {1: 70.0, 2: 72.0, 3: 71.0})
    score_b = fake_sweep(b, [1, 2, 3], {1: 70.0, 2: 71.0, 3: 70.4}, {1: 60.0, 2: 62.0, 3: 61.0},
                         rows=((1, 10, 64.0, 45.0), (2, 20, 64.0, 45.0)))
    monkeypatch.setattr(scores, "score_seeds", lambda spec, out, *rest, **kw: (score_a if out == a else score_b)(
        spec, out, *rest))
    assert cli.main(["compare", str(a), str(b), "--out", str(tmp_path / "c")]) == 0
    printed = capsys.readouterr().out
    assert "sample val split top-1: a2 is above a2-half-lr by 10.73 points" in printed
    assert "a2: 0.1 device-hours in all, 60 s of training per seed on 2 device(s)" in printed
    assert "a2-half-lr: 0.15 device-hours in all, 90 s of training per seed on 2 device(s)" in printed
    doc = json.loads((tmp_path / "c" / "compare.json").read_text())
    noise = doc["metrics"]["v2_top1"]["noise"]  # 100 images: sampling sqrt(.71 * .29 / 100) = 4.5 points
    assert noise["sampling_std"]["a"] == pytest.approx(100 * math.sqrt(0.71 * 0.29 / 100))
    assert noise["larger"] == "test-set sampling" and not noise["sampling_images_assumed"]
    md = (tmp_path / "c" / "compare.md").read_text()
    assert "| a2-half-lr | all | 4.5 min | " in md and "| a2 | 1 | 60 s | 2 | 0.0333 |" in md
    # The report's seeds.csv of the same sweep is a side too, and keeps the set names and costs.
    report.build_report(a, log=lambda m: None, scorer=score_a)
    assert cli.main(["compare", str(a / "report" / "seeds.csv"), str(b), "--out", str(tmp_path / "c2")]) == 0
    assert "sample val split top-1: a2 is above a2-half-lr by 10.73 points" in capsys.readouterr().out


def test_a_sweep_without_finished_seeds_is_an_empty_side(tmp_path, capsys):
    fake_sweep(tmp_path / "a", [1, 2], {1: 80.0, 2: 81.0}, {1: 70.0, 2: 71.0})
    save(SweepSpec(recipe="a2", seeds=[1, 2], overrides=[], data=None, imagenet_v2=None, epochs=3), tmp_path / "b")
    assert cli.main(["compare", str(tmp_path / "b"), str(tmp_path / "a"), "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"error: no seed of {tmp_path / 'b'} has finished yet, so that side is empty; see "
                   f"'python -m rsb.sweep status {tmp_path / 'b'}'.")


# ---- the report's statistics: the same numbers from SciPy as from the hand-written code it replaced -------------
def _old_ranks(values):
    order = sorted(range(len(values)), key=lambda i: values[i])
    r, i = [0.0] * len(values), 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            r[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return r


def _old_pearson(x, y):
    n = len(x)
    mx, my = sum(x) / n, sum(y) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    sxx, syy = sum((a - mx) ** 2 for a in x), sum((b - my) ** 2 for b in y)
    return max(-1.0, min(1.0, sxy / math.sqrt(sxx * syy)))


def test_report_correlations_unchanged_by_scipy():
    rng = random.Random(5)
    for n in (2, 3, 10, 100):
        # scores on a 0.02 grid, as a 5,000-image set gives: ties happen
        x = [round(80 + rng.gauss(0, 0.1) / 0.02) * 0.02 for _ in range(n)]
        y = [round(68 + 0.5 * (v - 80) + rng.gauss(0, 0.2) / 0.02) * 0.02 for v in x]
        if len(set(x)) < 2 or len(set(y)) < 2:
            continue
        rows = [{"seed": s, "val_top1": a, "v2_top1": b} for s, (a, b) in enumerate(zip(x, y))]
        c = report.analyse(rows)["correlation"]
        assert c["pearson"] == pytest.approx(_old_pearson(x, y), rel=1e-12, abs=1e-12)
        assert c["spearman"] == pytest.approx(_old_pearson(_old_ranks(x), _old_ranks(y)), rel=1e-12, abs=1e-12)
    assert stats.spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(_old_pearson([1, 2.5, 2.5, 4], [1, 3, 2, 4]))
