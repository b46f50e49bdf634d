"""Helpers shared by the test modules: one module, so test modules never import each other.

Kept light at import (NumPy and pytest only; everything else inside the functions): the model
tests also run under JAX and PyTorch in environments that hold only Keras and the backend.

- paths and audio: the shared real data, short test tones;
- servers: a free port on 127.0.0.1, waiting for an HTTP server;
- the command line: a subprocess as a user runs it, and the one-line error check;
- MLflow: the runs of a batch; planted report runs; planted audio models; a trained smoke batch.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"
EXCERPTS = SHARED_DATA / "gtzan-excerpts"


# --- audio -------------------------------------------------------------------------------------

def write_clip(path: Path, *, seconds: float = 1.0, sample_rate: int = 22050, frequency: float = 440.0,
               channels: int = 1, fmt: str | None = None, subtype: str = "PCM_16") -> Path:
    """Write a short tone (with a little noise) as an audio file with soundfile."""
    import soundfile

    rng = np.random.default_rng(int(frequency))
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    tone = 0.5 * np.sin(2 * np.pi * frequency * t) + 0.01 * rng.standard_normal(t.size)
    data = np.stack([tone] * channels, axis=1) if channels > 1 else tone
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, data.astype(np.float32), sample_rate, format=fmt, subtype=subtype)
    return path


def running_backend() -> str:
    return os.environ.get("KERAS_BACKEND", "tensorflow")



# --- servers -----------------------------------------------------------------------------------

def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_http(url: str, process: subprocess.Popen, *, what: str, output: Callable[[], str],
                  seconds: float = 180) -> None:
    """Wait until ``url`` answers 200, failing the test (with the server's output) if the
    server exits or the deadline passes."""
    import requests

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{what} exited: {output()[-3000:]}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    pytest.fail(f"{what} did not answer {url} in {seconds:.0f} s: {output()[-3000:]}")


# --- the command line --------------------------------------------------------------------------

def run_cli(*args, cwd=None, env=None, timeout=300):
    """``python -m benchmark ARGS`` in a subprocess, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "benchmark", *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=timeout, check=False)


def assert_user_error(result, fragment):
    """Exit status 2, and the last line of stderr is one ``error:`` line naming ``fragment``."""
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and fragment in lines[-1], result.stderr
    assert "Traceback" not in result.stderr


# --- MLflow: reading a batch back ----------------------------------------------------------------

def client_for(uri):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def batch_runs(outcome):
    """The client of a batch's store, and its runs by model name."""
    client = client_for(outcome.tracking_uri)
    runs = client.search_runs([outcome.experiment_id],  # training runs: not the batch's claims run
                              filter_string=f"tags.batch_id = '{outcome.batch_id}' and tags.run_kind = 'train'")
    return client, {run.data.tags["model"]: run for run in runs}


# --- MLflow: planted report runs -----------------------------------------------------------------
# Planting training runs straight into an MLflow store, shaped like the runner's, in milliseconds.
# Each planted run gets the runner's tags, run-level metrics, per-epoch histories, and the two
# artifacts the report reads (``confusion_matrix.json``, ``predictions.csv``), all derived from
# one planted set of per-clip predictions, so every number the report shows has a known source.

GENRES = ("blues", "jazz", "rock")
CLIPS_PER_GENRE = 10
EPOCHS = 4
HISTORY_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")


def planted_clips():
    """The planted test split: ``track_id`` and integer ``label``."""
    import pandas as pd

    return pd.DataFrame({
        "track_id": [f"{genre}/{genre}.{i:05d}.wav" for genre in GENRES for i in range(CLIPS_PER_GENRE)],
        "label": np.repeat(np.arange(len(GENRES)), CLIPS_PER_GENRE),
    })


