"""The plain files each run leaves behind (tracking uploads them as the run's artifacts)."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmark.data.features import SkippedFile
from benchmark.data.tracks import Track
from benchmark.evaluate import Evaluation
from benchmark.genre_names import metric_names
from benchmark.plots import confusion_matrix_figure, save_figure, training_curves_figure

#: Per validation clip, the columns of ``predictions.csv``.
VALIDATION_PREDICTIONS = "validation_predictions.csv"

if TYPE_CHECKING:
    from benchmark.config import ExperimentConfig
    from benchmark.unit import RunResult


def write_run_artifacts(folder: Path, result: RunResult, config: ExperimentConfig) -> None:
    """Write every per-run file of a scored run into ``folder``.

    ``preprocessing.json`` is the audio model's (with the normalisation statistics fitted on
    this run's training split); ``data_manifest.csv`` the data folder's ``data verify``
    manifest, where there is a current one.
    """
    prepared, unit, evaluation = result.prepared, result.unit, result.evaluation
    in_fold = "" if result.data.fold is None else f" fold {result.data.fold}"
    title = f"{unit.model} (seed {unit.seed}{in_fold}) on {config.name}"
    class_names, history = prepared.class_names, result.fit.history
    folder.mkdir(parents=True, exist_ok=True)
    save_figure(confusion_matrix_figure(evaluation.confusion, class_names, title), folder / "confusion_matrix.png")
    _write_json(
        folder / "confusion_matrix.json",
        {"labels": list(class_names), "rows": "true", "columns": "predicted",
         "counts": evaluation.confusion.tolist()},
    )
    save_figure(training_curves_figure(history, title), folder / "training_curves.png")
    _write_json(folder / "history.json", {key: list(values) for key, values in history.items()})
    test_tracks = [prepared.features.tracks[index] for index in evaluation.clips]
    write_predictions(folder / "predictions.csv", test_tracks, evaluation.truth, evaluation, class_names)
    if result.validation is not None:  # what an ensemble is chosen on (benchmark.ensemble)
        validation = result.validation
        valid_tracks = [prepared.features.tracks[index] for index in validation.clips]
        write_predictions(folder / VALIDATION_PREDICTIONS, valid_tracks, validation.truth, validation, class_names)
    write_label_encoder(folder, prepared.encoder)
    write_skipped(folder / "skipped_files.csv", prepared.features.skipped)
    _write_json(folder / "split.json", prepared.split_summary(result.data))
    _write_json(folder / "config.json", config.model_dump(mode="json"))
    _write_json(folder / "preprocessing.json", result.preprocessing)
    if prepared.manifest is not None:
        prepared.manifest.to_csv(folder / "data_manifest.csv", index=False)


def write_predictions(
    path: Path,
    tracks: Sequence[Track],
    y_true: np.ndarray,
    evaluation: Evaluation,
    class_names: Sequence[str],
) -> None:
    """One row per clip (test, or validation): its id, path, true and predicted genre and every probability."""
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
    """The fitted scikit-learn LabelEncoder (joblib) and its classes in readable JSON.

    ``labels.json`` keeps each genre's original name (its folder's) and, under
    ``metric_names``, the name its per-genre metrics use (``r&b`` -> ``r_b``).
    """
    import joblib

    joblib.dump(encoder, folder / "label_encoder.joblib")
    classes = [str(name) for name in encoder.classes_]
    _write_json(folder / "labels.json", {"classes": classes, "metric_names": metric_names(classes)})


def write_skipped(path: Path, skipped: Sequence[SkippedFile]) -> None:
    """The files left out because they could not be decoded (header only when none were)."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["relative_path", "reason"])
        writer.writerows((item.relative_path, item.reason) for item in skipped)


def _write_json(path: Path, payload: Any) -> None:
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
