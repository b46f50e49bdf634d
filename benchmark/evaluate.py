"""Scoring a fitted estimator on held-out clips with scikit-learn's metrics.

Where the network sees segments, a clip's label comes from voting over its segments
(:func:`aggregate_clips`): the headline metrics (``accuracy``, ``macro_f1``, per class, the
confusion matrix) are per clip, by the configured vote; the segment-level figures and the
other vote's accuracy are logged beside them (``segment_accuracy``, ``clip_majority_accuracy``,
``clip_mean_accuracy``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from benchmark.config import VOTES
from benchmark.data import inputs
from benchmark.genre_names import metric_names


@dataclass
class Evaluation:
    """Test-set results per clip: flat metrics for tracking plus the arrays behind them."""

    metrics: dict[str, float]
    confusion: np.ndarray
    #: Per clip: mean segment probabilities (``mean`` vote) or vote shares (``majority``).
    probabilities: np.ndarray
    predicted: np.ndarray
    #: Per clip: its true label, and the clip id it was given (``clips`` of :func:`evaluate_model`).
    truth: np.ndarray
    clips: np.ndarray


def evaluate_model(
    estimator: Any, x: np.ndarray, y: np.ndarray, class_names: Sequence[str], *,
    clips: np.ndarray | None = None, vote: str = "mean", batch_size: int = 32,
) -> Evaluation:
    """Accuracy, macro F1, per-class precision/recall/F1, confusion matrix and inference time.

    ``estimator`` follows :class:`benchmark.models.Estimator` (only ``predict_proba`` is used).
    ``x``/``y`` are model inputs and their labels; ``clips`` gives each input's clip id
    (segments of one clip share it), None where every input is a whole clip. Inference time is
    measured after one warm-up batch, so it excludes graph tracing and compilation, and is
    reported per clip over the whole set.
    """
    if vote not in VOTES:  # before the (slow) predictions below
        raise ValueError(f"unknown vote {vote!r} ({', '.join(VOTES)})")
    estimator.predict_proba(inputs.take(x, slice(0, batch_size)), batch_size=batch_size)
    started = time.perf_counter()
    probabilities = estimator.predict_proba(x, batch_size=batch_size)
    seconds = time.perf_counter() - started
    n_inputs = inputs.count(x)
    if clips is None:
        clips = np.arange(n_inputs)
    clip_ids, first, groups = np.unique(clips, return_index=True, return_inverse=True)
    truth = np.asarray(y)[first]
    votes = {method: aggregate_clips(probabilities, groups, len(clip_ids), method) for method in VOTES}
    scores, predicted = votes[vote]
    metrics = classification_metrics(truth, predicted, class_names)
    if len(clip_ids) < n_inputs:  # segments: the segment-level view and both votes, side by side
        segment_predicted = probabilities.argmax(axis=1)
        metrics["segment_accuracy"] = float(accuracy_score(y, segment_predicted))
        metrics["segment_macro_f1"] = float(f1_score(y, segment_predicted, labels=np.arange(len(class_names)),
                                                     average="macro", zero_division=0))
        for method, (_, labels) in votes.items():
            metrics[f"clip_{method}_accuracy"] = float(accuracy_score(truth, labels))
    return Evaluation(
        metrics=metrics | {"inference_ms_per_clip": 1000.0 * seconds / max(len(clip_ids), 1)},
        confusion=confusion_matrix(truth, predicted, labels=np.arange(len(class_names))),
        probabilities=scores,
        predicted=predicted,
        truth=truth,
        clips=clip_ids,
    )


def aggregate_clips(
    probabilities: np.ndarray, groups: np.ndarray, n_clips: int, vote: str
) -> tuple[np.ndarray, np.ndarray]:
    """Per-clip scores and labels from per-segment probabilities; ``groups[i]`` is segment i's clip.

    ``mean``: the argmax of the mean probability. ``majority``: the label most segments chose;
    a tie goes to the tied label with the higher mean probability. The scores are the mean
    probabilities, or the share of segments voting for each label.
    """
    if vote not in VOTES:
        raise ValueError(f"unknown vote {vote!r} ({', '.join(VOTES)})")
    n_classes = probabilities.shape[1]
    counts = np.bincount(groups, minlength=n_clips).astype(np.float64)[:, None]
    mean = np.zeros((n_clips, n_classes))
    np.add.at(mean, groups, probabilities)
    mean /= counts
    if vote == "mean":
        return mean, mean.argmax(axis=1)
    votes = np.zeros((n_clips, n_classes))
    np.add.at(votes, (groups, probabilities.argmax(axis=1)), 1.0)
    # Vote counts are whole numbers and mean probabilities sum to 1: half of one only breaks ties.
    return votes / counts, (votes + 0.5 * mean).argmax(axis=1)


def classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, class_names: Sequence[str]
) -> dict[str, float]:
    """Accuracy, macro F1 and per-class precision/recall/F1 as a flat ``{name: value}`` dict.

    Per-class keys use each genre's metric name (:func:`benchmark.genre_names.metric_names`):
    a folder called ``r&b`` gives ``f1_r_b``, since MLflow refuses ``&`` in a metric name.
    """
    labels = np.arange(len(class_names))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    metrics = {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
    }
    for index, name in enumerate(metric_names(class_names).values()):
        metrics[f"precision_{name}"] = float(precision[index])
        metrics[f"recall_{name}"] = float(recall[index])
        metrics[f"f1_{name}"] = float(f1[index])
    return metrics