class Planter:
    """Plants runs into one experiment of a local store; run start times increase one second a run."""

    def __init__(self, folder: Path, experiment: str = "planted"):
        from mlflow import MlflowClient

        self.folder = folder
        self.uri = f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}"
        (folder / "mlruns").mkdir(parents=True, exist_ok=True)
        self.client = MlflowClient(tracking_uri=self.uri)
        self.experiment = experiment
        self.experiment_id = self.client.create_experiment(
            experiment, artifact_location=(folder / "mlruns" / "artifacts").as_uri()
        )
        self._clock = int(time.time() * 1000) - 10_000_000

    def run(self, batch_id: str, model: str, seed: int, *, accuracy: float = 0.7, split_hash: str = "split-a",
            status: str = "FINISHED", test_metrics: bool = True, artifacts: bool = True,
            parameters: int = 1000, fold: int | None = None) -> str:
        """Plant one run with test accuracy ``accuracy`` (to the nearest clip); returns its id.

        A wrong clip is always predicted as the next genre (blues -> jazz -> rock -> blues), so
        the most confused pairs are known. ``test_metrics=False`` and ``artifacts=False`` plant
        a run that died before testing; ``fold`` tags a run of a k-fold batch.
        """
        from mlflow.entities import Metric

        from benchmark.evaluate import classification_metrics

        self._clock += 1000
        rng = np.random.default_rng(zlib.crc32(f"{model}-{seed}-{split_hash}-{fold}".encode()))
        clips = planted_clips()
        # Exactly round(accuracy * clips) right, at random positions: accuracy is planted, not drawn.
        right = rng.permutation(len(clips)) < round(accuracy * len(clips))
        predicted = np.where(right, clips["label"], (clips["label"] + 1) % len(GENRES))
        run = self.client.create_run(
            self.experiment_id, start_time=self._clock, run_name=f"{model}-seed{seed}",
            tags={"run_kind": "train", "model": model, "seed": str(seed), "batch_id": batch_id, "experiment": self.experiment,
                  "split_hash": split_hash, "data_fingerprint": "fingerprint-1",
                  "keras_backend": "tensorflow", "git_commit": "abc123", "version.keras": "3.0.0"}
            | ({"fold": str(fold)} if fold is not None else {}),
        )
        run_id = run.info.run_id
        # Per-epoch curves: accuracies in (0.1, 0.95), losses in (0.1, 2).
        history = {key: rng.uniform(0.1, 0.95 if key.endswith("accuracy") else 2.0, EPOCHS)
                   for key in HISTORY_METRICS}
        points = [Metric(key, float(history[key][step]), self._clock, step)
                  for step in range(EPOCHS) for key in HISTORY_METRICS]
        if test_metrics:
            metrics = {f"test_{key}": value
                       for key, value in classification_metrics(clips["label"], predicted, GENRES).items()}
            # As the runner logs it: final_val_accuracy is the last epoch's val_accuracy.
            metrics |= {"test_inference_ms_per_clip": float(rng.uniform(0.5, 2)), "parameters": parameters,
                        "train_seconds": float(rng.uniform(5, 50)), "epochs_run": EPOCHS,
                        "final_val_accuracy": float(history["val_accuracy"][-1])}
            points += [Metric(key, float(value), self._clock, 0) for key, value in metrics.items()]
        self.client.log_batch(run_id, metrics=points)
        if artifacts:
            self._log_artifacts(run_id, clips, predicted)
        self.client.set_terminated(run_id, status=status, end_time=self._clock + 500)
        return run_id

    def _log_artifacts(self, run_id: str, clips, predicted: np.ndarray) -> None:
        import pandas as pd
        from sklearn.metrics import confusion_matrix

        folder = self.folder / "planted-artifacts" / run_id
        folder.mkdir(parents=True)
        counts = confusion_matrix(clips["label"], predicted, labels=range(len(GENRES)))
        (folder / "confusion_matrix.json").write_text(json.dumps(
            {"labels": list(GENRES), "rows": "true", "columns": "predicted", "counts": counts.tolist()}
        ))
        names = np.array(GENRES)
        pd.DataFrame({
            "track_id": clips["track_id"], "relative_path": clips["track_id"],
            "true": names[clips["label"]], "predicted": names[predicted],
            "correct": (clips["label"].to_numpy() == predicted).astype(int),
        }).to_csv(folder / "predictions.csv", index=False)
        for path in folder.iterdir():
            self.client.log_artifact(run_id, str(path))


