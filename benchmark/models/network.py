"""Keras networks as estimators: the study's optimiser, loss and metric, seeded end to end.

Knows nothing of MLflow: tracking hooks in through the ``callbacks`` of :meth:`KerasNetwork.fit`,
so the runner, the tuner and the tests all train through this one class.

Keras is imported where a network is built, fitted, compiled, saved or loaded, never at import:
the registry (names, defaults, adapters, search spaces) is read by processes that only check an
experiment's settings, and must not cost a deep-learning framework's start-up.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from benchmark.data import inputs
from benchmark.models.estimator import FitReport, RegisteredEstimator

if TYPE_CHECKING:
    import keras

    from benchmark.config import TrainConfig

log = logging.getLogger(__name__)

#: ``[train] feed = "auto"`` feeds a network batch by batch (:mod:`benchmark.models._feeding`)
#: when its training inputs would take more than this as float32, and whole arrays otherwise.
#: Whole arrays cost Keras a float32 copy of each split as backend tensors (the study's 700
#: training clips of 1025 x 1320: 3.8 GB, on top of the arrays themselves); streaming reads
#: each batch from the arrays (or memmaps) anew, and draws another shuffle, so its results
#: differ from the whole-array path's. At 1 GiB the bundled reduced experiments (default,
#: kfold, smoke: 0.1 GB at most) keep the whole-array path and their exact results, while the
#: paper's STFT input, which a laptop cannot hold twice, streams.
STREAM_ABOVE_BYTES = 1 << 30


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and the Keras backend so a run repeats exactly on the same backend."""
    import keras

    keep_tensorflow_out()
    keras.utils.set_random_seed(int(seed))


def keep_tensorflow_out() -> None:
    """Under JAX or PyTorch, tell Keras that TensorFlow is absent, where nothing imported it yet.

    Keras imports TensorFlow whenever it is installed: to seed it too (``set_random_seed``, for
    ``tf.data`` pipelines) and to ask whether an object it saves is a ``tf.TensorShape``. In a
    JAX or PyTorch unit that cost seconds and two CUDA-probing log lines per unit, for nothing
    the harness uses (it feeds arrays or a ``PyDataset``, never ``tf.data``; no object can be a
    TensorFlow type while TensorFlow is not imported). Keras's own availability flag says so for
    the rest of the process; a Keras without that flag keeps its own way.
    """
    import keras

    if keras.backend.backend() == "tensorflow" or "tensorflow" in sys.modules:
        return
    try:
        from keras.src.utils.module_utils import tensorflow as lazy_tensorflow
    except ImportError:
        return
    if getattr(lazy_tensorflow, "_available", True) is None:  # not asked yet
        lazy_tensorflow._available = False


