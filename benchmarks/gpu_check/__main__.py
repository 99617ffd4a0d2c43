"""The GPU check's command line: `python -m benchmarks.gpu_check` from the repository root (or
`python benchmarks/gpu_check`). The parent runs the GPU tests, then the other parts in worker processes
(`--worker`, started by supervise.py), collects their rows and writes the table."""
from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

if not __package__:  # run as a folder (`python benchmarks/gpu_check`): import it as the package, from the root
    sys.path[0] = str(Path(__file__).resolve().parents[2])

from benchmarks.gpu_check import __doc__ as DESCRIPTION  # noqa: E402
from benchmarks.gpu_check.logs import keep_log, print_tail  # noqa: E402
from benchmarks.gpu_check.plan import (PART_BY_NAME, PARTS, ROW_ORDER, TOTAL_BUDGET_S, Part,  # noqa: E402
                                       effective_budget, parts_to_run, planned_setting, set_budgets, sizes_for)

COMMAND = "python -m benchmarks.gpu_check"
USAGE = ("GPU check: on the GPU machine, from the repository root after the README's set-up "
         "(python3 -m venv .venv && . .venv/bin/activate && pip install -e \".[test]\"), run:  " + COMMAND)


def run_tests_part(plan: list[Part], args, col, deadline: float, work: Path) -> list[Part]:
    """The GPU tests first, in the parent's own pytest process (before a worker holds the GPU); the parts left."""
    from benchmarks.gpu_check.measure_tests import run_tests
    rest = list(plan)
    if not rest or rest[0].name != "tests":
        return rest
    part = rest.pop(0)
    budget = effective_budget(part, rest, deadline)
    col.add({"type": "start", "part": "tests", "budget": budget})
    res = run_tests(budget, args.cpu_dry_run, work)
    col.add({"type": "row", "key": "tests", "status": res["status"], "rsb": res.get("rsb", ""),
             "setting": planned_setting("tests", col.sizes, col.workers)})
    if not res["status"].startswith(("ok", "skipped")):
        print_tail(res["log"], 40)
    keep_log(res["log"], args.keep_logs)
    return rest


def results_path(args) -> Path | None:
    """Where the table is appended: --results, else benchmarks/RESULTS.md, except for a dry run or --no-results."""
    from benchmarks.gpu_check.report import RESULTS_MD
    if args.no_results:
        return None
    return Path(args.results) if args.results else (None if args.cpu_dry_run else RESULTS_MD)


def parent_main(args) -> int:
    print(USAGE, flush=True)
    os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")  # this process never creates a CUDA context
    import torch

    from benchmarks.gpu_check import report
    from benchmarks.gpu_check.supervise import run_workers
    from rsb.runtime.cpus import usable_cpus
    dry = args.cpu_dry_run
    if not dry and not torch.cuda.is_available():
        print(f"error: no CUDA GPU is visible here. On a CPU machine, check the script with {COMMAND} "
              "--cpu-dry-run --results /tmp/gpu_check.md", file=sys.stderr)
        return 2
    results = results_path(args)
    start = time.time()
    deadline = start + args.budget
    col = report.Collector(sizes_for(dry), usable_cpus(), start)
    try:
        plan = parts_to_run(args.only)
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    facts = {} if dry else report.gpu_facts()
    print(f"{'CPU dry run' if dry else 'GPU check'}: parts {', '.join(p.name for p in plan)}; "
          f"no part starts after {args.budget} s; {usable_cpus()} usable cores"
          + (f"; GPU {facts.get('gpu', '?')}, driver {facts.get('driver', '?')}" if not dry else ""), flush=True)
    work = Path(tempfile.mkdtemp(prefix="rsb_gpu_check_"))
    try:
        rest = run_tests_part(plan, args, col, deadline, work)
        if rest:
            run_workers(rest, args, work, deadline, col)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    command = COMMAND + (" " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else "")
    keys = [k for k in ROW_ORDER if any(k in p.rows for p in plan)]
    block = report.results_block(col, facts, command, dry, time.time() - start, keys)
    print()
    print(block, flush=True)
    if results is not None:
        report.append_block(results, block)
        print(f"\nappended to {results}", flush=True)
    return 1 if col.failed(keys) else 0


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog=COMMAND, description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cpu-dry-run", action="store_true",
                   help="tiny sizes on the CPU; CUDA-only rows 'skipped (no CUDA)'; writes only to --results")
    p.add_argument("--results", help="append the table here (default benchmarks/RESULTS.md; none for a dry run)")
    p.add_argument("--no-results", action="store_true", help="print the table only")
    p.add_argument("--only", help=f"comma-separated parts to run ({', '.join(PART_BY_NAME)})")
    p.add_argument("--budget", type=float, default=TOTAL_BUDGET_S, help="seconds after which no part starts "
                                                                         f"(default {TOTAL_BUDGET_S})")
    p.add_argument("--keep-logs", metavar="DIR", help="copy the parts' logs into DIR")
    p.add_argument("--budgets", metavar="PART=S,...", default="",
                   help="other budgets (seconds) for some parts, e.g. compiled_a2=300 (default: "
                        + ", ".join(f"{q.name}={q.budget}" for q in PARTS) + ")")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--parts", default="", help=argparse.SUPPRESS)
    p.add_argument("--jsonl", help=argparse.SUPPRESS)
    p.add_argument("--work", help=argparse.SUPPRESS)
    p.add_argument("--deadline", type=float, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    set_budgets(args.budgets)
    if args.worker:
        from benchmarks.gpu_check.worker import worker_main
        return worker_main(args)
    return parent_main(args)


if __name__ == "__main__":
    sys.exit(main())
