"""Studies of the 2015 ResNet paper, run through the seed sweep's runners (here, or Slurm through the same code).

  python -m rsb.study degradation --data cifar-10-python.tar.gz --out studies/degradation
  python -m rsb.study degradation --seeds 1-3 --cluster slurm --data ... --out ...   # on Slurm; rerun to draw
  python -m rsb.study degradation                     # the built-in CIFAR-like sample, minutes on a laptop

The degradation study (He et al. 2015, section 4.2, Figure 6): plain-20/56 and ResNet-20/56 trained with the
cifar10_resnet recipe on all 50k training images (data.val_holdout=0), each model one sweep in <out>/<model>/,
the 10k test set scored every epoch. When every run has finished it writes <out>/figure6.png (training error
thin, test error bold, against iterations; plain nets beside residual nets) and <out>/report.md (final errors
beside the paper's). Running the same command again resumes or skips the runs and redraws; on Slurm the first
call submits and returns, and a later call draws. Recipe overrides come last (section.key=value).
Errors: one sentence, exit status 2.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from rsb.errors import exit_status

RECIPE = "cifar10_resnet"
DEGRADATION_MODELS = ("cifar_plain20", "cifar_plain56", "cifar_resnet20", "cifar_resnet56")
# Table 6 of He et al. 2015: CIFAR-10 test error (%) of the ResNets (option A, best of 5 runs for 110). The
# paper gives no number for the plain nets, only Figure 6: plain-56 has higher training and test error than
# plain-20 (the degradation), while ResNet-56 is better than ResNet-20.
PAPER_TEST_ERROR = {"cifar_resnet20": 8.75, "cifar_resnet32": 7.51, "cifar_resnet44": 7.17,
                    "cifar_resnet56": 6.97, "cifar_resnet110": 6.43}
PAPER_PLAIN = {"cifar_plain20": "not given (Figure 6 only)", "cifar_plain56": "higher than plain-20 (Figure 6)"}
STUDY_OVERRIDES = ["data.val_holdout=0"]  # train on all 50k, score the test set every epoch (Figure 6's curves)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m rsb.study", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="study", required=True, metavar="{degradation}")
    d = sub.add_parser("degradation", help="plain-20/56 and ResNet-20/56 on CIFAR-10: Figure 6 and a table")
    d.add_argument("--data", type=Path, help="cifar-10-python.tar.gz or its extracted folder; omit for the sample")
    d.add_argument("--workers", type=int, help="loader processes per run (CIFAR-10 needs none: arrays in memory)")
    d.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda or cuda:N")
    d.add_argument("--out", type=Path, default=Path("studies") / "degradation", help="study folder")
    d.add_argument("--seeds", default="0", help="seeds per model: 0, 1-5 or 1,3 (default 0)")
    d.add_argument("--cluster", default="auto", choices=["auto", "local", "slurm"],
                   help="where the runs go (the sweep's runners; default: Slurm if found, else here)")
    d.add_argument("--max-parallel", type=int, help="runs at once per model (default: 1 here)")
    d.add_argument("--partition", help="Slurm partition")
    d.add_argument("--gpus-per-node", type=int, default=1, help="Slurm: GPUs per run (default 1)")
    d.add_argument("--cpus-per-task", type=int, default=8, help="Slurm: CPUs per process (default 8)")
    d.add_argument("--timeout-min", type=int, default=720, help="Slurm: time limit per job (default 720)")
    d.add_argument("--slurm", action="append", default=[], metavar="KEY=VALUE", help="other sbatch options")
    d.add_argument("overrides", nargs="*", metavar="section.key=value", help="recipe overrides")
    return p.parse_args(argv)


def run_degradation(out: Path, data, seeds: list[int], executor, overrides: list[str], slurm_extra=None,
                    models=DEGRADATION_MODELS, recipe: str = RECIPE, log=print) -> dict | None:
    """Launch (or resume, or skip) every model's sweep; when all runs have finished, the figure and the table
    (their paths and rows); None while some still run (Slurm)."""
    import dataclasses

    from rsb.sweep import cli as sweep
    for model in models:
        log(f"== {model}")
        sweep.launch(recipe, seeds, out / model, data, None,
                     [*STUDY_OVERRIDES, *overrides, f"model.name={model}"], dataclasses.replace(executor),
                     slurm_extra=slurm_extra, log=log)
    runs = collect(out, models, seeds)
    missing = [f"{m} seed {s}" for m, per_seed in runs.items() for s, r in per_seed.items() if r is None]
    if missing:
        log(f"{len(missing)} run(s) not finished yet ({', '.join(missing[:4])}{', ...' if len(missing) > 4 else ''});"
            f" run the same command again once they are, to draw the figure")
        return None
    return write_report(out, runs, sample=data is None)


def collect(out: Path, models, seeds) -> dict[str, dict[int, dict | None]]:
    """{model: {seed: {"rows": metrics.csv rows, "summary": summary.json} or None while unfinished}}."""
    from rsb.run.folder import read_metrics
    from rsb.sweep import spec as sweepspec, state
    runs: dict[str, dict[int, dict | None]] = {}
    for model in models:
        folder = out / model
        epochs = sweepspec.load(folder).epochs
        runs[model] = {}
        for seed in seeds:
            run_dir = folder / sweepspec.run_dir_name(seed)
            done = state.is_finished(run_dir, epochs)
            runs[model][seed] = ({"rows": read_metrics(run_dir), "summary": state.read_summary(run_dir)}
                                 if done else None)
    return runs


def curve(rows: list[dict]) -> dict[str, list[float]]:
    """Iterations, training error and test error (%) per epoch of one run's metrics.csv."""
    pts = [(int(r["step"]), 100 - float(r["train_top1"]), 100 - float(r["val_top1"])) for r in rows
           if r.get("step") and r.get("train_top1") and r.get("val_top1")]
    return {"steps": [p[0] for p in pts], "train_error": [p[1] for p in pts], "test_error": [p[2] for p in pts]}


