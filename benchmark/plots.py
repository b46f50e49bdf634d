"""Figures for a run: confusion matrix and training curves (matplotlib, Agg backend)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # No display anywhere this runs: CI, servers, worker processes.

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay  # noqa: E402


def confusion_matrix_figure(confusion: np.ndarray, class_names: Sequence[str], title: str):
    """Counts with genre names on both axes, rows the true genre; returns the Figure."""
    size = max(5.0, 0.6 * len(class_names) + 2.0)
    figure, axes = plt.subplots(figsize=(size, size * 0.9), layout="constrained")
    display = ConfusionMatrixDisplay(confusion, display_labels=list(class_names))
    display.plot(ax=axes, cmap="Blues", colorbar=False, xticks_rotation=45, values_format="d")
    axes.set_title(title)
    return figure


def training_curves_figure(history: Mapping[str, Sequence[float]], title: str):
    """Loss and accuracy per epoch, train and validation side by side; returns the Figure."""
    figure, (loss_axes, accuracy_axes) = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    for axes, metric in ((loss_axes, "loss"), (accuracy_axes, "accuracy")):
        for prefix, style in (("", "-"), ("val_", "--")):
            values = history.get(prefix + metric)
            if values:
                epochs = np.arange(1, len(values) + 1)
                axes.plot(epochs, values, style, label="validation" if prefix else "train")
        axes.set_xlabel("epoch")
        axes.set_ylabel(metric)
        axes.grid(alpha=0.3)
        axes.legend()
    if history.get("accuracy"):
        accuracy_axes.set_ylim(0, 1)
    figure.suptitle(title)
    return figure


def save_figure(figure, path) -> None:
    """Write ``figure`` as PNG and release its memory."""
    figure.savefig(path, dpi=110)
    plt.close(figure)
