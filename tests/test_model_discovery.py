"""Adding a model is one file: a module dropped into ``benchmark/models/`` is trained by ``run``.

The planted module is not a Keras network: it brings its own estimator (a scikit-learn nearest
centroid on each input's mean spectrum), so the test also proves that the runner, tracking,
``report``, ``promote`` and ``predict`` need nothing but the estimator protocol.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from tests.helpers import EXCERPTS
from tests.helpers import run_cli as run_benchmark

pytestmark = pytest.mark.slow

MODEL_NAME = "planted_centroid"
MODULE_SOURCE = textwrap.dedent('''
    """A nearest-centroid classifier on each clip's mean spectrum: a test's one-file model."""

    import time
    from pathlib import Path

    import joblib
    import numpy as np

    from benchmark.models.estimator import FitReport
    from benchmark.models.registry import register_model


    class CentroidEstimator:
        kind = "classical"
        requirements = ("scikit-learn", "joblib")
        suffix = ".planted-joblib"
        training_keys = ()

        @classmethod
        def missing_inputs(cls, features):
            return None

        def __init__(self, build, input_shape, n_classes, hyperparameters, model=None):
            self.n_classes = n_classes
            self._model = model or build(input_shape, n_classes, **hyperparameters)

        @property
        def native(self):
            return self._model

        @staticmethod
        def _summary(x):
            return np.asarray(x, dtype=np.float64).mean(axis=2)

        def fit(self, x_train, y_train, x_valid, y_valid, *, training, seed, callbacks=(), label=""):
            started = time.perf_counter()
            self._model.fit(self._summary(x_train), y_train)
            accuracy = float((self._model.predict(self._summary(x_valid)) == y_valid).mean())
            return FitReport({"val_accuracy": [accuracy]}, time.perf_counter() - started, 1, True)

        def predict_proba(self, x, *, batch_size=32):
            # One-hot on the nearest centroid, in the label order of the whole data set.
            labels = self._model.predict(self._summary(x))
            return np.eye(self.n_classes)[labels]

        def count_params(self):
            return int(self._model.centroids_.size)

        def save(self, folder):
            path = Path(folder) / f"model{self.suffix}"
            joblib.dump((self._model, self.n_classes), path)
            return path

        @classmethod
        def load(cls, path):
            model, n_classes = joblib.load(path)
            return cls(None, None, n_classes, {}, model=model)


    @register_model("{name}", {{"shrink_threshold": 0.0}}, adapter=CentroidEstimator)
    def build(input_shape, n_classes, *, shrink_threshold):
        """Nearest centroid on the mean spectrum (a test's planted model)."""
        from sklearn.neighbors import NearestCentroid

        return NearestCentroid(shrink_threshold=shrink_threshold or None)
''').replace("{name}", MODEL_NAME).replace("{{", "{").replace("}}", "}")


@pytest.fixture
def planted_model_module():
    """The module written into the package that Python imports here (installed or not), then removed."""
    import benchmark.models

    path = Path(benchmark.models.__file__).parent / f"{MODEL_NAME}.py"
    assert not path.exists(), f"{path} is in the way"
    path.write_text(MODULE_SOURCE)
    try:
        yield path
    finally:
        path.unlink()


def test_a_model_in_one_new_file_is_listed_trained_reported_promoted_and_served(planted_model_module, tmp_path):
    import benchmark

    # The commands run the very package the module was planted in (under tox, pytest imports the
    # source tree while the environment also holds an installed copy).
    package_root = str(Path(benchmark.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}

    def run_cli(*args):
        return run_benchmark(*args, cwd=tmp_path, env=env)

    listed = run_cli("list", "models")
    assert listed.returncode == 0, listed.stderr
    line = next(line for line in listed.stdout.splitlines() if MODEL_NAME in line)
    assert "classical" in line and "Nearest centroid" in line

    trained = run_cli("run", "--model", MODEL_NAME, "cnn2d", "--experiment", "smoke", "--no-progress")
    assert trained.returncode == 0, trained.stderr
    assert f"{MODEL_NAME}: architecture={MODEL_NAME}, input=logmel" in trained.stderr  # printed up front
    rows = [line.split() for line in trained.stdout.splitlines() if line.strip().startswith(MODEL_NAME)]
    assert rows and 0.0 <= float(rows[0][2]) <= 1.0
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("smoke").experiment_id],
                                filter_string=f"tags.model = '{MODEL_NAME}'")
    assert (run.data.tags["model_kind"], run.data.tags["architecture"]) == ("classical", MODEL_NAME)
    # Its data as MLflow dataset inputs: one per split, the digest the data fingerprint.
    inputs = {item.dataset.name.rsplit("/", 1)[1]: item for item in run.inputs.dataset_inputs}
    assert sorted(inputs) == ["test", "train", "valid"]
    assert {item.dataset.digest for item in inputs.values()} == {run.data.tags["data_fingerprint"]}
    assert [tag.value for tag in inputs["test"].tags if tag.key == "mlflow.data.context"] == ["test"]

    reported = run_cli("report")
    assert reported.returncode == 0, reported.stderr
    assert "report of experiment 'smoke'" in reported.stdout and "2 models" in reported.stdout

    promoted = run_cli("promote", "--metric", "parameters")  # fewest parameters: the centroids
    assert promoted.returncode == 0, promoted.stderr
    assert f"{MODEL_NAME}-seed0" in promoted.stdout

    clip = next((EXCERPTS / "blues").glob("*.wav"), None) if EXCERPTS.is_dir() else None
    if clip is None:
        from tests.helpers import write_clip

        clip = write_clip(tmp_path / "tone.wav", seconds=2.0)
    labelled = run_cli("predict", str(clip), "--format", "csv")
    assert labelled.returncode == 0, labelled.stderr
    assert ",ok," in labelled.stdout.splitlines()[1]