# --- MLflow: planted audio models and a trained batch ----------------------------------------------
# Planted runs are real MLflow runs carrying real (untrained, small) audio models and the metrics
# a test chooses: what ``promote`` and ``predict`` read, without training anything.

PLANTED_EXPERIMENT = "planted"
PLANTED_NETWORK = "cnn2d"


def smoke_params():
    """The smoke experiment's feature parameters (log-mel 48 x 64): small and fast."""
    from benchmark.config import load_experiment
    from benchmark.data.features import FeatureParams

    return FeatureParams.from_config(load_experiment("smoke"))


def store_uri(folder: Path) -> str:
    return f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}"


def plant_run(uri: str, *, batch_id: str, metrics: dict, seed: int = 0) -> str:
    """A finished training run of ``PLANTED_EXPERIMENT`` with an audio model; returns its id."""
    import keras
    import mlflow

    from benchmark import tracking
    from benchmark.data.gtzan import GTZAN_GENRES
    from benchmark.data.preprocessing import preprocessing_config
    from benchmark.models import create_estimator

    tracking.connect(uri)
    experiment_id = tracking.ensure_experiment(PLANTED_EXPERIMENT, uri)
    keras.utils.set_random_seed(seed)  # distinct, repeatable weights per planted run
    network = create_estimator(PLANTED_NETWORK, smoke_params().shape, len(GTZAN_GENRES))
    tags = {"run_kind": "train", "model": PLANTED_NETWORK, "seed": str(seed), "batch_id": batch_id,
            "experiment": PLANTED_EXPERIMENT}
    with tracking.tracked_run(experiment_id, f"{PLANTED_NETWORK}-seed{seed}", tags) as run_id:
        mlflow.log_metrics(metrics)
        tracking.log_audio_model(network, preprocessing_config(smoke_params()), list(GTZAN_GENRES))
    return run_id


def plant_champion(folder: Path) -> dict:
    """A store in ``folder`` whose ``genre-classifier@champion`` is a planted run's audio model."""
    from benchmark.serving.promote import promote

    uri = store_uri(folder)
    run_id = plant_run(uri, batch_id="b1", metrics={"test_accuracy": 0.5})
    promote(PLANTED_EXPERIMENT, tracking_uri=uri)
    return {"folder": folder, "uri": uri, "run_id": run_id}


def train_smoke_batch(folder: Path, cache: Path) -> tuple[dict, Path]:
    """Two networks of the smoke experiment trained and logged, as `run` does, into ``folder``."""
    from benchmark.config import load_experiment
    from benchmark.runner import run_experiment

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GENRE_BENCHMARK_CACHE", str(cache))
        patch.chdir(folder)
        outcome = run_experiment(load_experiment("smoke"), ["cnn2d", "crnn"],
                                 tracking_uri=store_uri(folder), progress=False)
    return outcome, folder