class KerasNetwork(RegisteredEstimator):
    """A registered Keras builder as an :class:`~benchmark.models.estimator.Estimator`.

    The network is built inside :meth:`fit`, after the session is cleared and every generator
    seeded, so the same seed gives the same initial weights whatever ran before it.
    """

    kind: ClassVar[str] = "network"
    #: ``[train] feed`` of the last :meth:`fit` (a loaded network: ``auto``); it applies to
    #: :meth:`predict_proba` too, whose test inputs may be as large as the training ones.
    feed: str = "auto"
    requirements: ClassVar[tuple[str, ...]] = ("keras",)
    suffix: ClassVar[str] = ".keras"
    #: The ``[train]``/``[model.<name>]`` settings a network uses.
    training_keys: ClassVar[tuple[str, ...]] = ("epochs", "batch_size", "learning_rate")
    #: What ``tune`` searches of the training settings, for every network unless its own space says.
    training_search_space: ClassVar[dict[str, dict[str, Any]]] = {
        "learning_rate": {"type": "float", "low": 1e-5, "high": 1e-2, "log": True},
        "batch_size": {"type": "categorical", "choices": [16, 32, 64]},
    }

    @classmethod
    def missing_inputs(cls, features) -> str | None:
        """Why ``features`` (a :class:`benchmark.config.FeaturesConfig`) cannot feed this model, or None."""
        return None

    def build(self) -> Any:
        """The untrained network (built once; :meth:`fit` builds a fresh, seeded one)."""
        if self._model is None:
            self._model = self._build(self.input_shape, self.n_classes, **self.hyperparameters)
        return self._model

    @property
    def native(self) -> Any:
        return self.build()

    def adapt(self, model: Any, x_train) -> None:
        """Fit the network's preprocessing layers, if any, on the training inputs (before compiling)."""

    def fit(self, x_train, y_train, x_valid, y_valid, *, training: TrainConfig, seed: int,
            callbacks: Sequence[Any] = (), label: str = "") -> FitReport:
        import keras

        from benchmark.models._keras_callbacks import EpochProgress, StopOnNonFinite
        from benchmark.models._precision import precision_policy

        keras.utils.clear_session(free_memory=True)
        seed_everything(seed)
        self._model = None
        with dtype_policy(precision_policy(training.mixed_precision)):
            model = self.build()
        self.adapt(model, x_train)
        trained = compile_network(model, training.learning_rate, jit_compile=training.jit_compile,
                                  steps_per_execution=training.steps_per_execution, watch_nonfinite=True)
        progress = EpochProgress(label or model.name, training.epochs)
        nonfinite = StopOnNonFinite()
        stopping = early_stopping(training.early_stopping)
        self.feed = training.feed
        data = self._training_data(x_train, y_train, x_valid, y_valid, training.batch_size, seed,
                                   label or model.name)
        started = time.perf_counter()
        history = trained.fit(
            **data,
            epochs=training.epochs,
            verbose=0,
            callbacks=[progress, nonfinite, *callbacks, *([stopping] if stopping else [])],
        )
        seconds = time.perf_counter() - started
        report = fit_report(history.history, seconds, nonfinite.where)
        if stopping is not None and stopping.best_weights is not None:  # None: no epoch was monitored
            report.best_epoch = stopping.best_epoch + 1
            # Patience running out at the last epoch saved nothing: that run trained every epoch.
            stopped = stopping.stopped_epoch + 1 if stopping.stopped_epoch else None
            report.stopped_epoch = stopped if stopped is not None and stopped < training.epochs else None
            log.info("%s: %s; weights of epoch %d kept (best %s)", label or model.name,
                     f"stopped after epoch {report.stopped_epoch}" if report.stopped_epoch
                     else f"ran all {training.epochs} epochs", report.best_epoch, stopping.monitor)
        return report

    def _training_data(self, x_train, y_train, x_valid, y_valid, batch_size: int, seed: int,
                       label: str) -> dict[str, Any]:
        """``model.fit``'s data arguments for :attr:`feed`: whole arrays that Keras shuffles, or
        a :class:`~benchmark.models._feeding.BatchFeed` of each split (the training one shuffled
        by ``seed``)."""
        feed = chosen_feed(self.feed, x_train)
        log.info("%s: inputs fed %s (feed %s, training inputs %.2f GB as float32)", label,
                 "batch by batch" if feed == "stream" else "as whole arrays", self.feed,
                 float32_bytes(x_train) / 1e9)
        if feed == "memory":
            return {"x": x_train, "y": y_train, "validation_data": (x_valid, y_valid), "batch_size": batch_size,
                    "shuffle": True}
        from benchmark.models._feeding import BatchFeed

        return {"x": BatchFeed(x_train, y_train, batch_size, seed=seed),
                "validation_data": BatchFeed(x_valid, y_valid, batch_size), "shuffle": False}

    def predict_proba(self, x, *, batch_size: int = 32) -> np.ndarray:
        model = self.build()
        if inputs.count(x) <= batch_size:
            # One batch (serving, a chunk at a time): skip predict()'s per-call data pipeline.
            return np.asarray(model.predict_on_batch(inputs.as_float32(x)), dtype=np.float64)
        if chosen_feed(self.feed, x) == "stream":
            from benchmark.models._feeding import BatchFeed

            return np.asarray(model.predict(BatchFeed(x, None, batch_size), verbose=0), dtype=np.float64)
        return np.asarray(model.predict(x, batch_size=batch_size, verbose=0), dtype=np.float64)

    def count_params(self) -> int:
        return int(self.build().count_params())

    def save(self, folder: Path) -> Path:
        """Write the network without its optimizer: what predicting needs, a third of Adam's size.

        Keras saves a compiled model's optimizer state too (Adam keeps two slots per weight), so
        the file of a trained network would be three times its weights, written and then copied
        into the store for every run, yet :meth:`load` never reads it.
        """
        path = Path(folder) / f"model{self.suffix}"
        model = self.build()
        optimizer = getattr(model, "optimizer", None)
        model.optimizer = None
        try:
            model.save(path)
        finally:
            model.optimizer = optimizer
        return path

    @classmethod
    def load(cls, path: Path) -> KerasNetwork:
        """A saved network, ready to predict (``compile=False``: no optimizer state is needed)."""
        import keras

        model = keras.saving.load_model(path, compile=False)
        return cls(_already_built, None, int(model.output_shape[-1]), {}, model=model)


def float32_bytes(x: inputs.Inputs) -> int:
    """What the inputs ``x`` take as float32 (every part of a dict)."""
    parts = x.values() if isinstance(x, dict) else [x]
    return sum(4 * math.prod(part.shape) for part in parts)


