"""scikit-learn pipelines as estimators: the classical learners' adapter.

A builder registered with ``adapter=SklearnPipeline`` returns an unfitted scikit-learn
``Pipeline``. Inputs are flattened to one row per clip (or segment): a handcrafted vector as
it is, frames end to end. Fitting is seeded (every ``random_state`` of the pipeline is the
run's seed) and uses the training inputs only; the validation inputs are scored once, after
fitting, so the tuner and the report see a validation accuracy and loss like a network's.

scikit-learn and joblib are imported inside the methods: the model package is imported in
environments that hold only Keras (the backend matrix of the model tests).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from benchmark.models.estimator import FitReport, RegisteredEstimator

#: The fitted arrays that are a linear model's or an SVM's parameters (not bookkeeping such as
#: ``classes_`` or ``n_iter_``).
_PARAMETER_ATTRIBUTES = ("coef_", "intercept_", "support_vectors_", "dual_coef_")


class SklearnPipeline(RegisteredEstimator):
    """A registered scikit-learn pipeline builder as an :class:`~benchmark.models.estimator.Estimator`."""

    kind: ClassVar[str] = "classical"
    requirements: ClassVar[tuple[str, ...]] = ("scikit-learn",)
    suffix: ClassVar[str] = ".joblib"
    #: No epochs, batches or learning rate: a classical learner given one is a config error.
    training_keys: ClassVar[tuple[str, ...]] = ()
    training_search_space: ClassVar[dict[str, dict[str, Any]]] = {}

    @classmethod
    def missing_inputs(cls, features) -> str | None:
        if getattr(features, "add_handcrafted", False):
            return "a classical learner takes one input: set representation = \"handcrafted\" instead of add_handcrafted"
        return None

    @property
    def native(self) -> Any:
        if self._model is None:
            self._model = self._build(self.input_shape, self.n_classes, **self.hyperparameters)
        return self._model

    @staticmethod
    def rows(x: np.ndarray) -> np.ndarray:
        """One float64 row per input: vectors as they are, frames flattened."""
        x = np.asarray(x)
        return x.reshape(len(x), -1).astype(np.float64)

    def fit(self, x_train, y_train, x_valid, y_valid, *, training=None, seed: int = 0,
            callbacks: Sequence[Any] = (), label: str = "") -> FitReport:
        self._model = None
        pipeline = self.native
        pipeline.set_params(**{key: int(seed) for key in pipeline.get_params() if key.endswith("random_state")})
        started = time.perf_counter()
        pipeline.fit(self.rows(x_train), np.asarray(y_train))
        seconds = time.perf_counter() - started
        logs = {**self._scores(x_train, y_train, ""), **self._scores(x_valid, y_valid, "val_")}
        for callback in callbacks:  # one "epoch": per-epoch trackers record its figures
            callback.on_epoch_end(0, logs)
        return FitReport({key: [value] for key, value in logs.items()}, seconds, 1,
                         all(np.isfinite(value) for value in logs.values()))

    def _scores(self, x, y, prefix: str) -> dict[str, float]:
        from sklearn.metrics import log_loss

        if len(y) == 0:
            return {}
        probabilities = self.predict_proba(x)
        return {
            f"{prefix}loss": float(log_loss(y, probabilities, labels=np.arange(self.n_classes))),
            f"{prefix}accuracy": float((probabilities.argmax(axis=1) == np.asarray(y)).mean()),
        }

    def predict_proba(self, x, *, batch_size: int = 32) -> np.ndarray:
        """Probabilities in the label encoder's order, over every class (unseen ones get 0)."""
        pipeline = self.native
        found = pipeline.predict_proba(self.rows(x))
        probabilities = np.zeros((len(found), self.n_classes))
        probabilities[:, np.asarray(pipeline.classes_, dtype=int)] = found
        return probabilities

    def count_params(self) -> int:
        """Fitted numbers of the final step: tree nodes for a forest, the stored training values for
        nearest neighbours, weights and intercepts (and support vectors) otherwise."""
        final = self.native.steps[-1][1]
        if hasattr(final, "estimators_"):
            return int(sum(tree.tree_.node_count for tree in final.estimators_))
        if hasattr(final, "_fit_X"):  # k-NN keeps its training set: that is its model
            return int(np.asarray(final._fit_X).size)
        return int(sum(np.asarray(getattr(final, name)).size for name in _PARAMETER_ATTRIBUTES
                       if hasattr(final, name)))

    def save(self, folder: Path) -> Path:
        import joblib

        path = Path(folder) / f"model{self.suffix}"
        joblib.dump({"pipeline": self.native, "n_classes": self.n_classes}, path)
        return path

    @classmethod
    def load(cls, path: Path) -> SklearnPipeline:
        import joblib

        saved = joblib.load(path)
        return cls(_already_fitted, None, saved["n_classes"], {}, model=saved["pipeline"])


def _already_fitted(*_args, **_kwargs):
    raise RuntimeError("a loaded pipeline cannot be rebuilt")
