"""The report's figures (matplotlib, Agg backend), each written as a PNG.

Every model keeps one colour across figures, taken from matplotlib's ``tab10`` cycle in the
order the batch ran the models.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # No display where reports are built: CI, servers, remote shells.

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from benchmark.plots import save_figure  # noqa: E402
from benchmark.report.stats import row_normalised  # noqa: E402

#: Most confusion matrices side by side before wrapping to a new row (ten genres stay legible).
MATRICES_PER_ROW = 2
CURVE_PANELS = (("accuracy", "train accuracy"), ("val_accuracy", "validation accuracy"),
                ("loss", "train loss"), ("val_loss", "validation loss"))


def model_colours(models: Sequence[str]) -> dict[str, str]:
    """A fixed colour per model, so one model looks the same in every figure."""
    cycle = plt.get_cmap("tab10").colors
    return {model: cycle[index % len(cycle)] for index, model in enumerate(models)}


def accuracy_figure(runs: pd.DataFrame, board: pd.DataFrame, colours: dict[str, str]):
    """Test accuracy of every run (dots) with each model's mean and 95% CI (bar)."""
    from matplotlib.lines import Line2D

    models = list(board["model"])
    figure, axes = plt.subplots(figsize=(8, 1.2 + 0.5 * len(models)), layout="constrained")
    for position, row in enumerate(board.itertuples(index=False)):
        colour = colours[row.model]
        values = runs.loc[runs["model"] == row.model, "metrics.test_accuracy"].dropna()
        if not np.isnan(row.test_accuracy_ci_low):
            axes.hlines(position, row.test_accuracy_ci_low, row.test_accuracy_ci_high, color=colour,
                        linewidth=4, alpha=0.35)
        axes.scatter(values, np.full(len(values), position), color=colour, alpha=0.8)
        axes.scatter([row.test_accuracy_mean], [position], marker="D", s=50, color="black", zorder=3)
    labels = [f"★ {model}" if best else model for model, best in zip(models, board["best"], strict=True)]
    axes.set_yticks(range(len(models)), labels)
    axes.set_ylim(len(models) - 0.5, -0.5)
    axes.set_xlim(0, 1)
    axes.set_xlabel("test accuracy")
    axes.grid(axis="x", alpha=0.3)
    legend = [Line2D([], [], marker="o", linestyle="", color="grey", label="one run"),
              Line2D([], [], marker="D", linestyle="", color="black", label="mean"),
              Line2D([], [], linewidth=4, alpha=0.35, color="grey", label="95% CI")]
    axes.legend(handles=legend, loc="lower right", fontsize="small")
    return figure


def confusion_figure(confusions: dict[str, pd.DataFrame], *, normalised: bool):
    """Every model's confusion matrix side by side: summed counts, or each row as fractions."""
    from sklearn.metrics import ConfusionMatrixDisplay

    models = list(confusions)
    n_genres = max(len(frame) for frame in confusions.values())
    columns = min(len(models), MATRICES_PER_ROW)
    rows = math.ceil(len(models) / columns)
    size = max(3.5, 0.42 * n_genres + 1.5)
    figure, grid = plt.subplots(rows, columns, figsize=(size * columns, size * rows), squeeze=False,
                                layout="constrained")
    for axes, model in zip(grid.flat, models, strict=False):  # grid may have spare cells
        matrix = row_normalised(confusions[model]) if normalised else confusions[model]
        display = ConfusionMatrixDisplay(matrix.to_numpy(), display_labels=list(matrix.index))
        display.plot(ax=axes, cmap="Blues", colorbar=False, xticks_rotation=90,
                     values_format=".2f" if normalised else "d", text_kw={"fontsize": 7})
        if normalised:
            display.im_.set_clim(0, 1)
        axes.set_title(model)
    for axes in list(grid.flat)[len(models):]:
        axes.set_visible(False)
    figure.suptitle("row-normalised (recall on the diagonal)" if normalised else "counts, summed over runs")
    return figure


def curves_figure(bands: pd.DataFrame, colours: dict[str, str]):
    """Train/validation accuracy and loss per epoch: each model's mean, shaded min to max."""
    figure, grid = plt.subplots(2, 2, figsize=(12, 8), sharex=True, layout="constrained")
    for axes, (metric, title) in zip(grid.flat, CURVE_PANELS, strict=True):
        for model, colour in colours.items():
            curve = bands[(bands["model"] == model) & (bands["metric"] == metric)]
            if curve.empty:
                continue
            axes.plot(curve["epoch"], curve["mean"], color=colour, label=model)
            axes.fill_between(curve["epoch"], curve["min"], curve["max"], color=colour, alpha=0.2,
                              linewidth=0)
        axes.set_title(title)
        axes.grid(alpha=0.3)
        if metric.endswith("accuracy"):
            axes.set_ylim(0, 1)
    for axes in grid[1]:
        axes.set_xlabel("epoch")
    handles, labels = grid[0, 0].get_legend_handles_labels()
    if handles:
        figure.legend(handles, labels, loc="outside upper center", ncols=len(labels))
    return figure


def f1_heatmap_figure(table: pd.DataFrame):
    """Models (rows) x genres (columns), each cell the mean test F1."""
    figure, axes = plt.subplots(
        figsize=(max(6.0, 0.75 * table.shape[1] + 2.5), 1.2 + 0.55 * table.shape[0]), layout="constrained"
    )
    image = axes.imshow(table.to_numpy(dtype=float), cmap="viridis", vmin=0, vmax=1, aspect="auto")
    axes.set_xticks(range(table.shape[1]), table.columns, rotation=45, ha="right")
    axes.set_yticks(range(table.shape[0]), table.index)
    for (row, column), value in np.ndenumerate(table.to_numpy(dtype=float)):
        if not np.isnan(value):
            axes.text(column, row, f"{value:.2f}", ha="center", va="center", fontsize=8,
                      color="black" if value > 0.6 else "white")
    figure.colorbar(image, ax=axes, label="F1")
    return figure


def save(figure, folder: Path, name: str) -> str:
    """Write ``figure`` as ``folder/name`` and return the file name."""
    save_figure(figure, folder / name)
    return name
