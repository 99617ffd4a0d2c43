"""Figures as PNG files: training curves of one run or many, histograms and scatter plots. matplotlib's object
API (Figure, no pyplot), so no global backend or figure state is touched."""
from __future__ import annotations

import random
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

# Panels of curves(): (title, metrics.csv columns drawn in it)
RUN_PANELS = (("train loss", ("train_loss",)), ("learning rate", ("lr",)),
              ("val top-1, top-5 (%)", ("val_top1", "val_top5")))
SWEEP_PANELS = (("val top-1 (%)", ("val_top1",)), ("train loss", ("train_loss",)))
LINE_NAMES = {"val_top1": "top-1", "val_top5": "top-5"}  # a column's name in the legend of a panel of several
LEGEND_MAX_RUNS = 10  # more runs than this: a legend would hide the lines


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")
    return Path(path)


def _points(rows: list[dict], column: str) -> tuple[list[int], list[float]]:
    pts = [(int(r["epoch"]), float(r[column])) for r in rows if r.get(column) not in ("", None, "nan")]
    return [p[0] for p in pts], [p[1] for p in pts]


def curves(runs: dict[str, list[dict]], path: Path, title: str, panels=RUN_PANELS) -> Path:
    """metrics.csv columns against epoch, one panel per (title, columns) of `panels`, one line per run and
    column. `runs` maps a name (shown in the legend when there are several) to the run's metrics.csv rows."""
    fig = Figure(figsize=(4.4 * len(panels), 3.8))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    legend_drawn = False
    for ax, (label, columns) in zip(axes, panels):
        for name, rows in runs.items():
            for column in columns:
                x, y = _points(rows, column)
                if not x:
                    continue
                parts = ([str(name)] if len(runs) > 1 else []) + ([LINE_NAMES.get(column, column)]
                                                                  if len(columns) > 1 else [])
                ax.plot(x, y, linewidth=1, alpha=0.8, marker="o" if len(x) <= 20 else None, markersize=3,
                        label=", ".join(parts) or None)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(label)
        ax.grid(alpha=0.3)
        # one legend, on the first panel whose lines have names: the names are the same in every panel
        if not legend_drawn and len(runs) <= LEGEND_MAX_RUNS and ax.get_legend_handles_labels()[1]:
            ax.legend(fontsize=7)
            legend_drawn = True
    fig.suptitle(title)
    return _save(fig, path)


def histogram(values: list[float], path: Path, title: str, xlabel: str, ylabel: str = "count") -> Path:
    fig = Figure(figsize=(5.5, 3.8))
    ax = fig.add_subplot()
    bins = max(5, min(20, len(values) // 3))
    ax.hist(values, bins=bins, color="tab:blue", alpha=0.8, edgecolor="white")
    if values:
        mean = sum(values) / len(values)
        ax.axvline(mean, color="black", linestyle="--", linewidth=1, label=f"mean {mean:.2f}")
        ax.legend()
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(title)
    return _save(fig, path)


def scatter(labels: list, x: list[float], y: list[float], path: Path, title: str, xlabel: str,
            ylabel: str) -> Path:
    fig = Figure(figsize=(5.5, 4.5))
    ax = fig.add_subplot()
    ax.scatter(x, y, color="tab:orange", edgecolor="black", linewidth=0.5)
    if len(labels) <= 30:  # point labels stay legible for small sets only
        for s, a, b in zip(labels, x, y):
            ax.annotate(str(s), (a, b), textcoords="offset points", xytext=(3, 3), fontsize=7)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def degradation_figure(curves: dict[str, dict[str, list[float]]], path: Path, title: str) -> Path:
    """He et al. 2015's Figure 6: training error (thin) and test error (bold) in % against iterations, the plain
    nets in the left panel and the residual nets in the right, one colour per depth. `curves` maps a model name
    (cifar_plain20, cifar_resnet56, ...) to {"steps", "train_error", "test_error"}."""
    fig = Figure(figsize=(10, 4))
    axes = fig.subplots(1, 2, sharey=True)
    colours = {}
    for ax, family, label in ((axes[0], "plain", "plain nets"), (axes[1], "resnet", "ResNets")):
        for name, c in curves.items():
            if family not in name:
                continue
            depth = name.rsplit(family, 1)[1]
            colour = colours.setdefault(depth, f"C{len(colours)}")
            tag = f"{label.split()[0].rstrip('s')}-{depth}"
            ax.plot(c["steps"], c["train_error"], color=colour, linewidth=0.8, linestyle="--", alpha=0.8)
            ax.plot(c["steps"], c["test_error"], color=colour, linewidth=2.2, label=tag)
        ax.set_title(f"{label} (dashed: training error, bold: test error)", fontsize=9)
        ax.set_xlabel("iterations")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[1]:
            ax.legend(fontsize=8)
    axes[0].set_ylabel("error (%)")
    fig.suptitle(title)
    return _save(fig, path)


def comparison(panels: list[dict], path: Path, title: str) -> Path:
    """Two sides compared, one row per metric: each side's scores as a strip of points with its mean (a fixed
    value as a dashed line), and beside it the difference A - B with its intervals. Each panel: "title",
    "names" (A, B), "a" and "b" (values; "b" None with "fixed"), "difference", "intervals" [(name, low, high)]."""
    fig = Figure(figsize=(10, 3.2 * len(panels)))
    axes = fig.subplots(len(panels), 2, squeeze=False, gridspec_kw={"width_ratios": [3, 2]})
    rng = random.Random(0)  # the same jitter every time: figures do not change between runs
    for (strip, diff), p in zip(axes, panels):
        for x, values in enumerate((p["a"], p["b"])):
            if values is None:
                continue
            jitter = [x + rng.uniform(-0.12, 0.12) for _ in values]
            strip.scatter(jitter, values, color=f"C{x}", edgecolor="black", linewidth=0.5, zorder=3)
            mean = sum(values) / len(values)
            strip.hlines(mean, x - 0.3, x + 0.3, color=f"C{x}", linewidth=2, label=f"mean {mean:.2f}")
        if p.get("fixed") is not None:
            strip.axhline(p["fixed"], color="C1", linestyle="--", linewidth=1.5,
                          label=f"{p['names'][1]} {p['fixed']:.2f}")
            strip.scatter([1], [p["fixed"]], marker="*", s=160, color="C1", edgecolor="black", zorder=3)
        strip.set_xticks([0, 1], [str(n) for n in p["names"]])
        strip.set_xlim(-0.6, 1.6)
        strip.set_title(p["title"], fontsize=9)
        strip.grid(alpha=0.3, axis="y")
        strip.legend(fontsize=7)
        for k, (name, low, high) in enumerate(p["intervals"]):
            if low is None:
                continue
            diff.errorbar([p["difference"]], [k], xerr=[[p["difference"] - low], [high - p["difference"]]],
                          fmt="o", color=f"C{k + 2}", capsize=4)
        diff.set_yticks(range(len(p["intervals"])), [i[0] for i in p["intervals"]], fontsize=8)
        diff.set_ylim(-0.8, len(p["intervals"]) - 0.2)
        diff.axvline(0.0, color="black", linewidth=0.8)
        diff.set_xlabel(f"{p['names'][0]} - {p['names'][1]}" + (f" ({p['unit']})" if p.get("unit") else ""))
        diff.grid(alpha=0.3, axis="x")
    fig.suptitle(title)
    return _save(fig, path)
