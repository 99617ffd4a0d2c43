"""The README's two fresh-machine commands: the test command is what CI runs, the sample command runs (at tiny
scale, on a small sample set drawn into a private cache) exactly as written otherwise."""
from __future__ import annotations

import os
import re
import subprocess
import sys

from tests._tiny import REPO, TINY_SPLITS
from rsb.data.sample import default_sample_root, ensure_sample_dataset

README = (REPO / "README.md").read_text()


def _command(marker: str) -> str:
    block = re.search(rf"<!-- {marker} -->\s*```\s*\n(.*?)\n```\s*<!-- /{marker} -->", README, re.S)
    assert block, f"README has no {marker} block"
    lines = [l for l in block.group(1).splitlines() if l.strip()]
    assert len(lines) == 1, f"the {marker} must be one line"
    return lines[0]


SETUP = "python3 -m venv .venv && . .venv/bin/activate && "


def test_readme_has_exactly_the_two_commands_and_ci_runs_the_test_command():
    assert README.count("<!-- sample-command -->") == 1 and README.count("<!-- test-command -->") == 1
    test_cmd, sample_cmd = _command("test-command"), _command("sample-command")
    assert test_cmd.startswith(SETUP) and sample_cmd.startswith(SETUP)
    assert test_cmd.endswith("python -m pytest -q -n 2 --dist loadfile")
    ci = (REPO / ".ci" / "run").read_text()
    assert "test-command" in ci  # .ci/run extracts and runs the block itself
    extracted = subprocess.run(
        ["bash", "-c", "sed -n '/<!-- test-command -->/,/<!-- \\/test-command -->/p' README.md "
                       "| grep -v '^<!--' | grep -v '^```'"], cwd=REPO, capture_output=True, text=True)
    assert extracted.stdout.strip() == test_cmd


def test_sample_command_installs_and_runs(tmp_path):
    cmd = _command("sample-command")
    install, run = cmd[len(SETUP):].split(" && ")
    assert install == "pip install -e ."
    # The install step resolves (without downloading anything new) from the project's setup.cfg.
    dry = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps",
                          "--no-build-isolation", "-e", str(REPO)], capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr
    # The run step as written, in a fresh folder, on a small sample set in a private cache.
    env = dict(os.environ, RSB_CACHE=str(tmp_path / "cache"), PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    os.environ["RSB_CACHE"] = env["RSB_CACHE"]
    try:
        ensure_sample_dataset(default_sample_root(), splits=TINY_SPLITS)
    finally:
        del os.environ["RSB_CACHE"]
    (tmp_path / "train.py").symlink_to(REPO / "train.py")
    argv = run.split()
    assert argv[:2] == ["python", "train.py"]
    # The small set's 100 images fill one batch of 32 per sampler lane (the sample scale's 64 needs the full set).
    res = subprocess.run([sys.executable, *argv[1:], "sched.epochs=2", "train.batch_per_device=32"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "sample data" in res.stdout and "batch rule" in res.stdout and "precision: " in res.stdout
    assert "done: final val top-1" in res.stdout
    assert (tmp_path / "runs" / "a2-sample" / "summary.json").is_file()


def test_every_flag_of_the_readme_slurm_section_is_used_by_the_slurm_tests():
    """The README's "On Slurm" section shows nothing that tests/e2e/test_slurm.py does not run on a real cluster."""
    section = re.search(r"^### On Slurm\n(.*?)^#", README, re.S | re.M)
    assert section, "README has no '### On Slurm' section"
    flags = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", section.group(1)))
    assert {"--cluster", "--tasks-per-node", "--signal-before-s", "--slurm"} <= flags, flags
    tests = (REPO / "tests" / "e2e" / "test_slurm.py").read_text()
    unused = sorted(f for f in flags if f'"{f}"' not in tests and f"'{f}'" not in tests
                    and not re.search(rf'"{re.escape(f)}=', tests))
    assert not unused, f"README's Slurm section shows flags tests/e2e/test_slurm.py never passes: {unused}"
