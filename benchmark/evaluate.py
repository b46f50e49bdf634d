"""Scoring a fitted network on held-out clips with scikit-learn's metrics."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support


@dataclass
class Evaluation:
    """Test-set results: flat metrics for tracking plus the arrays behind them."""

    metrics: dict[str, float]
    confusion: np.ndarray
    probabilities: np.ndarray
    predicted: np.ndarray


def evaluate_model(
    model: Any, x: np.ndarray, y: np.ndarray, class_names: Sequence[str], *, batch_size: int = 32
) -> Evaluation:
    """Accuracy, macro F1, per-class precision/recall/F1, confusion matrix and inference time.

    Inference time is measured after one warm-up batch, so it excludes graph tracing and
    compilation, and is reported per clip over the whole set.
    """
    model.predict(x[:batch_size], batch_size=batch_size, verbose=0)
    started = time.perf_counter()
    probabilities = np.asarray(model.predict(x, batch_size=batch_size, verbose=0), dtype=np.float64)
    seconds = time.perf_counter() - started
    predicted = probabilities.argmax(axis=1)
    return Evaluation(
        metrics=classification_metrics(y, predicted, class_names)
        | {"inference_ms_per_clip": 1000.0 * seconds / max(len(x), 1)},
        confusion=confusion_matrix(y, predicted, labels=np.arange(len(class_names))),
        probabilities=probabilities,
        predicted=predicted,
    )


def classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str]
) -> dict[str, float]:
    """Accuracy, macro F1 and per-class precision/recall/F1 as a flat ``{name: value}`` dict."""
    labels = np.arange(len(class_names))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    metrics = {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
    }
    for index, name in enumerate(class_names):
        metrics[f"precision_{name}"] = float(precision[index])
        metrics[f"recall_{name}"] = float(recall[index])
        metrics[f"f1_{name}"] = float(f1[index])
    return metrics
