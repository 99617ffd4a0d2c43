"""The parent's side of the results: the collector of the workers' JSON records (printed as they come), and the
Markdown block (heading, machine lines, the table, notes) printed and appended to benchmarks/RESULTS.md."""
from __future__ import annotations

import datetime
import platform
import subprocess
import time
from pathlib import Path

from rsb.runtime.cpus import usable_cpus

from .plan import LABELS, ROW_ORDER, Part, Sizes, planned_setting

RESULTS_MD = Path(__file__).resolve().parents[1] / "RESULTS.md"


class Collector:
    """The rows, environment and notes the parts report, each printed with the seconds since the start."""

    def __init__(self, sizes: Sizes, workers: int, t0: float):
        self.sizes, self.workers = sizes, workers
        self.rows: dict[str, dict] = {}
        self.env: dict = {}
        self.notes: list[str] = []
        self.t0 = t0

    def say(self, text: str) -> None:
        print(f"[{time.time() - self.t0:5.0f} s] {text}", flush=True)

    def add(self, rec: dict) -> None:
        kind = rec.get("type")
        if kind == "row":
            self.rows[rec["key"]] = rec
            extra = f"; {rec['detail']}" if rec.get("detail") else ""
            figures = " ".join(f"{k} {rec[k]}" for k in ("rsb", "timm", "ratio", "wait") if rec.get(k))
            self.say(f"{rec['key']}: {rec['status']} {figures}{extra}")
            for line in rec.get("trace") or []:
                print(f"    {line}", flush=True)
        elif kind == "env":
            self.env.update(rec)
        elif kind == "info":
            self.notes.append(rec["text"])
            self.say(rec["text"])
        elif kind == "start":
            self.say(f"part {rec['part']} (budget {rec['budget']} s)")

    def fail_missing(self, part: Part, status: str) -> int:
        """Give each row of `part` not reported yet this failure; how many there were."""
        missing = [key for key in part.rows if key not in self.rows]
        for key in missing:
            self.add({"type": "row", "key": key, "status": status,
                      "setting": planned_setting(key, self.sizes, self.workers)})
        return len(missing)

    def failed(self, keys) -> list[str]:
        return [k for k in keys if not self.rows.get(k, {}).get("status", "failed").startswith(("ok", "skipped"))]


def gpu_facts() -> dict:
    """GPU name, driver and memory from nvidia-smi (no CUDA context in this process); else the kernel module."""
    facts = {}
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
        if out.returncode == 0 and out.stdout.strip():
            name, driver, memory = [x.strip() for x in out.stdout.strip().splitlines()[0].split(",")]
            facts.update(gpu=name, driver=driver, memory=memory)
    except (OSError, subprocess.SubprocessError, ValueError):
        pass
    if "driver" not in facts:
        try:
            line = Path("/proc/driver/nvidia/version").read_text().splitlines()[0]
            facts["driver"] = next(w for w in line.split() if w[:1].isdigit() and "." in w)
        except (OSError, IndexError, StopIteration):
            pass
    return facts


def build_table(col: Collector, dry: bool, keys) -> str:
    from benchmarks._common import table
    wait = "data wait, rsb / timm" if dry else "GPU waits for data, rsb / timm"
    rows = []
    for key in keys:
        rec = col.rows.get(key) or {"status": "failed: not run", "setting": planned_setting(key, col.sizes,
                                                                                            col.workers)}
        rows.append([LABELS[key], rec.get("setting", ""), rec["status"], rec.get("rsb", "") if key != "tests" else "",
                     rec.get("timm", ""), rec.get("ratio", ""), rec.get("wait", "")])
    return table(["check", "setting", "status", "rsb", "timm", "rsb / timm", wait], rows)


def timm_version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("timm")
    except PackageNotFoundError:
        return "?"


def header_lines(col: Collector, facts: dict, command: str, dry: bool, seconds: float) -> list[str]:
    import torch

    from benchmarks._common import cpu_model
    from rsb.runtime.precision import cpu_capability
    env = col.env
    gpu = facts.get("gpu") or env.get("gpu") or ("none (CPU dry run)" if dry else "unknown")
    driver = facts.get("driver") or ("none" if dry else "unknown")
    memory = (f", {facts['memory']}" if facts.get("memory") else
              f", {env['gpu_memory_gib']} GiB" if env.get("gpu_memory_gib") else "")
    cuda = f"; CUDA runtime {env['cuda_runtime']}, cuDNN {env['cudnn']}" if env.get("cuda_runtime") else ""
    return [f"- date: {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}",
            f"- GPU: {gpu}{memory}; driver {driver}{cuda}",
            f"- torch {env.get('torch', torch.__version__)}, timm {env.get('timm') or timm_version()}, Python "
            f"{platform.python_version()}; CPU {cpu_model()}, {usable_cpus()} usable cores, "
            f"torch.backends.cpu.get_cpu_capability() = {cpu_capability()}",
            f"- command: `{command}` (wall time {int(seconds // 60)} min {int(seconds % 60):02d} s)"]


def notes_lines(col: Collector) -> list[str]:
    out = list(col.notes)
    for key in ROW_ORDER:
        rec = col.rows.get(key, {})
        if rec.get("detail"):
            out.append(f"{LABELS[key]}: {rec['detail']}")
    return out


def results_block(col: Collector, facts: dict, command: str, dry: bool, seconds: float, keys) -> str:
    """The Markdown section: heading, machine and command, the table of `keys`' rows, then the rows' notes."""
    heading = "## GPU check (issue 17)" + (": CPU dry run at tiny sizes, not GPU figures" if dry else "")
    return "\n".join([heading, "", *header_lines(col, facts, command, dry, seconds), "",
                      build_table(col, dry, keys), "", *(f"- {n}" for n in notes_lines(col))])


def append_block(results: Path, block: str) -> None:
    """Append `block` as its own section (a blank line before it); the file is replaced whole, atomically
    (rsb.run.folder), so a run stopped while writing leaves the earlier results intact."""
    from rsb.run import folder as run_folder
    existing = results.read_text() if results.is_file() else ""
    run_folder.write_text(results, existing + ("\n" if existing and not existing.endswith("\n\n") else "")
                          + block + "\n")
