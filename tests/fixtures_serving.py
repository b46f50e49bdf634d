"""Helpers for the serving tests: planted runs with real audio models, and a trained batch.

Planted runs are real MLflow runs carrying real (untrained, small) audio models and the metrics
a test chooses: what ``promote`` and ``predict`` read, without training anything.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.config import load_experiment
from benchmark.data.gtzan import GTZAN_GENRES

PLANTED_EXPERIMENT = "planted"
PLANTED_NETWORK = "cnn2d"


def smoke_params():
    """The smoke experiment's feature parameters (log-mel 48 x 64): small and fast."""
    from benchmark.data.features import FeatureParams

    return FeatureParams.from_config(load_experiment("smoke"))


def store_uri(folder: Path) -> str:
    return f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}"


def plant_run(uri: str, *, batch_id: str, metrics: dict, seed: int = 0) -> str:
    """A finished training run of ``PLANTED_EXPERIMENT`` with an audio model; returns its id."""
    import keras
    import mlflow

    from benchmark import tracking
    from benchmark.models import create_estimator
    from benchmark.data.preprocessing import preprocessing_config

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
    from benchmark.runner import run_experiment

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GENRE_BENCHMARK_CACHE", str(cache))
        patch.chdir(folder)
        outcome = run_experiment(load_experiment("smoke"), ["cnn2d", "crnn"],
                                 tracking_uri=store_uri(folder), progress=False)
    return outcome, folder


def run_cli(*args, cwd, env=None, timeout=300):
    """``python -m benchmark ARGS`` in a subprocess, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "benchmark", *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=timeout, check=False)
