"""Which members, with which weights: pure functions over per-clip class probabilities.

Each takes the members' **validation** probabilities only (clips in the same order for every
member, ``truth`` their labels); what they return is then applied to the test probabilities by
:func:`combine`. So the test clips never take part in the choice.

Greedy is the forward selection with replacement of Caruana et al., "Ensemble selection from
libraries of models" (ICML 2004, https://doi.org/10.1145/1015330.1015432): start empty, and
``size`` times add the member (again, possibly) whose addition gives the best validation
accuracy of the averaged probabilities, ties broken by the lower validation log-loss, then by
the order the members are given in. A member's weight is its share of the picks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from sklearn.metrics import accuracy_score, log_loss


def greedy_weights(validation: Mapping[str, np.ndarray], truth: np.ndarray, size: int) -> dict[str, float]:
    """Caruana's forward selection with replacement: ``{member: weight}``, weights summing to 1.

    Only members picked at least once appear, in the order of ``validation``.
    """
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    names = list(validation)
    n_classes = next(iter(validation.values())).shape[1]
    total = np.zeros_like(next(iter(validation.values())), dtype=np.float64)
    picks: list[str] = []
    for step in range(1, size + 1):
        scores = [_score((total + validation[name]) / step, truth, n_classes) for name in names]
        # Highest accuracy, then lowest log-loss; max() keeps the first of equals (the given order).
        best = max(range(len(names)), key=lambda index: (scores[index][0], -scores[index][1], -index))
        picks.append(names[best])
        total += validation[names[best]]
    return {name: picks.count(name) / size for name in names if name in picks}


def mean_weights(members: Sequence[str]) -> dict[str, float]:
    """Equal weights for ``members``."""
    return {name: 1.0 / len(members) for name in members}


def choose_weights(method: str, validation: Mapping[str, np.ndarray], truth: np.ndarray,
                   size: int) -> dict[str, float]:
    """The weights of ``method`` (``greedy`` or ``mean``, :data:`benchmark.config.ENSEMBLE_METHODS`)."""
    if method == "greedy":
        return greedy_weights(validation, truth, size)
    if method == "mean":
        return mean_weights(list(validation))
    raise ValueError(f"unknown ensemble method {method!r}")


def combine(probabilities: Mapping[str, np.ndarray], weights: Mapping[str, float]) -> np.ndarray:
    """The weighted mean of the members' per-clip probabilities (members not weighted are left out)."""
    return sum(weight * np.asarray(probabilities[name], dtype=np.float64) for name, weight in weights.items()) \
        / sum(weights.values())


def _score(probabilities: np.ndarray, truth: np.ndarray, n_classes: int) -> tuple[float, float]:
    """Accuracy and log-loss of averaged probabilities (clipped: a vote share may be 0)."""
    labels = np.arange(n_classes)
    accuracy = float(accuracy_score(truth, probabilities.argmax(axis=1)))
    clipped = np.clip(probabilities, 1e-15, None)
    return accuracy, float(log_loss(truth, clipped / clipped.sum(axis=1, keepdims=True), labels=labels))
