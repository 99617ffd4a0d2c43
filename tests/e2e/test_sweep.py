"""A local sweep end to end at tiny scale: launch two seeds (two at a time), status, report, relaunch, and a
second report that reuses the cached scores and notes a failed seed as a partial sweep."""
from __future__ import annotations

import csv
import json

import pytest
from tests._tiny import TINY_OVERRIDES, tiny_data

from rsb.sweep import cli
from rsb.sweep.seedjob import SeedJob
from rsb.sweep.spec import Executor, make_spec, save

PNG = b"\x89PNG\r\n\x1a\n"


def test_local_sweep_end_to_end(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    data = tiny_data(tmp_path / "sample")
    out = tmp_path / "sweep"
    launch = ["launch", "--recipe", "a2", "--seeds", "1-2", "--out", str(out), "--cluster", "local",
              "--data", str(data), "--imagenet-v2", str(data / "v2"), "--workers", "0", "--max-parallel", "2",
              *TINY_OVERRIDES, "model.name=resnet10t"]
    assert cli.main(launch) == 0
    text = capsys.readouterr().out
    assert "seed 1: finished" in text and "seed 2: finished" in text

    assert cli.main(["status", str(out)]) == 0
    text = capsys.readouterr().out
    assert "total: 2 finished" in text and "2/2" in text

    assert cli.main(["report", str(out), "--workers", "0", "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "2 of 2 seeds finished" in text and "std" in text and "ddof=1" in text
    assert "2 distinct data orders among 2 seeds, 2 distinct train losses among 2" in text
    report = out / "report"
    with open(report / "seeds.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["seed"] for r in rows] == ["1", "2"]
    for r in rows:
        assert 0 <= float(r["val_top1"]) <= 100 and 0 <= float(r["v2_top1"]) <= 100
        assert float(r["gap"]) == round(float(r["val_top1"]) - float(r["v2_top1"]), 3)
    assert rows[0]["first_epoch_loss"] != rows[1]["first_epoch_loss"]   # different seeds, different runs
    assert rows[0]["data_order"] != rows[1]["data_order"]
    doc = json.loads((report / "report.json").read_text())
    val = doc["analysis"]["statistics"]["val_top1"]
    assert val["n"] == 2 and val["mean"] == sum(float(r["val_top1"]) for r in rows) / 2
    # The final epoch's scores (last.pt), equal to what the trainer measured on val at its last epoch.
    summary = json.loads((out / "seed_0001" / "summary.json").read_text())
    assert float(rows[0]["val_top1"]) == summary["final_val_top1"]
    assert "| seed | val_top1 |" in (report / "seeds.md").read_text()
    assert "std (ddof=1)" in (report / "report.md").read_text()
    for name in ("hist_val_top1.png", "hist_v2_top1.png", "val_vs_v2.png", "curves.png"):
        data_png = (report / name).read_bytes()
        assert data_png[:8] == PNG and len(data_png) > 1000, name
    # The sets scored are named (a sample-style folder, not ImageNet), and each seed's cost is its epochs' time.
    assert "| sample V2-style split top-1 | 2 |" in (report / "report.md").read_text()
    assert "ImageNet" not in (report / "report.md").read_text()
    seconds = sum(float(r["epoch_seconds"]) for r in csv.DictReader(open(out / "seed_0001" / "metrics.csv")))
    assert float(rows[0]["train_seconds"]) == pytest.approx(seconds, abs=0.11) and rows[0]["devices"] == "1"

    # compare scores a sweep folder as the report does (from its cache here), against the released weights.
    cmp_out = tmp_path / "compare"
    assert cli.main(["compare", str(out), "--published", "a2", "--out", str(cmp_out), "--workers", "0",
                     "--device", "cpu", "--resamples", "999"]) == 0
    text = capsys.readouterr().out
    assert "all 2 seed(s) scored before" in text and "sweep: " in text and "device-hours in all" in text
    doc = json.loads((cmp_out / "compare.json").read_text())
    assert doc["metrics"]["val_top1"]["a"]["values"] == [float(r["val_top1"]) for r in rows]
    assert any("different test sets" in n for n in doc["notes"])
    assert doc["sides"]["a"]["cost"]["per_seed"]["1"]["train_seconds"] == float(rows[0]["train_seconds"])

    # Relaunching the same command submits nothing.
    assert cli.main(launch) == 0
    assert "skipping 2 finished seed(s): 1-2" in capsys.readouterr().out

    # A third seed that failed: the report is marked partial and names it; the two scores come from the cache.
    spec = json.loads((out / "sweep.json").read_text())
    spec["seeds"] = [1, 2, 3]
    (out / "sweep.json").write_text(json.dumps(spec))
    (out / "seed_0003").mkdir()
    (out / "seed_0003" / "FAILED.json").write_text(json.dumps({"type": "RuntimeError", "message": "CUDA OOM"}))
    cache = sorted((report / "scores").glob("seed_*.json"))
    stamps = [p.stat().st_mtime_ns for p in cache]
    assert cli.main(["report", str(out), "--workers", "0", "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "all 2 seed(s) scored before" in text and "PARTIAL" in text
    assert "1 failed seed(s): 3" in text and "seed 3 failed: RuntimeError: CUDA OOM" in text
    assert [p.stat().st_mtime_ns for p in cache] == stamps


@pytest.mark.slow
def test_submitit_job_trains_one_seed_as_ddp_across_its_tasks(tmp_path, monkeypatch):
    """The job as Slurm runs it, through submitit's local executor with two tasks: each task sets its rank from
    submitit's JobEnvironment and the two train one seed together (gloo on CPU)."""
    submitit = pytest.importorskip("submitit")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    data = tiny_data(tmp_path / "sample")
    out = tmp_path / "sweep"
    spec = make_spec("a2", [7], TINY_OVERRIDES, data, None, Executor(workers=0, device="cpu"))
    save(spec, out)
    executor = submitit.AutoExecutor(folder=tmp_path / "logs", cluster="local")
    executor.update_parameters(tasks_per_node=2, timeout_min=10)
    summaries = executor.submit(SeedJob.from_spec(spec, out, 7)).results()
    assert len(summaries) == 2 and all(s["world_size"] == 2 and s["seed"] == 7 for s in summaries)
    assert summaries[0]["final_epoch"] == 2  # rank 0 writes the run folder
    assert json.loads((out / "seed_0007" / "summary.json").read_text())["world_size"] == 2
    assert not (out / "seed_0007" / "RUNNING.json").exists()
