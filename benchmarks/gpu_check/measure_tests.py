"""The tests part: pytest -m gpu tests/e2e/test_gpu.py in its own process (run by the parent, before any worker
holds the GPU); its row from pytest's JUnit XML."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from .logs import last_line
from .plan import REPO


def has_cuda() -> bool:
    import torch
    return torch.cuda.is_available()


def tests_status(xml: Path, dry: bool, returncode: int) -> tuple[str, str]:
    """(row status, counts) from the JUnit XML: the failed tests by name, or why nothing passed."""
    root = ET.parse(xml).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    count = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
    bad = [c.get("name") for c in root.iter("testcase") if c.find("failure") is not None or c.find("error") is not None]
    passed = count["tests"] - count["failures"] - count["errors"] - count["skipped"]
    counts = f"{passed} passed, {len(bad)} failed, {count['skipped']} skipped"
    if bad:
        return f"failed: {counts} ({', '.join(bad)})", counts
    if count["tests"] == 0:
        return f"failed: no tests collected (pytest status {returncode})", counts
    if passed == 0 and count["skipped"] == count["tests"]:
        if dry or not has_cuda():
            return f"skipped (no CUDA): {count['tests']} tests collected, all skipped", counts
        return f"failed: all {count['tests']} tests skipped on a CUDA machine", counts
    return f"ok: {counts}", counts


def run_tests(budget: int, dry: bool, work: Path) -> dict:
    """pytest -m gpu tests/e2e/test_gpu.py in its own process; the row from its JUnit XML."""
    xml = work / "gpu_tests.xml"
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "tests/e2e/test_gpu.py", "-q", "-rfEs", "-p", "no:cacheprovider",
           f"--junitxml={xml}"]
    env = dict(os.environ)
    env.pop("PYTORCH_NVML_BASED_CUDA_CHECK", None)
    if dry:
        env["CUDA_VISIBLE_DEVICES"] = ""  # the dry run is a CPU run even on a GPU machine
    log = work / "tests.log"
    with open(log, "w") as f:  # its own process group: the train.py processes it starts go with it
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            proc.wait(timeout=max(1, budget))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return {"status": f"failed: timed out after the part's budget of {budget} s", "log": log}
    if not xml.is_file():
        return {"status": f"failed: pytest exited with status {proc.returncode}: {last_line(log)}", "log": log}
    status, counts = tests_status(xml, dry, proc.returncode)
    return {"status": status, "log": log, "rsb": counts}
