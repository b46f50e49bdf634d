"""End-to-end runs on synthetic and real audio, read back from MLflow as a user would."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmark.backend import current_backend
from benchmark.config import load_experiment
from benchmark.data.gtzan import GTZAN_GENRES
from tests.helpers import batch_runs, client_for, logged_network, running_mlflow_server

pytestmark = pytest.mark.slow

EXPECTED_ARTIFACTS = {
    "confusion_matrix.png", "confusion_matrix.json", "training_curves.png", "history.json",
    "predictions.csv", "label_encoder.joblib", "labels.json", "skipped_files.csv", "split.json",
    "config.json", "preprocessing.json",
}


@pytest.fixture(scope="module")
def smoke_batch(tmp_path_factory, shared_cache):
    """The smoke experiment's four networks, run once for this module's assertions."""
    from benchmark.runner import run_experiment

    folder = tmp_path_factory.mktemp("smoke-batch")
    uri = f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GENRE_BENCHMARK_CACHE", str(shared_cache))
        patch.chdir(folder)
        outcome = run_experiment(load_experiment("smoke"), ["fcnn", "cnn1d", "cnn2d", "crnn"],
                                 tracking_uri=uri, progress=False)
    return outcome, folder



def test_one_finished_run_per_model_with_identifying_tags(smoke_batch):
    outcome, folder = smoke_batch
    client, runs = batch_runs(outcome)
    assert set(runs) == {"fcnn", "cnn1d", "cnn2d", "crnn"}
    assert client.get_experiment(outcome.experiment_id).name == "smoke"
    fingerprints = {run.data.tags["data_fingerprint"] for run in runs.values()}
    split_hashes = {run.data.tags["split_hash"] for run in runs.values()}
    assert len(fingerprints) == 1 and len(split_hashes) == 1
    for model, run in runs.items():
        assert run.info.status == "FINISHED"
        assert run.info.run_name == f"{model}-seed0"
        tags = run.data.tags
        assert tags["seed"] == "0" and tags["experiment"] == "smoke"
        assert tags["run_kind"] == "train"  # what report and promote select on
        assert tags["keras_backend"] == current_backend()  # tox runs this on TensorFlow and on JAX
        assert tags["git_commit"] and tags["version.keras"] and tags["version.mlflow"]
    # The local store keeps artifacts beside the database, not in the working directory.
    assert (folder / "mlruns" / "artifacts" / "smoke").is_dir()


def test_config_hyperparameters_and_metrics_are_logged(smoke_batch):
    import pandas as pd
    from sklearn.metrics import f1_score

    from benchmark.models import get_model_spec, resolve_hyperparameters

    outcome, _ = smoke_batch
    client, runs = batch_runs(outcome)
    config = load_experiment("smoke")
    for model, run in runs.items():
        params, metrics = run.data.params, run.data.metrics
        assert params["features.representation"] == "logmel"
        assert params["train.epochs"] == "1" and params["effective.epochs"] == "1"
        assert params["input_shape"] == "(48, 64)"
        # Every hyperparameter the network was built with, defaults filled in, and nothing else.
        resolved = resolve_hyperparameters(config.architecture_of(model), config.model_settings(model).hyperparameters)
        assert set(resolved) == set(get_model_spec(config.architecture_of(model)).defaults)
        assert {key: value for key, value in params.items() if key.startswith("hp.")} == {
            f"hp.{key}": str(value) for key, value in resolved.items()}
        assert int(params["tracks.test"]) == 24 and int(params["tracks.skipped"]) == 0
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            history = client.get_metric_history(run.info.run_id, key)
            assert [point.step for point in history] == [0], key
        assert metrics["final_val_accuracy"] == history[-1].value  # the last epoch's val_accuracy
        # The headline scores, recomputed from the run's own per-clip predictions.
        predictions = pd.read_csv(client.download_artifacts(run.info.run_id, "predictions.csv"))
        assert len(predictions) == 24
        assert metrics["test_accuracy"] == pytest.approx(predictions["correct"].mean())
        genres = list(GTZAN_GENRES)
        assert metrics["test_macro_f1"] == pytest.approx(f1_score(
            predictions["true"], predictions["predicted"], labels=genres, average="macro", zero_division=0))
        per_class = f1_score(predictions["true"], predictions["predicted"], labels=genres, average=None,
                             zero_division=0)
        assert [metrics[f"test_f1_{genre}"] for genre in genres] == pytest.approx(list(per_class))
        assert metrics["test_inference_ms_per_clip"] > 0
        row = next(r for r in outcome.runs if r.model == model)
        assert metrics["parameters"] == row.parameters > 0


def test_artifacts_agree_with_the_metrics(smoke_batch):
    outcome, _ = smoke_batch
    client, runs = batch_runs(outcome)
    for run in runs.values():
        run_id = run.info.run_id
        assert EXPECTED_ARTIFACTS <= {item.path for item in client.list_artifacts(run_id)}
        confusion = json.loads(Path(client.download_artifacts(run_id, "confusion_matrix.json")).read_text())
        with open(client.download_artifacts(run_id, "predictions.csv")) as handle:
            predictions = list(csv.DictReader(handle))
        assert confusion["labels"] == list(GTZAN_GENRES)
        counts = np.array(confusion["counts"])
        assert counts.sum() == len(predictions) == 24
        assert np.trace(counts) == sum(int(row["correct"]) for row in predictions)
        assert run.data.metrics["test_accuracy"] == pytest.approx(np.trace(counts) / counts.sum())
        split = json.loads(Path(client.download_artifacts(run_id, "split.json")).read_text())
        assert split["membership_hash"] == run.data.tags["split_hash"]
        assert not set(split["members"]["train"]) & set(split["members"]["test"])
        assert sorted(row["track_id"] for row in predictions) == sorted(split["members"]["test"])


def test_logged_model_reloads_and_predicts_like_the_run(smoke_batch):
    from benchmark.data.prepare import prepare_data

    outcome, _ = smoke_batch
    client, runs = batch_runs(outcome)
    run = runs["cnn2d"]
    prepared = prepare_data(load_experiment("smoke"), progress=False)
    x_test = prepared.split().subset("test").x
    model = logged_network(run.data.tags["audio_model_uri"])
    probabilities = model.predict(x_test.astype(np.float32), verbose=0)
    with open(client.download_artifacts(run.info.run_id, "predictions.csv")) as handle:
        logged = np.array([[float(row[f"p_{g}"]) for g in GTZAN_GENRES] for row in csv.DictReader(handle)])
    np.testing.assert_allclose(probabilities, logged, atol=1e-4)


def test_same_seed_repeats_the_same_result(tmp_path):
    from benchmark.runner import run_experiment

    config = load_experiment("smoke", ["train.epochs=2"])
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first, second = (run_experiment(config, ["crnn"], tracking_uri=uri, progress=False).runs[0]
                     for _ in range(2))
    assert first.test_accuracy == second.test_accuracy
    client = client_for(uri)
    histories = [[p.value for p in client.get_metric_history(r.run_id, "val_loss")] for r in (first, second)]
    assert histories[0] == histories[1] and len(histories[0]) == 2


def test_undecodable_file_is_skipped_logged_and_counted(tmp_path, tone_tree):
    from benchmark.runner import run_experiment

    (tone_tree / "jazz" / "jazz.00054.wav").write_bytes(b"not audio")
    config = load_experiment(
        "smoke", ["split.valid_fraction=0.4", "features.frames=32"], data_dir=tone_tree
    )
    outcome = run_experiment(config, ["cnn2d"], progress=False)
    client, runs = batch_runs(outcome)
    run = runs["cnn2d"]
    assert run.data.params["tracks.skipped"] == "1"
    with open(client.download_artifacts(run.info.run_id, "skipped_files.csv")) as handle:
        skipped = list(csv.DictReader(handle))
    assert [row["relative_path"] for row in skipped] == ["jazz/jazz.00054.wav"]
    assert outcome.tracking_uri.startswith("sqlite:///") and (tmp_path / "mlruns" / "mlflow.db").exists()


def test_smoke_run_on_real_gtzan_excerpts(tmp_path, excerpts_dir):
    from benchmark.runner import run_experiment

    # 3 clips a genre: one each for train, validation and test.
    config = load_experiment("smoke", ["split.test_fraction=0.333", "split.valid_fraction=0.5"],
                             data_dir=excerpts_dir)
    outcome = run_experiment(config, ["fcnn", "cnn1d", "cnn2d", "crnn"], progress=False)
    _, runs = batch_runs(outcome)
    assert set(runs) == {"fcnn", "cnn1d", "cnn2d", "crnn"}
    assert all(run.info.status == "FINISHED" and run.data.params["tracks.test"] == "10"
               for run in runs.values())


@pytest.fixture
def mlflow_server(tmp_path):
    """A real ``mlflow server`` on 127.0.0.1 with its own SQLite store, stopped after the test."""
    store = tmp_path / "server"
    with running_mlflow_server(store, f"sqlite:///{store / 'mlflow.db'}") as url:
        yield url


@pytest.mark.server
def test_cli_smoke_run_against_a_real_tracking_server(tmp_path, mlflow_server):
    import mlflow

    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_server}
    result = subprocess.run(
        [sys.executable, "-m", "benchmark", "run", "--all", "--experiment", "smoke", "--no-progress"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for header in ("model", "test_accuracy", "macro_f1", "parameters", "train_seconds"):
        assert header in result.stdout
    assert f"results: {mlflow_server}/#/experiments/" in result.stdout
    assert not (tmp_path / "mlruns").exists()  # everything went to the server

    client = client_for(mlflow_server)
    experiment = client.get_experiment_by_name("smoke")
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.run_kind = 'train'")
    assert {run.data.tags["model"] for run in runs} == {"fcnn", "cnn1d", "cnn2d", "crnn"}
    assert len({run.data.tags["batch_id"] for run in runs}) == 1
    run = runs[0]
    assert EXPECTED_ARTIFACTS <= {item.path for item in client.list_artifacts(run.info.run_id)}
    mlflow.set_tracking_uri(mlflow_server)
    model = logged_network(run.data.tags["audio_model_uri"])
    assert model.predict(np.zeros((1, 48, 64), dtype=np.float32), verbose=0).shape == (1, 10)


def test_fcnn_learns_the_smoke_training_set_on_this_backend():
    # tox runs this file on TensorFlow and on JAX: a backend is a speed choice, never a results
    # choice. fcnn sat at chance under JAX on every seed of the default run (issue 23).
    from benchmark.data.prepare import prepare_models
    from benchmark.models import create_estimator

    config = load_experiment("smoke", ["train.epochs=20"])
    data = prepare_models(config, ["fcnn"], progress=False)["fcnn"].split(0)
    train, valid = data.subset("train"), data.subset("valid")
    classes = len(np.unique(train.y))
    estimator = create_estimator("fcnn", train.x.shape[1:], classes)
    estimator.fit(train.x, train.y, valid.x, valid.y, training=config.train, seed=0)
    accuracy = np.mean(estimator.predict_proba(train.x).argmax(axis=1) == train.y)
    assert accuracy >= 3 / classes, f"training accuracy {accuracy:.2f} on {current_backend()} (chance {1 / classes:.2f})"


def test_a_jax_network_trains_and_saves_without_importing_tensorflow(tmp_path):
    # Keras imports TensorFlow, whenever it is installed, to seed it and while saving: under
    # JAX that cost every unit's process seconds and two CUDA-probing log lines (issue 23).
    pytest.importorskip("jax", reason="the JAX backend is not installed in this environment")
    script = """
import sys
import numpy as np
from benchmark.config import TrainConfig
from benchmark.models import create_estimator
x, y = np.random.default_rng(0).random((16, 48, 40), dtype=np.float32), np.arange(16) % 4
estimator = create_estimator("fcnn", (48, 40), 4, units=8, n_layers=1)
estimator.fit(x, y, x, y, training=TrainConfig(epochs=1, batch_size=8), seed=0)
estimator.save(sys.argv[1])
print("tensorflow imported:", "tensorflow" in sys.modules)
"""
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True,
                            env={**os.environ, "KERAS_BACKEND": "jax"}, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "tensorflow imported: False" in result.stdout
    assert "cuda drivers" not in result.stderr