def chosen_feed(setting: str, x: inputs.Inputs) -> str:
    """How to feed ``x`` under ``[train] feed = setting``: ``memory`` (whole arrays) or ``stream``
    (batch by batch); ``auto`` streams above :data:`STREAM_ABOVE_BYTES` as float32."""
    if setting != "auto":
        return setting
    return "stream" if float32_bytes(x) > STREAM_ABOVE_BYTES else "memory"


def compile_network(model: Any, learning_rate: float, *, jit_compile: bool | str = "auto",
                    steps_per_execution: int = 1, watch_nonfinite: bool = False) -> Any:
    """The study's optimiser, loss and metric: Adam, sparse categorical cross-entropy, accuracy.

    Returns the model to ``fit``: :func:`logits_view` of ``model`` where it has one, compiled
    to take the cross-entropy from the logits, else ``model`` itself. ``model`` is compiled as
    before either way, so that predicting with it runs as it always did.

    ``jit_compile`` is ``[train] jit_compile``: XLA on, off, or Keras's choice (``auto``);
    ``steps_per_execution`` is ``[train] steps_per_execution``. ``watch_nonfinite`` adds the
    on-device record of the first batch with a non-finite loss that
    :class:`~benchmark.models._keras_callbacks.StopOnNonFinite` reads (the harness's fit; a
    bare fit goes without). Under a ``mixed_float16`` policy Keras wraps Adam in its
    ``LossScaleOptimizer``, so float16 gradients are scaled and an overflowing step is skipped.
    """
    import keras

    metrics: list[Any] = ["accuracy"]
    if watch_nonfinite:
        from benchmark.models._keras_callbacks import FirstNonFiniteBatch

        metrics.append(FirstNonFiniteBatch())
    view = logits_view(model)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=metrics if view is None else ["accuracy"],
                  jit_compile=jit_compile, steps_per_execution=steps_per_execution)
    if view is None:
        return model
    view.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
                 loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                 metrics=metrics, jit_compile=jit_compile, steps_per_execution=steps_per_execution)
    return view


def logits_view(model: Any) -> Any | None:
    """``model`` up to its genre logits (:data:`~benchmark.models.blocks.LOGITS_LAYER`): the same
    layers and weights, without the final softmax; None for a network without that layer.

    Training takes its loss from these logits on every backend. Keras's TensorFlow backend
    does so by itself behind a softmax; JAX and PyTorch otherwise take the log of the clipped
    probabilities, whose gradient vanishes once the softmax saturates: fcnn then sat at chance
    on every seed under JAX while it learned under TensorFlow. Accuracy is the same on logits
    as on probabilities (the softmax keeps the order).
    """
    import keras

    from benchmark.models.blocks import LOGITS_LAYER

    try:
        logits = model.get_layer(LOGITS_LAYER).output
    except (ValueError, AttributeError):  # no such layer, or not a functional network
        return None
    return keras.Model(model.input, logits, name=model.name)


def fit_report(history: dict[str, list], seconds: float, nonfinite_at: tuple[int, int | None] | None) -> FitReport:
    """The report of a Keras fit from its history, less the non-finite watch's own entries
    (bookkeeping, not a metric to track)."""
    from benchmark.models._keras_callbacks import NONFINITE_METRIC

    kept = {key: [float(value) for value in values] for key, values in history.items()
            if key not in (NONFINITE_METRIC, f"val_{NONFINITE_METRIC}")}
    losses = kept.get("loss", [])
    return FitReport(history=kept, seconds=seconds, epochs_run=len(losses),
                     finite=nonfinite_at is None and all(math.isfinite(value) for value in losses),
                     nonfinite_at=nonfinite_at)


def early_stopping(settings) -> keras.callbacks.EarlyStopping | None:
    """The callback for ``[train.early_stopping]`` (None where it is off): it stops once the
    monitored value has not improved for ``patience`` epochs and restores the best epoch's
    weights, whether or not it stopped early, so the network scored is the best one seen."""
    if not settings.enabled:
        return None
    import keras

    return keras.callbacks.EarlyStopping(monitor=settings.monitor, patience=settings.patience,
                                         min_delta=settings.min_delta, start_from_epoch=settings.start_from_epoch,
                                         restore_best_weights=True)


@contextmanager
def dtype_policy(name: str) -> Iterator[None]:
    """Build layers under Keras's dtype policy ``name`` (``mixed_bfloat16``), then restore the
    previous one: the policy is global, and must not leak into the next run's network."""
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _already_built(*_args, **_kwargs):
    raise RuntimeError("a loaded network cannot be rebuilt")
