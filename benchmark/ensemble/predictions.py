"""An ensemble's predictions from its members' logged per-clip tables (no MLflow here).

The tables are ``predictions.csv`` and ``validation_predictions.csv`` as runs log them
(:func:`benchmark.artifacts.write_predictions`): one row per clip, after the member's own vote
over its segments, with ``track_id``, ``relative_path``, ``true``, ``predicted``, ``correct``
and one ``p_<genre>`` column per class in the label encoder's order. :func:`form_ensemble`
chooses the weights on the validation tables alone and applies them to the test tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from benchmark.ensemble.select import choose_weights, combine
from benchmark.errors import BenchmarkError

PROBABILITY_PREFIX = "p_"


@dataclass(frozen=True)
class EnsemblePredictions:
    """The chosen weights and the ensemble's test table (the columns of ``predictions.csv``)."""

    weights: dict[str, float]
    class_names: list[str]
    test: pd.DataFrame
    #: The chosen ensemble's accuracy on the validation clips it was chosen on.
    validation_accuracy: float

    @property
    def truth(self) -> np.ndarray:
        """Each test clip's true label index."""
        return self.test["true"].map({name: index for index, name in enumerate(self.class_names)}).to_numpy()

    @property
    def predicted(self) -> np.ndarray:
        """Each test clip's predicted label index."""
        return self.test["predicted"].map({name: index for index, name in enumerate(self.class_names)}).to_numpy()


def form_ensemble(validation: Mapping[str, pd.DataFrame], test: Mapping[str, pd.DataFrame], *, method: str,
                  size: int) -> EnsemblePredictions:
    """Choose weights on ``validation`` (``{member: table}``), then average the ``test`` tables.

    A :class:`BenchmarkError` where the members disagree on their classes or clips.
    """
    class_names = shared_class_names({**{f"{name} (validation)": table for name, table in validation.items()},
                                      **{f"{name} (test)": table for name, table in test.items()}})
    valid_clips, valid_probabilities = aligned(validation, class_names, "validation")
    truth = valid_clips["true"].map({name: index for index, name in enumerate(class_names)}).to_numpy()
    weights = choose_weights(method, valid_probabilities, truth, size)
    validation_accuracy = float((combine(valid_probabilities, weights).argmax(axis=1) == truth).mean())
    test_clips, test_probabilities = aligned(test, class_names, "test")
    probabilities = combine(test_probabilities, weights)
    predicted = np.asarray(class_names, dtype=object)[probabilities.argmax(axis=1)]
    table = test_clips[["track_id", "relative_path", "true"]].assign(
        predicted=predicted, correct=(predicted == test_clips["true"].to_numpy()).astype(int),
        **{f"{PROBABILITY_PREFIX}{name}": probabilities[:, index] for index, name in enumerate(class_names)})
    return EnsemblePredictions(weights, class_names, table, validation_accuracy)


def shared_class_names(tables: Mapping[str, pd.DataFrame]) -> list[str]:
    """The classes every table has, in their column order; a user error where two differ."""
    found = {name: [column.removeprefix(PROBABILITY_PREFIX) for column in table.columns
                    if column.startswith(PROBABILITY_PREFIX)] for name, table in tables.items()}
    first, classes = next(iter(found.items()))
    for name, other in found.items():
        if other != classes:
            raise BenchmarkError(f"ensemble members have different label sets: {first} has {', '.join(classes)}; "
                                 f"{name} has {', '.join(other)}")
    return classes


def aligned(tables: Mapping[str, pd.DataFrame], class_names: list[str],
            which: str) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """The clips (first member's rows, sorted by track id) and each member's probabilities in that order.

    Every member must have scored the same clips, with the same labels.
    """
    columns = [f"{PROBABILITY_PREFIX}{name}" for name in class_names]
    ordered = {name: table.sort_values("track_id", kind="stable").reset_index(drop=True)
               for name, table in tables.items()}
    first, clips = next(iter(ordered.items()))
    for name, table in ordered.items():
        if list(table["track_id"]) != list(clips["track_id"]) or list(table["true"]) != list(clips["true"]):
            raise BenchmarkError(f"ensemble members scored different {which} clips: {first} and {name}")
    return clips, {name: table[columns].to_numpy(dtype=np.float64) for name, table in ordered.items()}
