"""rsb as a user installs it: a wheel built from the repository, installed into a fresh virtual environment, its
console scripts run from a folder outside the checkout (no PYTHONPATH): a tiny training, a validation, an export
and a 2-seed local sweep with its report."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from tests._tiny import REPO, TINY_OVERRIDES, tiny_data

SMALL = [*TINY_OVERRIDES, "model.name=resnet10t", "sched.epochs=1", "sched.warmup_epochs=0"]


def _run(cmd: list, cwd: Path, env: dict, timeout: int = 600) -> subprocess.CompletedProcess:
    r = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{cmd}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(bin folder of a fresh venv holding the rsb wheel, environment for its commands)."""
    root = tmp_path_factory.mktemp("wheel")
    # Built from a copy of the sources, as from a fresh clone: setuptools' build/ folder in a checkout keeps the
    # modules of earlier builds, so a wheel built there after a module moved can hold both the old and new files.
    source = root / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", "runs", "sweeps", "*.so"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(root / "dist")], check=True, capture_output=True, timeout=600)
    wheel = next((root / "dist").glob("rsb-*.whl"))
    venv = root / "venv"
    # Without pip of its own (ensurepip takes seconds): this environment's pip installs the wheel there.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    # rsb's dependencies (torch, timm, ... and pip) come from this environment's site-packages, added as a plain
    # path: its .pth files (among them this checkout's editable install) are not processed, so `import rsb` can
    # only find the wheel.
    site = Path(subprocess.check_output([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                        text=True).strip())
    (site / "outer_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([py, "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)], check=True,
                   capture_output=True, timeout=300)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PATH=f"{venv / 'bin'}:{env.get('PATH', '')}", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1",
               RSB_CACHE=str(root / "cache"))
    return venv / "bin", env, root


def test_the_installed_package_is_the_wheel_with_its_recipes(installed):
    bindir, env, root = installed
    away = root / "elsewhere"
    away.mkdir(exist_ok=True)
    show = "import rsb, rsb.config.load as c; print(rsb.__file__); print(c.RECIPE_DIR)"
    where = _run([bindir / "python", "-c", show], away, env).stdout.split()
    assert all(str(root / "venv") in w for w in where) and not any(str(REPO) in w for w in where)
    listed = _run([bindir / "rsb-train", "--list-recipes"], away, env).stdout
    assert all(f"{name} " in listed for name in ("a1", "a2", "a3")) and "sample_scale" not in listed
    for module in ("rsb.train", "rsb.validate", "rsb.sweep", "rsb.export"):
        assert "usage:" in _run([bindir / "python", "-m", module, "--help"], away, env).stdout
    for script in ("rsb-validate", "rsb-sweep", "rsb-export"):
        assert "usage:" in _run([bindir / script, "--help"], away, env).stdout


def test_train_validate_export_and_a_sweep_from_outside_the_checkout(installed):
    bindir, env, root = installed
    work = root / "work"
    work.mkdir()
    data = tiny_data(work / "data")
    _run([bindir / "rsb-train", "--recipe", "a2", "--data", data, "--output", "run", "--workers", "0", "--quiet",
          *SMALL], work, env)
    summary = json.loads((work / "run" / "summary.json").read_text())
    assert summary["final_epoch"] == 1 and summary["final_val_top1"] is not None

    scored = _run([bindir / "rsb-validate", "run/last.pt", "--data", data, "--imagenet-v2", data / "v2",
                   "--workers", "0", "--device", "cpu"], work, env).stdout
    assert "v2" in scored.lower() and "last.pt" in scored

    _run([bindir / "rsb-export", "run", "exported"], work, env)
    assert sorted(p.name for p in (work / "exported").iterdir()) == ["config.json", "model.safetensors"]

    _run([bindir / "rsb-sweep", "launch", "--recipe", "a2", "--seeds", "1-2", "--out", "sweep", "--cluster",
          "local", "--max-parallel", "2", "--data", data, "--imagenet-v2", data / "v2", "--workers", "0", *SMALL],
         work, env)
    report = _run([bindir / "rsb-sweep", "report", "sweep", "--workers", "0", "--device", "cpu"], work, env).stdout
    assert "2 of 2 seeds finished" in report
    assert (work / "sweep" / "report" / "seeds.csv").is_file() and (work / "sweep" / "report" / "curves.png").is_file()
