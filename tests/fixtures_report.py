"""Planting training runs straight into an MLflow store, shaped like the runner's, in milliseconds.

Each planted run gets the runner's tags, run-level metrics, per-epoch histories, and the two
artifacts the report reads (``confusion_matrix.json``, ``predictions.csv``), all derived from
one planted set of per-clip predictions, so every number the report shows has a known source.
"""

from __future__ import annotations

import json
import time
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix

from benchmark.evaluate import classification_metrics

GENRES = ("blues", "jazz", "rock")
CLIPS_PER_GENRE = 10
EPOCHS = 4
HISTORY_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")


def planted_clips() -> pd.DataFrame:
    """The planted test split: ``track_id`` and integer ``label``."""
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
        points = [Metric(key, float(rng.uniform(0.1, 2.0)), self._clock, step)
                  for step in range(EPOCHS) for key in HISTORY_METRICS]
        if test_metrics:
            metrics = {f"test_{key}": value
                       for key, value in classification_metrics(clips["label"], predicted, GENRES).items()}
            metrics |= {"test_inference_ms_per_clip": float(rng.uniform(0.5, 2)), "parameters": parameters,
                        "train_seconds": float(rng.uniform(5, 50)), "epochs_run": EPOCHS,
                        "final_val_accuracy": float(rng.uniform(0.3, 0.9))}
            points += [Metric(key, float(value), self._clock, 0) for key, value in metrics.items()]
        self.client.log_batch(run_id, metrics=points)
        if artifacts:
            self._log_artifacts(run_id, clips, predicted)
        self.client.set_terminated(run_id, status=status, end_time=self._clock + 500)
        return run_id

    def _log_artifacts(self, run_id: str, clips: pd.DataFrame, predicted: np.ndarray) -> None:
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