def mean_curve(curves: list[dict]) -> dict[str, list[float]]:
    """The seeds' curves averaged point by point (the same recipe gives every seed the same steps)."""
    n = min(len(c["steps"]) for c in curves)
    return {k: [statistics.fmean(c[k][i] for c in curves) for i in range(n)]
            for k in ("steps", "train_error", "test_error")}


def param_count(model: str) -> float:
    import timm

    from rsb.models.factory import param_count_millions
    return param_count_millions(timm.create_model(model))


def table_rows(runs: dict) -> list[dict]:
    rows = []
    for model, per_seed in runs.items():
        finals = [curve(r["rows"]) for r in per_seed.values()]
        test = [c["test_error"][-1] for c in finals]
        train = [c["train_error"][-1] for c in finals]
        seconds = sum(float(r["summary"].get("train_seconds_this_session") or 0) for r in per_seed.values())
        paper = PAPER_TEST_ERROR.get(model, PAPER_PLAIN.get(model))
        rows.append({"model": model, "params_m": param_count(model), "seeds": len(test),
                     "iterations": finals[0]["steps"][-1], "test_error": round(statistics.fmean(test), 2),
                     "test_error_std": round(statistics.stdev(test), 2) if len(test) > 1 else None,
                     "train_error": round(statistics.fmean(train), 2), "paper_test_error": paper,
                     "train_seconds": round(seconds, 1)})
    return rows


def format_table(rows: list[dict]) -> str:
    head = "| model | params | seeds | iterations | test error % | train error % | paper test error % | train s |"
    lines = [head, "|" + "---|" * 8]
    for r in rows:
        spread = f" ± {r['test_error_std']:.2f}" if r["test_error_std"] is not None else ""
        lines.append(f"| {r['model']} | {r['params_m']}M | {r['seeds']} | {r['iterations']} | "
                     f"{r['test_error']:.2f}{spread} | {r['train_error']:.2f} | {r['paper_test_error'] or '-'} | "
                     f"{r['train_seconds']:.0f} |")
    return "\n".join(lines)


def write_report(out: Path, runs: dict, sample: bool) -> dict:
    from rsb.run import folder as run_folder
    from rsb.run.plots import degradation_figure
    curves = {model: mean_curve([curve(r["rows"]) for r in per_seed.values()]) for model, per_seed in runs.items()}
    where = "built-in CIFAR-like sample" if sample else "CIFAR-10"
    figure = degradation_figure(curves, out / "figure6.png", f"Degradation study on {where} (He et al. 2015, Fig. 6)")
    rows = table_rows(runs)
    text = format_table(rows)
    run_folder.write_text(out / "report.md", f"# Degradation study on {where}\n\n{text}\n\n![Figure 6]({figure.name})\n")
    run_folder.write_json(out / "report.json", {"data": where, "rows": rows, "curves": curves})
    return {"figure": figure, "report": out / "report.md", "rows": rows, "table": text}


def run(args: argparse.Namespace) -> int:
    from rsb.sweep.spec import Executor, parse_seeds
    extra = dict(item.split("=", 1) for item in args.slurm if "=" in item) or None
    ex = Executor(cluster=args.cluster, partition=args.partition, gpus_per_node=args.gpus_per_node,
                  cpus_per_task=args.cpus_per_task, timeout_min=args.timeout_min, max_parallel=args.max_parallel,
                  workers=args.workers, device=args.device)
    done = run_degradation(args.out, args.data, parse_seeds(args.seeds), ex, args.overrides, extra)
    if done is not None:
        print()
        print(done["table"])
        print(f"figure: {done['figure']}; table: {done['report']}")
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        return exit_status(lambda: run(args))
    except KeyboardInterrupt:
        print("interrupted: the stopped runs saved a checkpoint; the same command resumes them", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
