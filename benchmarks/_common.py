"""Shared by the speed benchmarks: the machine line, the table printer and a median helper."""
from __future__ import annotations

import datetime
import platform
import statistics


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine_header(extra: str = "") -> str:
    import PIL
    import timm
    import torch

    from rsb.runtime.cpus import usable_cpus
    cores = usable_cpus()
    line = (f"machine: {cpu_model()}, {cores} cores usable, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), timm {timm.__version__}, Pillow {PIL.__version__}, "
            f"Python {platform.python_version()}; date {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}")
    return line + (f"\n{extra}" if extra else "")


def table(headers: list[str], rows: list[list]) -> str:
    cells = [[str(h) for h in headers]] + [[c if isinstance(c, str) else f"{c:.2f}" if isinstance(c, float)
                                            else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    out = ["| " + " | ".join(c.ljust(w) for c, w in zip(cells[0], widths)) + " |",
           "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    def numeric(c: str) -> bool:
        return bool(c) and (c[0].isdigit() or c[0] in "+-.") and not c[:1].isalpha()

    for r in cells[1:]:
        out.append("| " + " | ".join(c.rjust(w) if i and numeric(c) else c.ljust(w)
                                     for i, (c, w) in enumerate(zip(r, widths))) + " |")
    return "\n".join(out)


def median(xs):
    return statistics.median(xs)
