"""Running seeds on this machine: each seed is a child process (`python -m rsb.sweep job OUT SEED`), at most
`max_parallel` at a time, the launch command waiting for them all.

Why child processes rather than submitit's LocalExecutor: its controller kills a task one second after
forwarding Ctrl-C, before the trainer can finish its step and write a checkpoint, and it starts every job at
once (no N-at-a-time limit). Here Ctrl-C reaches the children directly (same process group), each saves a
mid-epoch checkpoint and exits, and the same command resumes them. Each child's output goes to
<run folder>/log.txt.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

from rsb.runtime.cpus import usable_cpus
from rsb.sweep import pythonpath_with_package, state
from rsb.sweep.spec import run_dir_name

STOP_WAIT_S = 600  # after Ctrl-C: time the children get to finish their step and save


def _visible_gpus() -> list[str]:
    try:
        import torch
        n = torch.cuda.device_count()
    except Exception:  # no torch or no driver: CPU only
        return []
    listed = [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return listed[:n] if listed else [str(i) for i in range(n)]


def child_env(max_parallel: int, slot: int, gpus: list[str]) -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = pythonpath_with_package(env.get("PYTHONPATH"))
    if "OMP_NUM_THREADS" not in os.environ:  # N trainings on C cores: C/N threads each, not C each
        cpus = usable_cpus()
        env["OMP_NUM_THREADS"] = str(max(1, cpus // max_parallel))
    if gpus and max_parallel > 1:  # one GPU per concurrent seed, round robin
        env["CUDA_VISIBLE_DEVICES"] = gpus[slot % len(gpus)]
    return env


def outcome(run_dir: Path, epochs: int, rc: int) -> str:
    if rc == 0 and state.is_finished(run_dir, epochs):
        s = state.read_summary(run_dir) or {}
        top1 = s.get("final_val_top1")
        return "finished" + (f" (final val top-1 {top1:.2f})" if top1 is not None else "")
    failed = state.read_failed(run_dir)
    if failed:
        return f"failed: {state.failure_reason(failed)}"
    if rc > 128:
        return f"stopped by {signal.Signals(rc - 128).name}, checkpoint saved; the same command resumes it"
    return f"ended with exit status {rc}; see {run_dir / state.LOG}"


def run_local(out: Path, seeds: list[int], epochs: int, max_parallel: int = 1, log=print,
              poll_s: float = 0.5) -> dict[int, int]:
    """Run `seeds` of the sweep in `out` as child processes, `max_parallel` at a time; their exit statuses.
    Ctrl-C or SIGTERM stops them all (each saves a checkpoint) and raises KeyboardInterrupt."""
    out = Path(out).resolve()
    max_parallel = max(1, int(max_parallel))
    records = state.load_jobs(out)
    for seed in seeds:
        records[seed] = state.local_record()
    state.save_jobs(out, records)
    gpus = _visible_gpus()
    pending, running, results = deque(seeds), {}, {}
    free = list(range(max_parallel))
    old_term = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        while pending or running:
            while pending and free:
                seed, slot = pending.popleft(), free.pop(0)
                run_dir = out / run_dir_name(seed)
                run_dir.mkdir(parents=True, exist_ok=True)
                logf = open(run_dir / state.LOG, "a")
                logf.write(f"\n==== seed {seed}: started {time.strftime('%Y-%m-%d %H:%M:%S')} ====\n")
                logf.flush()
                cmd = [sys.executable, "-m", "rsb.sweep", "job", str(out), str(seed),
                       "--cpu-share", str(max_parallel)]
                proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT,
                                        env=child_env(max_parallel, slot, gpus))
                running[seed] = (proc, logf, slot)
                records[seed]["job_id"] = f"local:{proc.pid}"
                state.save_jobs(out, records)
                log(f"seed {seed}: started (pid {proc.pid}); output in {run_dir / state.LOG}")
            time.sleep(poll_s)
            for seed, (proc, logf, slot) in list(running.items()):
                rc = proc.poll()
                if rc is None:
                    continue
                logf.close()
                free.append(slot)
                del running[seed]
                results[seed] = rc
                log(f"seed {seed}: {outcome(out / run_dir_name(seed), epochs, rc)}")
    except KeyboardInterrupt:
        _stop(running, log)
        raise
    finally:
        signal.signal(signal.SIGTERM, old_term)
        for seed in seeds:  # no job of this launch is queued any more, even if this process lives on
            records[seed]["launcher_pid"] = None
        state.save_jobs(out, records)
    return results


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def _stop(running: dict, log) -> None:
    """Ask every child to checkpoint and stop (SIGTERM: a second SIGINT would make the trainer abort at once),
    wait for them, and kill only what is still running after STOP_WAIT_S."""
    if not running:
        return
    log(f"stopping {len(running)} running seed(s): each saves a checkpoint first")
    for proc, _, _ in running.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_WAIT_S
    for seed, (proc, logf, _) in running.items():
        try:
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        logf.close()
        log(f"seed {seed}: stopped (exit status {proc.returncode})")