@contextlib.contextmanager
def running_mlflow_server(folder: Path, backend_store_uri: str):
    """A real ``mlflow server`` on 127.0.0.1 over ``backend_store_uri`` (artifacts in ``folder``);
    yields its URL and stops it after."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = folder / "server.log"  # a file, not a pipe: a full pipe would stall the server
    with log.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
             "--backend-store-uri", backend_store_uri, "--artifacts-destination", str(folder / "artifacts"),
             "--workers", "1"],
            stdout=subprocess.DEVNULL, stderr=sink, cwd=folder, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/health", process, what="mlflow server", output=log.read_text)
        yield url
    finally:
        stop_server(process)


# --- serving -------------------------------------------------------------------------------------

@contextlib.contextmanager
def served_model(model_uri: str, tracking_uri: str, folder: Path):
    """A real ``mlflow models serve`` of ``model_uri`` on 127.0.0.1; yields its base URL.

    ``--env-manager local`` runs uvicorn from PATH: this interpreter's environment comes first.
    The server runs uvicorn in a child process, so the whole process group is stopped after.
    """
    url = f"http://127.0.0.1:{free_port()}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    log = Path(folder) / "serve.log"
    with log.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri, "--env-manager", "local",
             "-h", "127.0.0.1", "-p", url.rsplit(":", 1)[1]],
            cwd=folder, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        wait_for_http(f"{url}/ping", process, what="mlflow models serve", output=log.read_text)
        yield url
    finally:
        stop_server(process)


def stop_server(process: subprocess.Popen) -> None:
    """SIGTERM the process group a server was started in; SIGKILL it if it does not go."""
    from benchmark.cli.server import stop_process_group

    stop_process_group(process, grace_seconds=30)


def logged_network(audio_model_uri: str):
    """The Keras network a run logged, from inside its audio model (the one copy a run stores)."""
    import mlflow.pyfunc

    return mlflow.pyfunc.load_model(audio_model_uri).unwrap_python_model().estimator.native


def sigint_as_in_a_terminal() -> None:
    """``preexec_fn`` for a child that tests send Ctrl-C: SIGINT at its default, as a terminal's
    shell starts commands. A test run itself started in the background (``cmd &`` in a script,
    nohup) inherits SIGINT ignored, and Python keeps ignoring it in every child."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextlib.contextmanager
def sigint_raises_keyboard_interrupt():
    """SIGINT raises KeyboardInterrupt in this process for the block, however the test run began
    (see :func:`sigint_as_in_a_terminal`)."""
    import signal

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def start_run(folder: Path, *args: str):
    """``python -m benchmark run ARGS`` in the background, its output to a file; (process, that file)."""
    log = folder / f"run-{time.monotonic_ns()}.log"
    with log.open("w") as sink:
        process = subprocess.Popen([sys.executable, "-m", "benchmark", "run", *args], cwd=folder,
                                   stdout=sink, stderr=subprocess.STDOUT, text=True,
                                   preexec_fn=sigint_as_in_a_terminal)
    return process, log


def wait_for_line(process, log: Path, fragment: str, seconds: float = 300) -> None:
    """Poll ``log`` until it holds ``fragment``; fail if the process ends or the deadline passes first."""
    deadline = time.monotonic() + seconds
    while fragment not in log.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"no {fragment!r} in the output:\n{log.read_text()[-3000:]}")
        time.sleep(0.05)


#: A tiny network and its inputs, for tests that fit a real Keras network in a second.
TINY_SHAPE, TINY_CLASSES = (8, 8), 3


def tiny_data(seed: int = 0, *, train: int = 48, valid: int = 24, dtype: str = "float32"):
    """Random inputs of :data:`TINY_SHAPE` with random labels: ``(x_train, y_train, x_valid, y_valid)``.

    A network can only memorise such a training split, so validation never really improves
    and validation loss worsens as it memorises.
    """
    rng = np.random.default_rng(seed)
    x_train = rng.standard_normal((train, *TINY_SHAPE)).astype(dtype)
    y_train = rng.integers(0, TINY_CLASSES, train)
    x_valid = rng.standard_normal((valid, *TINY_SHAPE)).astype(dtype)
    y_valid = rng.integers(0, TINY_CLASSES, valid)
    return x_train, y_train, x_valid, y_valid


def tiny_network():
    """A fresh one-layer ``fcnn`` of 32 units for :func:`tiny_data`'s inputs."""
    from benchmark.models import create_estimator

    return create_estimator("fcnn", TINY_SHAPE, TINY_CLASSES, units=32, n_layers=1)
