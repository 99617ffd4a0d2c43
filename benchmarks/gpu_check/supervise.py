"""The parent's watch over the worker processes: it starts one worker for the parts, reads its JSON lines as they
come, kills it (and its loader or compile processes) past a part's budget or the check's time limit, and starts
a fresh worker for the parts left when one dies or is killed."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .logs import keep_log, last_line, print_tail
from .plan import KILL_GRACE_S, REPO, Part
from .report import Collector


class RecordReader:
    """Reads the complete lines a worker has appended to its JSON-lines file since the last read, hands them to
    the collector and follows which part is running and which have ended."""

    def __init__(self, jsonl: Path, col: Collector):
        self.jsonl, self.col = jsonl, col
        self.pos = 0
        self.current: str | None = None
        self.started = 0.0
        self.budget = 0
        self.ended: set[str] = set()

    def read_new(self) -> None:
        with open(self.jsonl, "rb") as f:
            f.seek(self.pos)
            chunk = f.read()
        complete = chunk[:chunk.rfind(b"\n") + 1]
        self.pos += len(complete)
        for line in complete.decode().splitlines():
            rec = json.loads(line)
            self.col.add(rec)
            if rec["type"] == "start":
                self.current, self.started, self.budget = rec["part"], rec["t"], rec["budget"]
            elif rec["type"] == "end":
                self.ended.add(rec["part"])
                self.current = None


def worker_command(parts: list[Part], args, jsonl: Path, work: Path, deadline: float) -> list[str]:
    cmd = [sys.executable, "-m", "benchmarks.gpu_check", "--worker", "--parts", ",".join(p.name for p in parts),
           "--jsonl", str(jsonl), "--work", str(work), "--deadline", str(deadline)]
    if args.cpu_dry_run:
        cmd.append("--cpu-dry-run")
    if args.budgets:
        cmd += ["--budgets", args.budgets]
    return cmd


def worker_env(dry: bool) -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("PYTORCH_NVML_BASED_CUDA_CHECK", None)  # the parent's setting; the worker uses CUDA itself
    if dry:
        env["CUDA_VISIBLE_DEVICES"] = ""
    return env


def kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def watch(proc: subprocess.Popen, reader: RecordReader, deadline: float) -> str | None:
    """Follow the worker until it exits; the failure status of its open rows when it had to be killed."""
    while True:
        reader.read_new()
        if proc.poll() is not None:
            reader.read_new()
            return None
        now = time.time()
        killed = None
        if reader.current is not None and now > reader.started + reader.budget + KILL_GRACE_S:
            killed = f"failed: killed after the part's budget of {reader.budget} s (its process did not stop)"
        elif now > deadline + 2 * KILL_GRACE_S:
            killed = "failed: killed at the check's time limit"
        if killed:
            kill_group(proc)
            proc.wait()
            reader.read_new()
            return killed
        time.sleep(0.3)


def run_workers(parts: list[Part], args, work: Path, deadline: float, col: Collector) -> None:
    """Run the parts in worker processes: one for all of them, and a fresh one for those left when a worker dies
    or is killed past a part's budget."""
    remaining = list(parts)
    attempt = 0
    while remaining:
        attempt += 1
        jsonl = work / f"worker{attempt}.jsonl"
        log = work / f"worker{attempt}.log"
        jsonl.touch()
        with open(log, "w") as logf:
            proc = subprocess.Popen(worker_command(remaining, args, jsonl, work, deadline), cwd=REPO,
                                    env=worker_env(args.cpu_dry_run), stdout=logf, stderr=subprocess.STDOUT,
                                    start_new_session=True)  # its own process group: loader and compile workers
        reader = RecordReader(jsonl, col)
        killed = watch(proc, reader, deadline)
        kill_group(proc)  # what its process group left behind (loader or compile workers of a killed part)
        current, ended = reader.current, reader.ended
        if killed is None and proc.returncode != 0:
            killed = f"failed: its process died (status {proc.returncode}): {last_line(log)}"
        keep_log(log, args.keep_logs)
        progressed = bool(ended) or current is not None
        lost = [p for p in remaining if p.name == current or (not progressed and p.name not in ended)]
        if sum(col.fail_missing(p, killed or "failed: its process stopped early") for p in lost):
            print_tail(log)
        remaining = [p for p in remaining if p.name not in ended and p.name != current] if progressed else []
