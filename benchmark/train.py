"""Fitting one (model, seed): the study's optimiser, loss and metric, seeded end to end.

Knows nothing of MLflow: tracking hooks in through the ``callbacks`` it is given, so the
runner, the tuner and the tests all train through this one function. Importing it imports
Keras (and so the backend): the command line imports it only when it trains.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from benchmark.config import TrainConfig

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """A fitted network and how fitting went."""

    model: Any
    history: dict[str, list[float]]
    seconds: float
    epochs_run: int
    #: False where the loss became NaN or infinite and training was stopped.
    finite: bool


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and the Keras backend so a run repeats exactly on the same backend."""
    keras.utils.set_random_seed(int(seed))


def train_model(
    model_name: str,
    hyperparameters: dict[str, Any],
    training: TrainConfig,
    *,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_valid: np.ndarray,
    y_valid: np.ndarray,
    n_classes: int,
    seed: int,
    callbacks: Sequence[Any] = (),
    label: str = "",
) -> TrainResult:
    """Build ``model_name`` with ``hyperparameters`` and fit it; validation data is only watched."""
    from benchmark.models import create_model

    keras.utils.clear_session(free_memory=True)
    seed_everything(seed)
    model = create_model(model_name, x_train.shape[1:], n_classes, **hyperparameters)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=training.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    progress = EpochProgress(label or model_name, training.epochs)
    started = time.perf_counter()
    history = model.fit(
        x_train,
        y_train,
        validation_data=(x_valid, y_valid),
        epochs=training.epochs,
        batch_size=training.batch_size,
        shuffle=True,
        verbose=0,
        callbacks=[keras.callbacks.TerminateOnNaN(), progress, *callbacks],
    )
    seconds = time.perf_counter() - started
    losses = history.history.get("loss", [])
    return TrainResult(
        model=model,
        history={key: [float(value) for value in values] for key, values in history.history.items()},
        seconds=seconds,
        epochs_run=len(losses),
        finite=all(math.isfinite(value) for value in losses),
    )


class EpochProgress(keras.callbacks.Callback):
    """A one-line log per epoch: loss and accuracy on train and validation, and its duration."""

    def __init__(self, label: str, epochs: int):
        super().__init__()
        self.label = label
        self.epochs = epochs
        self._started = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        figures = " ".join(
            f"{key} {logs[key]:.4f}"
            for key in ("loss", "accuracy", "val_loss", "val_accuracy")
            if key in logs
        )
        log.info(
            "%s epoch %d/%d: %s (%.1fs)",
            self.label, epoch + 1, self.epochs, figures, time.perf_counter() - self._started,
        )
