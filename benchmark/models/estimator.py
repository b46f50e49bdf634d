"""The estimator protocol: what a registered model is to the runner, tuner, report and serving.

A registered model is anything that can be built from (input shape, number of classes,
hyperparameters), fitted on training inputs while validation inputs are watched, asked for
class probabilities, and saved to one file that loads back without the training code's state.
Keras networks are one kind (:class:`benchmark.models.network.KerasNetwork`); a scikit-learn
pipeline is another. Nothing outside an adapter branches on the kind: the ``kind`` attribute is
a label for listings and reports. Runs log the saved file inside their audio model
(:mod:`benchmark.audio_model`), whatever the kind.

Only the standard library and NumPy are imported here: the registry, and the model tests that
run with nothing but Keras and a backend installed, read this module.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np


@dataclass
class FitReport:
    """How fitting went: per-epoch history (one point for a learner without epochs) and timing."""

    history: dict[str, list[float]]
    seconds: float
    epochs_run: int
    #: False where the loss became NaN or infinite and fitting was stopped.
    finite: bool
    #: With early stopping: the epoch (1-based) whose weights were kept, by the monitored value.
    best_epoch: int | None = None
    #: With early stopping: the epoch (1-based) after which training stopped, or None if it ran
    #: every epoch.
    stopped_epoch: int | None = None
    #: Where the loss first became NaN or infinite, ``(epoch, batch)`` counted from 1 (batch
    #: None where only the epoch is known), or None.
    nonfinite_at: tuple[int, int | None] | None = None


class RegisteredEstimator:
    """What every adapter holds: the registered builder, the input shape (one, or a dict for a
    model of several inputs), the classes and the resolved hyperparameters; ``model`` is the
    native object once built, fitted or loaded."""

    def __init__(self, build: Callable[..., Any], input_shape: Any, n_classes: int,
                 hyperparameters: Mapping[str, Any], model: Any = None):
        self._build = build
        self.input_shape = input_shape
        self.n_classes = n_classes
        self.hyperparameters = dict(hyperparameters)
        self._model = model


@runtime_checkable
class Estimator(Protocol):
    """A model of the benchmark: built lazily, fitted once, then asked for probabilities."""

    #: A label for listings and reports: ``network``, ``classical``, ...
    kind: ClassVar[str]
    #: Pip packages the saved model needs besides NumPy and the Keras backend.
    requirements: ClassVar[tuple[str, ...]]
    #: Suffix of the file :meth:`save` writes; :func:`benchmark.models.load_estimator` dispatches on it.
    suffix: ClassVar[str]
    #: The training settings (``epochs``, ``batch_size``, ``learning_rate``) the model uses;
    #: giving it any other is a configuration error.
    training_keys: ClassVar[tuple[str, ...]]
    #: Optional: the ``[features]`` values the model's inputs need (the combined network's
    #: ``{"add_handcrafted": True}``). Wherever the model is named, its entry's features get them
    #: unless its own ``[model.<name>.features]`` table sets those keys (:func:`required_features`).
    required_features: ClassVar[Mapping[str, Any]]

    @classmethod
    def missing_inputs(cls, features: Any) -> str | None:
        """Why an entry's :class:`benchmark.config.FeaturesConfig` cannot feed this model, or None.

        ``<name>`` in the reason stands for the model entry; the harness puts the entry's name there.
        """

    @property
    def native(self) -> Any:
        """The fitted library object (a ``keras.Model``, a scikit-learn ``Pipeline``, ...)."""

    def fit(
        self, x_train: np.ndarray, y_train: np.ndarray, x_valid: np.ndarray, y_valid: np.ndarray, *,
        training: Any, seed: int, callbacks: Sequence[Any] = (), label: str = "",
    ) -> FitReport:
        """Fit on the training inputs, seeded; the validation inputs are only watched.

        ``training`` is the model's effective :class:`benchmark.config.TrainConfig`;
        ``callbacks`` are Keras callbacks (per-epoch tracking, pruning), ignored by learners
        without epochs.
        """

    def predict_proba(self, x: np.ndarray, *, batch_size: int = 32) -> np.ndarray:
        """Class probabilities, float64 of shape (len(x), n_classes)."""

    def count_params(self) -> int:
        """The number of fitted parameters, as the leaderboard shows it."""

    def save(self, folder: Path) -> Path:
        """Write the fitted model into ``folder`` as one file named ``model<suffix>``; returns it."""

