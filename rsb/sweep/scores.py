"""Final-epoch scores of finished seeds on val and V2, through `python -m rsb.validate` (the project's one
evaluator, rsb.evaluation) on each run's last.pt, not best.pt: the seed study compares where training ended,
not a choice made on val.

Scores are cached per seed in <out>/report/scores/seed_NNNN.json, keyed by the checkpoint's size and
modification time and by the data sets, so a second report scores only what is new or changed."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

from rsb.run import folder as run_folder
from rsb.errors import UserError
from rsb.sweep import pythonpath_with_package
from rsb.sweep.spec import SweepSpec, run_dir_name

CHUNK = 10  # checkpoints per rsb.validate run
SCORES = ("val_top1", "val_top5", "v2_top1", "v2_top5", "gap", "epoch", "v2_set", "val_images", "v2_images")


def data_flags(spec: SweepSpec) -> list[str]:
    """rsb.validate's data flags for the sweep's data: none for a sample sweep (it scores the sample's val and
    V2 splits itself)."""
    flags = []
    if spec.data is not None:
        flags += ["--data", spec.data]
    elif spec.imagenet_v2 is not None:  # the sample's val, with the V2 set the user named
        from rsb.data.sample import ensure_sample_dataset
        flags += ["--data", str(ensure_sample_dataset())]
    if spec.imagenet_v2 is not None:
        flags += ["--imagenet-v2", spec.imagenet_v2]
    if spec.val_labels is not None:
        flags += ["--val-labels", spec.val_labels]
    return flags


def data_order_fingerprint(run_dir: Path) -> str | None:
    """A short hash of the first epoch's sample order on rank 0, rebuilt with the trainer's own sampler from
    resolved.yaml: equal fingerprints would mean two seeds saw the data in the same order."""
    from rsb.data.sampler import RepeatedAugSampler
    try:
        doc = yaml.safe_load((Path(run_dir) / run_folder.RESOLVED).read_text())
        cfg, der = doc["config"], doc["derived"]
        sampler = RepeatedAugSampler(int(der["train_images"]), int(der["world_size"]), 0,
                                     int(cfg["aug"]["repeated_aug"]), int(cfg["train"]["seed"]),
                                     batch_size=int(der["batch_per_device"]), accum_steps=int(der["accum_steps"]),
                                     lanes=int(der["sampler_lanes"]) if "sampler_lanes" in der else None)
    except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError):
        return None
    sampler.set_epoch(0)
    order = np.asarray(sampler.indices(), dtype=np.int64)
    return hashlib.sha1(order.tobytes()).hexdigest()[:12]


def _key(ckpt: Path, flags: list[str]) -> dict:
    st = ckpt.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "flags": flags}


def _cache_path(cache_dir: Path, seed: int) -> Path:
    return cache_dir / f"{run_dir_name(seed)}.json"


def _read_cache(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def score_seeds(spec: SweepSpec, out: Path, seeds: list[int], cache_dir: Path, device: str = "auto",
                workers: int | None = None, batch_size: int | None = None, log=print) -> dict[int, dict]:
    """{seed: scores} for finished seeds: from the cache, else from rsb.validate (CHUNK checkpoints a run)."""
    out, cache_dir = Path(out), Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    flags = data_flags(spec)
    results, todo = {}, []
    for seed in seeds:
        ckpt = out / run_dir_name(seed) / run_folder.LAST
        if not ckpt.is_file():
            raise UserError(f"seed {seed} is marked finished but {ckpt} is missing; relaunch the sweep to "
                            f"retrain it.")
        cached = _read_cache(_cache_path(cache_dir, seed))
        if cached and cached.get("key") == _key(ckpt, flags):
            results[seed] = cached["scores"]
        else:
            todo.append(seed)
    if todo:
        log(f"scoring the final checkpoint of {len(todo)} seed(s) with validate.py ({len(results)} cached)")
    for i in range(0, len(todo), CHUNK):  # cached chunk by chunk: an error late in a long scoring keeps the rest
        chunk = todo[i:i + CHUNK]
        rows = _run_validate([out / run_dir_name(s) / run_folder.LAST for s in chunk], flags,
                             cache_dir / ".validation", device, workers, batch_size)
        for seed, row in zip(chunk, rows):
            if row.get("seed") not in (None, seed):
                raise UserError(f"{out / run_dir_name(seed)}/last.pt holds seed {row['seed']}, not {seed}; "
                                f"the run folder was mixed up; remove it and relaunch.")
            scores = {k: row.get(k) for k in SCORES}
            scores["data_order"] = data_order_fingerprint(out / run_dir_name(seed))
            ckpt = out / run_dir_name(seed) / run_folder.LAST
            run_folder.write_json(_cache_path(cache_dir, seed), {"key": _key(ckpt, flags), "scores": scores})
            results[seed] = scores
    if not todo:
        log(f"all {len(results)} seed(s) scored before (cached in {cache_dir})")
    return results


def _run_validate(ckpts: list[Path], flags: list[str], work: Path, device: str, workers: int | None,
                  batch_size: int | None) -> list[dict]:
    from rsb.evaluation.table import read_table
    shutil.rmtree(work, ignore_errors=True)
    # `python -m rsb.validate`, with this rsb first on the path: works from a checkout and from an install alike
    # (a validate.py found by its file path exists only in a checkout).
    cmd = [sys.executable, "-m", "rsb.validate", *map(str, ckpts), *flags, "--out-dir", str(work), "--quiet",
           "--device", device]
    env = dict(os.environ, PYTHONPATH=pythonpath_with_package(os.environ.get("PYTHONPATH")))
    if workers is not None:
        cmd += ["--workers", str(workers)]
    if batch_size is not None:
        cmd += ["--batch-size", str(batch_size)]
    # Its per-checkpoint lines go straight to the console (scoring 100 ImageNet checkpoints takes a while);
    # stderr is kept for its one-sentence error.
    proc = subprocess.run(cmd, stderr=subprocess.PIPE, text=True, env=env)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or [f"exit status {proc.returncode}"]
        raise UserError(f"validate.py could not score the sweep's checkpoints: {tail[0]}")
    rows = read_table(work)
    if len(rows) != len(ckpts):
        raise UserError(f"validate.py scored {len(rows)} checkpoint(s), expected {len(ckpts)}; see {work}.")
    return rows


def score_on_slurm(spec: SweepSpec, out: Path, seeds: list[int], cache_dir: Path, device: str = "auto",
                   workers: int | None = None, batch_size: int | None = None, log=print,
                   partition: str | None = None, timeout_min: int = 60, extra: dict | None = None) -> dict[int, dict]:
    """score_seeds as one Slurm job (one task, one GPU if the sweep's seeds had GPUs), waited for here: a
    100-seed report does not score on the login node. The job writes the same per-seed cache."""
    import dataclasses
    import functools

    from rsb.sweep import slurm
    ex = dataclasses.replace(spec.executor, cluster="slurm", nodes=1, tasks_per_node=1,
                             gpus_per_node=min(1, spec.executor.gpus_per_node),
                             partition=partition or spec.executor.partition, timeout_min=timeout_min,
                             signal_before_s=min(spec.executor.signal_before_s, timeout_min * 30), max_parallel=None)
    out, cache_dir = Path(out).resolve(), Path(cache_dir).resolve()
    fn = functools.partial(score_seeds, spec, out, list(seeds), cache_dir, device, workers, batch_size)
    job = slurm.submit_job(out, ex, f"rsb-{Path(spec.recipe).stem}-report", fn, extra)
    log(f"scoring {len(seeds)} seed(s) in Slurm job {job.job_id}; waiting for it (log: {job.paths.stdout})")
    scores = slurm.wait_for(job, "the scoring job")
    log(f"Slurm job {job.job_id} scored {len(scores)} seed(s)")
    return scores
