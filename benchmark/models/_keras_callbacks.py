"""The Keras callbacks of :meth:`benchmark.models.network.KerasNetwork.fit`.

A module of its own because a callback subclasses ``keras.callbacks.Callback``: defining one
imports Keras. :mod:`benchmark.models.network` imports this module inside ``fit`` only, so the
registry stays free of Keras (the leading ``_`` keeps the package's discovery from importing it).
"""

from __future__ import annotations

import logging
import time

import keras

from benchmark import interrupts

# The network module's logger: these lines are the network's training log, as they always were.
log = logging.getLogger("benchmark.models.network")


class EpochProgress(keras.callbacks.Callback):
    """A one-line log per epoch: loss and accuracy on train and validation, and its duration."""

    def __init__(self, label: str, epochs: int):
        super().__init__()
        self.label = label
        self.epochs = epochs
        self._started = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        interrupts.check()  # a Ctrl-C or SIGTERM that a library swallowed stops training here

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
