"""The plain files each run leaves behind (tracking uploads them as the run's artifacts)."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.data.features import SkippedFile
from benchmark.data.tracks import Track
from benchmark.evaluate import Evaluation
from benchmark.plots import confusion_matrix_figure, save_figure, training_curves_figure


def write_run_artifacts(
    folder: Path,
    *,
    title: str,
    class_names: Sequence[str],
    evaluation: Evaluation,
    history: Mapping[str, Sequence[float]],
    test_tracks: Sequence[Track],
    y_test: np.ndarray,
    encoder: Any,
    skipped: Sequence[SkippedFile],
    split_summary: Mapping[str, Any],
    config: Mapping[str, Any],
    preprocessing: Mapping[str, Any],
    manifest: Any = None,
) -> None:
    """Write every per-run file into ``folder``.

    ``preprocessing`` is the audio model's ``preprocessing.json`` (with the normalisation
    statistics fitted on this run's training split); ``manifest`` the data folder's ``data
    verify`` manifest (a DataFrame), logged as ``data_manifest.csv`` where there is one.
    """
    folder.mkdir(parents=True, exist_ok=True)
    save_figure(confusion_matrix_figure(evaluation.confusion, class_names, title), folder / "confusion_matrix.png")
    _write_json(
        folder / "confusion_matrix.json",
        {"labels": list(class_names), "rows": "true", "columns": "predicted",
         "counts": evaluation.confusion.tolist()},
    )
    save_figure(training_curves_figure(history, title), folder / "training_curves.png")
    _write_json(folder / "history.json", {key: list(values) for key, values in history.items()})
    write_predictions(folder / "predictions.csv", test_tracks, y_test, evaluation, class_names)
    write_label_encoder(folder, encoder)
    write_skipped(folder / "skipped_files.csv", skipped)
    _write_json(folder / "split.json", split_summary)
    _write_json(folder / "config.json", config)
    _write_json(folder / "preprocessing.json", preprocessing)
    if manifest is not None:
        manifest.to_csv(folder / "data_manifest.csv", index=False)


def write_predictions(
    path: Path,
    tracks: Sequence[Track],
    y_true: np.ndarray,
    evaluation: Evaluation,
    class_names: Sequence[str],
) -> None:
    """One row per test clip: its id, path, true and predicted genre and every probability."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["track_id", "relative_path", "true", "predicted", "correct",
             *(f"p_{name}" for name in class_names)]
        )
        for track, truth, guess, probabilities in zip(
            tracks, y_true, evaluation.predicted, evaluation.probabilities, strict=True
        ):
            writer.writerow(
                [track.track_id, track.relative_path, class_names[truth], class_names[guess],
                 int(truth == guess), *(f"{p:.6f}" for p in probabilities)]
            )


def write_label_encoder(folder: Path, encoder: Any) -> None:
    """The fitted scikit-learn LabelEncoder (joblib) and its classes in readable JSON."""
    import joblib

    joblib.dump(encoder, folder / "label_encoder.joblib")
    _write_json(folder / "labels.json", {"classes": [str(name) for name in encoder.classes_]})


def write_skipped(path: Path, skipped: Sequence[SkippedFile]) -> None:
    """The files left out because they could not be decoded (header only when none were)."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["relative_path", "reason"])
        writer.writerows((item.relative_path, item.reason) for item in skipped)


def _write_json(path: Path, payload: Any) -> None:
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
