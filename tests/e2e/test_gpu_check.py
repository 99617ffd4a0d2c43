"""The GPU check's CPU dry run (`python -m benchmarks.gpu_check --cpu-dry-run`): the whole check at tiny sizes,
every row in its table, real figures for what a CPU runs, "skipped (no CUDA)" for what needs the GPU, and the
table written where --results says (and not to benchmarks/RESULTS.md). Run from the repository root without
PYTHONPATH, as the README has users type it."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests._tiny import REPO

COMMAND = [sys.executable, "-m", "benchmarks.gpu_check"]
FOLDER_COMMAND = [sys.executable, str(REPO / "benchmarks" / "gpu_check")]  # `python benchmarks/gpu_check`
IMG_S = r"\d+ img/s"
CPU_ROWS = {  # label: what its row must show
    "training step, synthetic data, A2": "synthetic",
    "training step, synthetic data, A3": "synthetic",
    "training step, synthetic data, A2, model.compile=true": "synthetic",
    "training step, synthetic data, A3, model.compile=true": "synthetic",
    "training from JPEGs, A2 (rsb TrainLoader / timm create_loader)": "loader",
    "training from JPEGs, A3 (rsb TrainLoader / timm create_loader)": "loader",
    "validate.py throughput, float32": "validate",
}
CUDA_ROWS = ("GPU tests (pytest -m gpu tests/e2e/test_gpu.py)", "validate.py throughput, bf16 (--amp)")


def table_rows(text: str) -> dict[str, list[str]]:
    rows = {}
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("| check "):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            rows[cells[0]] = cells
    return rows


def root_env(**extra) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="", **extra)
    env.pop("PYTHONPATH", None)  # the repository root as the working folder is all the command needs
    return env


def test_cpu_dry_run_prints_and_writes_every_row(tmp_path):
    results = tmp_path / "results.md"
    results.write_text("# earlier results\n")
    official = REPO / "benchmarks" / "RESULTS.md"
    official_before = official.read_bytes() if official.exists() else None
    proc = subprocess.run([*COMMAND, "--cpu-dry-run", "--results", str(results)], cwd=REPO,
                          env=root_env(PYTHONUNBUFFERED="1"), capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "python -m benchmarks.gpu_check" in proc.stdout.splitlines()[0]  # the usage line comes first

    written = results.read_text()
    assert written.startswith("# earlier results\n")  # appended, not replaced
    assert "## GPU check (issue 17): CPU dry run" in written
    assert "torch.backends.cpu.get_cpu_capability() = " in written
    assert "- command: `python -m benchmarks.gpu_check --cpu-dry-run --results " in written
    rows = table_rows(written)
    assert table_rows(proc.stdout) == rows  # the printed table is the one written
    assert set(rows) == set(CPU_ROWS) | set(CUDA_ROWS), sorted(rows)
    for label, kind in CPU_ROWS.items():
        _, setting, status, rsb, timm, ratio, wait = rows[label]
        assert status == "ok", (label, status)
        assert re.fullmatch(IMG_S, rsb) and re.fullmatch(IMG_S, timm), (label, rsb, timm)
        assert float(rsb.split()[0]) > 0 and float(timm.split()[0]) > 0
        assert re.match(r"\d+\.\d\d", ratio), (label, ratio)
        if kind == "loader":
            assert re.fullmatch(r"\d+% / \d+%", wait), (label, wait)
        assert "resnet10t" in setting
    for label in CUDA_ROWS:
        assert rows[label][2].startswith("skipped (no CUDA)"), rows[label]
    assert "5 tests collected, all skipped" in rows[CUDA_ROWS[0]][2]

    after = official.read_bytes() if official.exists() else None
    assert after == official_before  # a dry run leaves benchmarks/RESULTS.md alone


@pytest.mark.parametrize("command", [COMMAND, FOLDER_COMMAND], ids=["module", "folder"])
def test_usage_and_refusal_without_cuda(command):
    proc = subprocess.run(command, cwd=REPO, env=root_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "python -m benchmarks.gpu_check" in proc.stdout  # how to run it on the GPU machine
    assert "no CUDA GPU" in proc.stderr and "--cpu-dry-run" in proc.stderr
