"""The worker process: runs the parts it is given, each under its budget (SIGALRM), and reports every event as
one JSON line (the environment, a part's start and end, each row, notes) for the parent to collect. A row that
fails becomes its one-line error, and the part goes on; a part that runs out of time fails its open rows."""
from __future__ import annotations

import gc
import json
import platform
import signal
import sys
import time
import traceback
from pathlib import Path

from rsb.runtime.cpus import usable_cpus

from . import jpegs, measure_eval, measure_loader, measure_train
from .plan import PART_BY_NAME, TOTAL_BUDGET_S, Part, effective_budget, planned_setting, sizes_for

PART_FUNCS = {"jpegs": jpegs.part_jpegs, "synthetic": measure_train.part_synthetic,
              "loader": measure_loader.part_loader, "validate": measure_eval.part_validate,
              "compiled_a2": measure_train.part_compiled_a2, "compiled_a3": measure_train.part_compiled_a3}


class PartTimeout(BaseException):
    """Raised by SIGALRM when a part's budget is spent (BaseException: library code does not swallow it)."""


def one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:220]}" if text else type(e).__name__


def traceback_tail(e: BaseException, n: int = 8) -> list[str]:
    """Print the traceback to this worker's log; its last lines, for the parent to show."""
    lines = traceback.format_exception(type(e), e, e.__traceback__)
    sys.stderr.write("".join(lines))
    sys.stderr.flush()
    return "".join(lines).rstrip().splitlines()[-n:]


class Ctx:
    """What the parts share in one worker: sizes, device, precision, the JPEG folder, the rows done."""

    def __init__(self, args, emit):
        import torch

        from rsb.runtime import precision
        self.args, self.emit = args, emit
        self.sizes = sizes_for(args.cpu_dry_run)
        self.cuda = torch.cuda.is_available() and not args.cpu_dry_run
        self.device = torch.device("cuda", 0) if self.cuda else torch.device("cpu")
        # bf16 autocast on the GPU, float32 in the dry run; "keep": bf16 even where the GPU lacks it natively,
        # so the figures are always the bf16 ones the table names
        self.precision = precision.choose(self.sizes.amp, "bfloat16", self.device, fallback="keep")
        self.work = Path(args.work)
        self.jpegs = self.work / "jpegs"
        self.workers = usable_cpus()
        self.done: set[str] = set()
        self.running: str | None = None         # the row in progress
        self.synthetic: dict[str, float] = {}   # rsb images/s of the synthetic rows, for the loader rows
        if self.cuda:
            torch.backends.cudnn.benchmark = True  # as rsb.training.trainer and validate.py set it on CUDA

    @property
    def amp(self):
        """The autocast dtype of the training rows (None: float32)."""
        return self.precision.dtype

    def setting(self, key: str) -> str:
        return planned_setting(key, self.sizes, self.workers)

    def row(self, key: str, fn) -> None:
        """Run one row; an exception becomes the row's one-line failure, and the part goes on."""
        self.running = key
        try:
            fields = fn()
            self.report(key, "ok", **fields)
        except Exception as e:   # not PartTimeout: run_part reports the row that the budget stopped
            self.report(key, f"failed: {one_line(e)}", trace=traceback_tail(e))
        finally:
            self.running = None
            self.cleanup()

    def report(self, key: str, status: str, **fields) -> None:
        """Report a row with its status (and figures, when it ran); it is done."""
        self.emit(type="row", key=key, status=status, setting=self.setting(key), **fields)
        self.done.add(key)

    def sync(self) -> None:
        import torch
        if self.cuda:
            torch.cuda.synchronize()

    def cleanup(self) -> None:
        import torch
        gc.collect()
        if self.cuda:
            torch.cuda.empty_cache()


def env_record(ctx: Ctx) -> dict:
    """The machine as this process sees it (the parent has no CUDA context)."""
    import timm
    import torch

    from rsb.runtime.precision import cpu_capability
    env = {"type": "env", "torch": torch.__version__, "timm": timm.__version__, "cuda": ctx.cuda,
           "capability": cpu_capability(), "cores": ctx.workers, "python": platform.python_version()}
    if ctx.cuda:
        props = torch.cuda.get_device_properties(0)
        env.update(gpu=torch.cuda.get_device_name(0), gpu_memory_gib=round(props.total_memory / 2**30, 1),
                   cuda_runtime=torch.version.cuda, cudnn=torch.backends.cudnn.version(),
                   bf16=torch.cuda.is_bf16_supported(including_emulation=False))
    return env


def run_part(ctx: Ctx, part: Part, later: list[Part], deadline: float) -> None:
    """One part under its budget; whatever stops it, each of its rows is reported once."""
    budget = effective_budget(part, later, deadline)
    if budget < part.reserve:
        for key in part.rows:
            ctx.report(key, f"failed: not run, the check's time budget ({TOTAL_BUDGET_S} s) was spent")
        ctx.emit(type="end", part=part.name)
        return
    ctx.emit(type="start", part=part.name, budget=budget)
    print(f"--- part {part.name}, budget {budget} s", file=sys.stderr, flush=True)
    signal.alarm(max(1, budget))
    try:
        PART_FUNCS[part.name](ctx)
    except PartTimeout:
        running = ctx.running or next((k for k in part.rows if k not in ctx.done), None)
        for key in part.rows:
            if key not in ctx.done:
                ctx.report(key, f"failed: timed out after the part's budget of {budget} s" if key == running else
                         f"failed: not run, the part's budget of {budget} s was spent")
    except Exception as e:
        trace = traceback_tail(e)
        for key in part.rows:
            if key not in ctx.done:
                ctx.report(key, f"failed: {one_line(e)}", trace=trace)
    finally:
        signal.alarm(0)
    ctx.cleanup()
    ctx.emit(type="end", part=part.name)


def worker_main(args) -> int:
    """The parts named in args.parts, in order, one JSON line per event appended to args.jsonl."""
    with open(args.jsonl, "a", buffering=1) as out:
        def emit(**rec):
            rec["t"] = time.time()
            out.write(json.dumps(rec) + "\n")
            out.flush()

        ctx = Ctx(args, emit)
        emit(**env_record(ctx))

        def on_alarm(signum, frame):
            raise PartTimeout()
        signal.signal(signal.SIGALRM, on_alarm)
        names = [n for n in args.parts.split(",") if n]
        for i, name in enumerate(names):
            run_part(ctx, PART_BY_NAME[name], [PART_BY_NAME[n] for n in names[i + 1:]], args.deadline)
    return 0
