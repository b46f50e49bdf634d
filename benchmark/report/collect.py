"""Reading one batch of training runs back from MLflow: runs, curves, confusions, predictions.

Everything the report shows comes from here, so it works for any batch on any machine that can
reach the tracking store. Runs are read with :func:`mlflow.search_runs` into a pandas frame
whose columns keep MLflow's names (``metrics.test_accuracy``, ``tags.seed``, ...).
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark import tracking
from benchmark.batch import SUPERSEDED_TAG
from benchmark.errors import BenchmarkError
from benchmark.liveness import reap_dead_runs
from benchmark.redaction import redact

log = logging.getLogger(__name__)

#: Per-epoch metrics drawn as training curves.
CURVE_METRICS = ("accuracy", "val_accuracy", "loss", "val_loss")
#: Run-level metrics the report reads; a run that lacks one shows it as missing.
RUN_METRICS = (
    "test_accuracy", "test_macro_f1", "final_val_accuracy", "parameters", "train_seconds",
    "test_inference_ms_per_clip", "epochs_run", "test_segment_accuracy",
)


@dataclass
class Batch:
    """The training runs of one batch and the artifacts the report needs from them."""

    experiment_name: str
    experiment_id: str
    batch_id: str
    tracking_uri: str
    #: One row per run: MLflow's columns plus ``model``, ``seed``, ``fold`` (``""`` unless k-fold).
    runs: pd.DataFrame
    #: Long format: ``run_id, model, seed, metric, epoch, value`` (epoch counts from 1).
    histories: pd.DataFrame
    #: Run id -> confusion counts (rows true genre, columns predicted), for runs that logged one.
    confusions: dict[str, pd.DataFrame] = field(default_factory=dict)
    #: Run id -> per-clip ``correct`` (0/1) indexed by ``track_id``, for runs that logged them.
    predictions: dict[str, pd.DataFrame] = field(default_factory=dict)

    @property
    def models(self) -> list[str]:
        """Model names in the order the batch ran them."""
        return list(dict.fromkeys(self.runs["model"]))


def load_batch(experiment: str | None = None, batch: str | None = None,
               tracking_uri: str | None = None) -> Batch:
    """Read batch ``batch`` of MLflow experiment ``experiment`` (see :func:`tracking.find_batch`).

    Raises :class:`BenchmarkError` for an unknown store, experiment or batch, and for a batch
    with no finished run.
    """
    import mlflow
    from mlflow import MlflowClient

    uri = tracking.resolve_tracking_uri(tracking_uri)
    tracking.open_existing_store(uri)
    client = MlflowClient(tracking_uri=uri)
    found = tracking.find_batch(experiment, batch)
    experiment, batch_id = found.experiment_name, found.batch_id
    # A run whose process died is still RUNNING in MLflow: mark it KILLED before reading.
    reap_dead_runs(client, [found.experiment_id], tracking.batch_runs_filter(batch_id))
    chosen = mlflow.search_runs([found.experiment_id], filter_string=tracking.batch_runs_filter(batch_id),
                                order_by=["attributes.start_time DESC"])
    if f"tags.{SUPERSEDED_TAG}" in chosen:  # earlier attempts of units that a resume ran again
        chosen = chosen[chosen[f"tags.{SUPERSEDED_TAG}"].isna()].reset_index(drop=True)
    _require_finished(chosen, batch_id, experiment)
    chosen = _with_identity_columns(chosen)
    log.info("batch %s of %r: %d runs of %d models", batch_id, experiment, len(chosen),
             chosen["model"].nunique())
    confusions, predictions = _run_artifacts(client, chosen["run_id"])
    return Batch(
        experiment_name=experiment,
        experiment_id=found.experiment_id,
        batch_id=batch_id,
        tracking_uri=redact(uri),  # only ever shown (the report's text and links): never its password
        runs=chosen,
        histories=_histories(client, chosen),
        confusions=confusions,
        predictions=predictions,
    )


def _require_finished(runs: pd.DataFrame, batch_id: str, experiment: str) -> None:
    if (runs["status"] == "FINISHED").any():
        return
    statuses = ", ".join(f"{count} {status}" for status, count in runs["status"].value_counts().items())
    raise BenchmarkError(
        f"batch {batch_id} of experiment {experiment!r} has no finished runs ({statuses}); "
        "wait for it to finish or pass --batch ID"
    )


def _with_identity_columns(runs: pd.DataFrame) -> pd.DataFrame:
    """Add ``model``, ``seed``, ``fold`` and any missing metric column; order by model, seed."""
    runs = runs.copy()
    defaults = {f"metrics.{name}": np.nan for name in RUN_METRICS} | {
        "tags.seed": None, "tags.fold": "", "tags.split_hash": "", "tags.data_fingerprint": "",
        # Runs logged before models had kinds and inputs of their own were all networks.
        "tags.model_kind": "network", "tags.representation": ""}
    for column, missing in defaults.items():
        if column not in runs:
            runs[column] = missing
    runs["model"] = runs["tags.model"]
    runs["kind"] = runs["tags.model_kind"].fillna("network")
    runs["input"] = runs["tags.representation"].fillna("")
    runs["seed"] = pd.to_numeric(runs["tags.seed"], errors="coerce").astype("Int64")
    runs["fold"] = runs["tags.fold"].fillna("")
    runs["tags.split_hash"] = runs["tags.split_hash"].fillna("")
    # Models in the order the batch ran them (the experiment's order), then seed and fold.
    first_start = runs.groupby("model")["start_time"].transform("min")
    fold_number = pd.to_numeric(runs["fold"], errors="coerce")  # fold 10 after fold 9, not after 1
    runs = runs.assign(_first=first_start, _fold=fold_number).sort_values(["_first", "model", "seed", "_fold"])
    return runs.drop(columns=["_first", "_fold"]).reset_index(drop=True)


def _histories(client, runs: pd.DataFrame) -> pd.DataFrame:
    records = [
        {"run_id": run.run_id, "model": run.model, "seed": run.seed, "metric": metric,
         "epoch": point.step + 1, "value": point.value}
        for run in runs[["run_id", "model", "seed"]].itertuples(index=False)
        for metric in CURVE_METRICS
        for point in client.get_metric_history(run.run_id, metric)
    ]
    return pd.DataFrame(records, columns=["run_id", "model", "seed", "metric", "epoch", "value"])


def _run_artifacts(client, run_ids) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    """Confusion counts and per-clip correctness of each run that logged them."""
    from mlflow.environment_variables import MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR

    MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.set(False)  # one bar per small file is only noise
    confusions, predictions = {}, {}
    with tempfile.TemporaryDirectory(prefix="benchmark-report-") as folder:
        for run_id in run_ids:
            if path := _download(client, run_id, "confusion_matrix.json", Path(folder) / run_id):
                confusions[run_id] = read_confusion(path)
            if path := _download(client, run_id, "predictions.csv", Path(folder) / run_id):
                predictions[run_id] = pd.read_csv(
                    path, usecols=["track_id", "correct"], dtype={"track_id": str}
                ).set_index("track_id")
    return confusions, predictions


def _download(client, run_id: str, artifact: str, folder: Path) -> Path | None:
    from mlflow.exceptions import MlflowException

    folder.mkdir(parents=True, exist_ok=True)
    try:
        return Path(client.download_artifacts(run_id, artifact, str(folder)))
    except (MlflowException, OSError):
        # A failed or interrupted run may not have logged it; the report shows it as missing.
        log.info("run %s has no %s", run_id, artifact)
        return None


def read_confusion(path: Path) -> pd.DataFrame:
    """A ``confusion_matrix.json`` as a labelled frame: rows true genre, columns predicted."""
    payload = json.loads(Path(path).read_text())
    labels = payload["labels"]
    return pd.DataFrame(
        payload["counts"],
        index=pd.Index(labels, name="true"),
        columns=pd.Index(labels, name="predicted"),
    )
