"""The figures (rsb.run.plots): PNG files, and what each draws: one panel per group of metrics.csv columns, one
line per run and column with blanks skipped, one legend only while it stays legible, and He et al.'s Figure 6
with the plain nets left, the ResNets right and one colour per depth."""
from __future__ import annotations

import pytest

from rsb.run import plots

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def drawn(monkeypatch):
    """The Figures the plot functions save, to look at what they hold."""
    figures = []
    save = plots._save

    def keep(fig, path):
        figures.append(fig)
        return save(fig, path)

    monkeypatch.setattr(plots, "_save", keep)
    return figures


def _lines(ax) -> list[tuple[str, list, list]]:
    return [(line.get_label(), list(line.get_xdata()), list(line.get_ydata())) for line in ax.get_lines()]


def test_plots_are_png_files(tmp_path):
    made = [plots.histogram([79.7, 79.8, 79.8, 80.0], tmp_path / "h.png", "val", "top-1 (%)"),
            plots.scatter([1, 2, 3], [79.7, 79.8, 80.0], [67.5, 67.9, 67.6], tmp_path / "s.png", "t", "val", "v2"),
            plots.curves({1: [{"epoch": "1", "val_top1": "10", "train_loss": "0.7"},
                              {"epoch": "2", "val_top1": "20", "train_loss": "0.6"}],
                          2: [{"epoch": "1", "val_top1": "12", "train_loss": "0.69"}]}, tmp_path / "c.png", "t")]
    for path in made:
        data = path.read_bytes()
        assert data[:8] == PNG and len(data) > 1000


def test_one_runs_curves_panel_by_panel_with_blank_and_nonfinite_epochs_skipped(tmp_path, drawn):
    rows = [{"epoch": "1", "train_loss": "0.7", "lr": "0.001", "val_top1": "", "val_top5": ""},
            {"epoch": "2", "train_loss": "nan", "lr": "0.002", "val_top1": "20", "val_top5": "50"},
            {"epoch": "3", "train_loss": "0.5", "lr": "0.003", "val_top1": "30", "val_top5": "60"}]
    plots.curves({"run": rows}, tmp_path / "curves.png", "a2: run")
    fig = drawn[0]
    assert fig.get_suptitle() == "a2: run"
    assert [ax.get_title() for ax in fig.axes] == ["train loss", "learning rate", "val top-1, top-5 (%)"]
    loss, lr, val = (_lines(ax) for ax in fig.axes)
    assert loss == [("_child0", [1, 3], [0.7, 0.5])]  # one run, one column: no name in a legend
    assert lr[0][1:] == ([1, 2, 3], [0.001, 0.002, 0.003])
    assert val == [("top-1", [2, 3], [20.0, 30.0]), ("top-5", [2, 3], [50.0, 60.0])]
    assert [ax.get_legend() is not None for ax in fig.axes] == [False, False, True]  # one legend, where named


def test_many_runs_are_named_in_one_legend_until_there_are_too_many(tmp_path, drawn):
    row = [{"epoch": "1", "val_top1": "10", "train_loss": "0.7"}]
    plots.curves({seed: row for seed in (1, 2)}, tmp_path / "two.png", "t", plots.SWEEP_PANELS)
    assert [name for name, _, _ in _lines(drawn[0].axes[0])] == ["1", "2"]
    assert [ax.get_legend() is not None for ax in drawn[0].axes] == [True, False]
    many = {seed: row for seed in range(plots.LEGEND_MAX_RUNS + 1)}
    plots.curves(many, tmp_path / "many.png", "t", plots.SWEEP_PANELS)
    assert len(drawn[1].axes[0].get_lines()) == plots.LEGEND_MAX_RUNS + 1
    assert all(ax.get_legend() is None for ax in drawn[1].axes)


def test_histogram_marks_the_mean(tmp_path, drawn):
    plots.histogram([79.0, 80.0, 81.0, 82.0], tmp_path / "h.png", "val", "top-1 (%)")
    ax = drawn[0].axes[0]
    (mean,) = ax.get_lines()
    assert mean.get_label() == "mean 80.50" and list(mean.get_xdata()) == [80.5, 80.5]
    assert ax.get_xlabel() == "top-1 (%)" and ax.get_ylabel() == "count"


def test_scatter_labels_points_while_they_stay_legible(tmp_path, drawn):
    plots.scatter([1, 2, 3], [79.7, 79.8, 80.0], [67.5, 67.9, 67.6], tmp_path / "s.png", "t", "val", "v2")
    assert [t.get_text() for t in drawn[0].axes[0].texts] == ["1", "2", "3"]
    seeds = list(range(31))
    plots.scatter(seeds, seeds, seeds, tmp_path / "s31.png", "t", "val", "v2")
    assert len(drawn[1].axes[0].texts) == 0


def test_figure_6_puts_plain_nets_left_resnets_right_one_colour_per_depth(tmp_path, drawn):
    def curve(err):
        return {"steps": [0, 100], "train_error": [err, err - 5], "test_error": [err + 1, err - 3]}

    made = plots.degradation_figure({"cifar_plain20": curve(20), "cifar_plain56": curve(30),
                                     "cifar_resnet20": curve(15), "cifar_resnet56": curve(10)},
                                    tmp_path / "figure6.png", "Degradation")
    assert made.read_bytes()[:8] == PNG
    plain, resnets = drawn[0].axes
    assert [name for name, _, _ in _lines(plain) if not name.startswith("_")] == ["plain-20", "plain-56"]
    assert [name for name, _, _ in _lines(resnets) if not name.startswith("_")] == ["ResNet-20", "ResNet-56"]
    # each net: its training error (dashed) then its test error (bold), the two in the depth's colour
    assert [line.get_linestyle() for line in plain.get_lines()] == ["--", "-", "--", "-"]
    colour = {line.get_label(): line.get_color() for ax in (plain, resnets) for line in ax.get_lines()}
    assert colour["plain-20"] == colour["ResNet-20"] != colour["plain-56"] == colour["ResNet-56"]
    assert plain.get_ylabel() == "error (%)"
