"""The Keras callbacks and the metric of :meth:`benchmark.models.network.KerasNetwork.fit`.

A module of its own because a callback subclasses ``keras.callbacks.Callback``: defining one
imports Keras. :mod:`benchmark.models.network` imports this module inside ``fit`` only, so the
registry stays free of Keras (the leading ``_`` keeps the package's discovery from importing it).

None of them reads a batch's logs. Keras's callback list runs ``on_train_batch_end`` on the
main thread, converting every batch's loss to a Python float (a wait for the device), as soon
as one callback overrides it (``keras/src/callbacks/callback_list.py``,
``_configure_async_dispatch``); under JAX it otherwise hands the logs to a worker thread and the
next step is dispatched at once. So the interrupt check runs at ``on_train_batch_begin``, which
gets no logs, and a non-finite loss is found on the device by :class:`FirstNonFiniteBatch`,
read once an epoch.
"""

from __future__ import annotations

import logging
import math
import time

import keras
from keras import ops

from benchmark import interrupts

# The network module's logger: these lines are the network's training log, as they always were.
log = logging.getLogger("benchmark.models.network")

#: The name of :class:`FirstNonFiniteBatch` in Keras's logs (and ``val_`` + it on validation).
NONFINITE_METRIC = "first_nonfinite_batch"


class EpochProgress(keras.callbacks.Callback):
    """A one-line log per epoch: loss and accuracy on train and validation, and its duration."""

    def __init__(self, label: str, epochs: int):
        super().__init__()
        self.label = label
        self.epochs = epochs
        self._started = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_train_batch_begin(self, batch, logs=None):
        # A Ctrl-C or SIGTERM that a library swallowed stops training here. At the batch's
        # begin, not its end: a hook at the end would make Keras pull every batch's logs.
        interrupts.check()

    def on_test_batch_begin(self, batch, logs=None):
        interrupts.check()  # validation of a large split takes a while too

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


class FirstNonFiniteBatch(keras.metrics.Metric):
    """The number (1-based) of the epoch's first batch whose predictions hold a NaN or an
    infinity, or 0: kept on the device and read with the epoch's other logs.

    The predictions stand for the loss: a network trains on its logits
    (:func:`benchmark.models.network.logits_view`), whose softmax cross-entropy Keras computes
    stably, so the loss is non-finite exactly when a logit is (for a network without that view,
    the cross-entropy of clipped probabilities, likewise). Keras resets metrics at each
    epoch's start, so the count is per epoch.
    """

    def __init__(self, name: str = NONFINITE_METRIC, **kwargs):
        super().__init__(name=name, dtype="float32", **kwargs)
        # float32 counts batches exactly up to 2**24, far beyond any epoch here.
        self.batches = self.add_variable(shape=(), initializer="zeros", dtype="float32", name="batches")
        self.first = self.add_variable(shape=(), initializer="zeros", dtype="float32", name="first")

    def update_state(self, y_true, y_pred, sample_weight=None):
        batch = ops.add(ops.convert_to_tensor(self.batches), 1.0)
        first = ops.convert_to_tensor(self.first)
        bad = ops.logical_not(ops.all(ops.isfinite(y_pred)))
        self.first.assign(ops.where(ops.logical_and(bad, ops.equal(first, 0.0)), batch, first))
        self.batches.assign(batch)

    def result(self):
        # A new tensor, not the variable: under TensorFlow a variable handed out here is read
        # when the logs are, after validation has reset and updated it.
        return ops.cast(self.first, "int32")


class StopOnNonFinite(keras.callbacks.Callback):
    """Stops training after an epoch in which the loss became NaN or infinite, and says where:
    :attr:`where` is ``(epoch, batch)``, 1-based (batch None: the epoch's mean loss was
    non-finite, yet no prediction was, which the networks here cannot do)."""

    def __init__(self):
        super().__init__()
        self.where: tuple[int, int | None] | None = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        batch = int(logs.get(NONFINITE_METRIC, 0))
        loss = logs.get("loss")
        if batch or (loss is not None and not math.isfinite(loss)):
            self.where = (epoch + 1, batch or None)
            self.model.stop_training = True
