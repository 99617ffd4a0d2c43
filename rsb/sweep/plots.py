"""The report's figures as PNG files: a histogram per data set, val against V2, and every seed's training
curves. matplotlib's object API (Figure, no pyplot), so no global backend or figure state is touched."""
from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")
    return Path(path)


def histogram(values: list[float], path: Path, title: str, xlabel: str) -> Path:
    fig = Figure(figsize=(5.5, 3.8))
    ax = fig.add_subplot()
    bins = max(5, min(20, len(values) // 3))
    ax.hist(values, bins=bins, color="tab:blue", alpha=0.8, edgecolor="white")
    if values:
        mean = sum(values) / len(values)
        ax.axvline(mean, color="black", linestyle="--", linewidth=1, label=f"mean {mean:.2f}")
        ax.legend()
    ax.set_xlabel(xlabel)
    ax.set_ylabel("seeds")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(title)
    return _save(fig, path)


def scatter(seeds: list[int], x: list[float], y: list[float], path: Path, title: str, xlabel: str,
            ylabel: str) -> Path:
    fig = Figure(figsize=(5.5, 4.5))
    ax = fig.add_subplot()
    ax.scatter(x, y, color="tab:orange", edgecolor="black", linewidth=0.5)
    if len(seeds) <= 30:  # labels stay legible for small sweeps only
        for s, a, b in zip(seeds, x, y):
            ax.annotate(str(s), (a, b), textcoords="offset points", xytext=(3, 3), fontsize=7)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def curves(metrics: dict[int, list[dict]], path: Path, title: str) -> Path:
    """Val top-1 and train loss against epoch, one line per seed."""
    fig = Figure(figsize=(11, 4))
    axes = fig.subplots(1, 2)
    for seed, rows in sorted(metrics.items()):
        for ax, name in zip(axes, ("val_top1", "train_loss")):
            pts = [(int(r["epoch"]), float(r[name])) for r in rows if r.get(name) not in ("", None, "nan")]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], linewidth=1, alpha=0.7,
                        marker="o" if len(pts) <= 20 else None, markersize=3,
                        label=f"seed {seed}" if len(metrics) <= 10 else None)
    for ax, label in zip(axes, ("val top-1 (%)", "train loss")):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(label)
        ax.grid(alpha=0.3)
    if len(metrics) <= 10:
        axes[0].legend(fontsize=7)
    fig.suptitle(title)
    return _save(fig, path)
