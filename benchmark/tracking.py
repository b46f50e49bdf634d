"""Everything MLflow-specific for runs: where they go, what identifies them, how they are logged.

The rest of the harness returns plain values (:class:`benchmark.unit.RunResult`) and writes
plain files (:mod:`benchmark.artifacts`); this module turns them into MLflow experiments, runs,
params, metrics, dataset inputs, artifacts and logged models, and finds them again: what a
training run is, and which batch is the latest, are defined here once. Layering is one way:
:mod:`benchmark.serving` and :mod:`benchmark.report` use this module, and it imports neither.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from benchmark.errors import BenchmarkError
from benchmark.paths import mlruns_dir, slug
from benchmark.provenance import pinned_requirements

if TYPE_CHECKING:
    from benchmark.config import ExperimentConfig
    from benchmark.unit import RunResult

log = logging.getLogger(__name__)

DATABASE_NAME = "mlflow.db"
#: ``run_kind`` tag of the runs `run` makes; tuning trials, studies and reports carry others.
TRAINING_RUN = "train"
#: MLflow search filter for training runs, which reports and promotion read.
TRAINING_RUNS_FILTER = f"tags.run_kind = '{TRAINING_RUN}'"
#: The form of a ``batch_id`` (``new_batch_id``), checked before it goes into a search filter.
_BATCH_ID = re.compile(r"[\w.-]+")


def default_tracking_uri() -> str:
    """A SQLite store in ``mlruns/`` under the working directory (artifacts beside it)."""
    return f"sqlite:///{mlruns_dir() / DATABASE_NAME}"


def resolve_tracking_uri(explicit: str | None = None) -> str:
    """``--tracking-uri``, else ``$MLFLOW_TRACKING_URI``, else the local SQLite store."""
    return explicit or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()


def connect(uri: str) -> None:
    """Point MLflow at ``uri``, failing fast with one clear line where it cannot be used.

    MLflow's own client retries an unreachable server for minutes before giving up; a short
    health check first turns that into an immediate, readable error.
    """
    import mlflow

    scheme = urlparse(uri).scheme
    if scheme in ("http", "https"):
        _check_server(uri)
    elif scheme == "sqlite":
        database = Path(uri.removeprefix("sqlite:///"))
        try:
            database.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise BenchmarkError(f"cannot create the tracking store {database.parent}: {error}") from None
    mlflow.set_tracking_uri(uri)


def open_existing_store(tracking_uri: str | None) -> str:
    """Connect to a store that must already exist; returns its URI.

    Commands that only read (report, promote, predict) must not leave an empty ``mlruns/``
    behind in whatever folder they ran in.
    """
    uri = resolve_tracking_uri(tracking_uri)
    if urlparse(uri).scheme == "sqlite" and not Path(uri.removeprefix("sqlite:///")).is_file():
        raise BenchmarkError(
            f"no tracking store at {uri}: run `python -m benchmark run` here first, or pass "
            "--tracking-uri (or set MLFLOW_TRACKING_URI)"
        )
    connect(uri)
    return uri


def _check_server(uri: str) -> None:
    import requests

    try:
        response = requests.get(uri.rstrip("/") + "/health", timeout=5)
    except requests.RequestException as error:
        raise BenchmarkError(
            f"cannot reach the MLflow tracking server at {uri} ({type(error).__name__}); "
            "start it or pass another --tracking-uri"
        ) from None
    if response.status_code != 200:
        raise BenchmarkError(
            f"{uri} answered {response.status_code} to /health: is it an MLflow tracking server?"
        )


def ensure_experiment(name: str, uri: str) -> str:
    """The id of MLflow experiment ``name``, created on first use.

    With a local SQLite store its artifacts go to ``<store folder>/artifacts/<name>``: left
    unset, MLflow would put them in ``./mlruns`` of whatever the working directory happens to be.
    """
    import mlflow

    try:
        experiment = mlflow.get_experiment_by_name(name)
        if experiment is not None:
            if experiment.lifecycle_stage == "deleted":
                raise BenchmarkError(
                    f"MLflow experiment {name!r} is deleted; restore it or rename the experiment"
                )
            return experiment.experiment_id
        return mlflow.create_experiment(name, artifact_location=_artifact_location(name, uri))
    except mlflow.exceptions.MlflowException as error:
        raise BenchmarkError(f"tracking store {uri}: {error.message.splitlines()[0]}") from None


def _artifact_location(name: str, uri: str) -> str | None:
    if urlparse(uri).scheme != "sqlite":
        return None  # A server or other store decides where artifacts live.
    store = Path(uri.removeprefix("sqlite:///")).resolve().parent
    return (store / "artifacts" / slug(name)).as_uri()


def new_batch_id() -> str:
    """An id shared by every run of one invocation: sortable by time, unique by suffix."""
    return f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"


@contextmanager
def tracked_run(
    experiment_id: str, run_name: str, tags: Mapping[str, str], *, parent_run_id: str | None = None
) -> Iterator[str]:
    """An MLflow run for the duration of the block; yields its id.

    With ``parent_run_id`` it is a child run (a tuning trial), also from another process. An
    exception inside marks the run FAILED (KILLED on Ctrl-C) instead of leaving it RUNNING.
    """
    import mlflow

    with mlflow.start_run(
        experiment_id=experiment_id, run_name=run_name, tags=dict(tags),
        nested=parent_run_id is not None, parent_run_id=parent_run_id,
    ) as run:
        yield run.info.run_id


def set_tags(tags: Mapping[str, str]) -> None:
    """Tag the active run."""
    import mlflow

    mlflow.set_tags(dict(tags))


def log_figure(figure, artifact_file: str) -> None:
    """Save a matplotlib figure as an artifact of the active run."""
    import mlflow

    mlflow.log_figure(figure, artifact_file)


def log_artifact_text(text: str, artifact_file: str) -> None:
    """Save text as an artifact of the active run."""
    import mlflow

    mlflow.log_text(text, artifact_file)


def log_dict(payload: Mapping[str, Any], artifact_file: str) -> None:
    """Save a dict as a JSON (or YAML) artifact of the active run."""
    import mlflow

    mlflow.log_dict(dict(payload), artifact_file)


def log_params(params: Mapping[str, Any]) -> None:
    """Log a flat dict of parameters (``None`` shown as an empty string)."""
    import mlflow

    mlflow.log_params({key: "" if value is None else value for key, value in params.items()})


def log_metrics(metrics: Mapping[str, float], step: int | None = None) -> None:
    """Log a flat dict of metrics."""
    import mlflow

    mlflow.log_metrics(dict(metrics), step=step)


def log_artifacts(folder: Path) -> None:
    """Upload every file of ``folder`` to the active run's artifact root."""
    import mlflow

    mlflow.log_artifacts(str(folder))


def epoch_logger():
    """A Keras callback logging loss/accuracy/val_loss/val_accuracy to the active run each epoch."""
    import mlflow.keras

    return mlflow.keras.MlflowCallback(log_every_epoch=True)


def log_run(result: RunResult, config: ExperimentConfig) -> dict[str, str]:
    """Log a fitted and scored run into the active run: metrics, artifacts and both models.

    Returns the URIs of the logged models, which are also the run's ``model_uri`` and
    ``audio_model_uri`` tags.
    """
    from benchmark.artifacts import write_run_artifacts

    log_metrics(result.metrics)
    with tempfile.TemporaryDirectory(prefix="benchmark-run-") as folder:
        write_run_artifacts(Path(folder), result, config)
        log_artifacts(Path(folder))
    example = result.example_inputs()
    return {
        "model_uri": log_native_model(result.estimator, example, result.estimator.predict_proba(example)),
        "audio_model_uri": log_audio_model(result.estimator, result.preprocessing, result.prepared.class_names),
    }


def log_native_model(estimator, example_input, example_output) -> str:
    """Log the fitted model with its own MLflow flavour and an explicit signature; returns its URI.

    The flavour is the estimator's (``mlflow.keras`` for a network). The signature comes from
    :func:`mlflow.models.infer_signature` rather than an input example: MLflow 3.17 fails
    writing ``input_example.json`` for 3-D arrays. Requirements are given, not inferred, because
    inference reloads the model in a subprocess (slow, and fragile offline).
    """
    import importlib

    from mlflow.models import infer_signature

    flavor = importlib.import_module(f"mlflow.{estimator.flavor}")
    signature = infer_signature(example_input, example_output.astype("float32"))
    info = flavor.log_model(
        estimator.native, name="model", signature=signature,
        pip_requirements=pinned_requirements(*estimator.requirements, "numpy"),
    )
    # The run points at its model, so reports and `predict` can find it from the run alone.
    set_tags({"model_uri": info.model_uri})
    return info.model_uri


def log_audio_model(estimator, preprocessing: dict, class_names) -> str:
    """Log the audio-in pyfunc model of the fitted estimator; returns its URI.

    It bundles the estimator, its ``preprocessing.json`` (feature parameters, normalisation,
    segmenting and vote) and the class names (:mod:`benchmark.audio_model`), so it labels
    audio files with no access to the training data. The run's ``audio_model_uri`` tag points
    at it, for ``promote`` to register.
    """
    import mlflow.pyfunc

    from benchmark.audio_model import audio_model_arguments

    with tempfile.TemporaryDirectory(prefix="benchmark-audio-model-") as folder, quiet_mlflow():
        arguments = audio_model_arguments(Path(folder), estimator, preprocessing, class_names)
        info = mlflow.pyfunc.log_model(name="audio_model", **arguments)
    set_tags({"audio_model_uri": info.model_uri})
    return info.model_uri


#: MLflow's dataset context for each split the run uses.
_SPLIT_CONTEXTS = {"train": "training", "valid": "validation", "test": "test"}


def log_data_inputs(name: str, source: str, digest: str) -> None:
    """Link the active run to its data, one input per split, for the MLflow UI's Dataset column.

    Each is metadata only (MLflow stores no copy): named ``<name>/<split>`` after the source,
    its digest the data fingerprint, its source the data folder or the synthetic recipe's
    cache folder, its context ``training``, ``validation`` or ``test``. (MLflow keeps one
    context per name and digest, hence a name per split.)
    """
    import warnings

    import mlflow
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    with warnings.catch_warnings():  # "can be interpreted in multiple ways": all of them local
        warnings.simplefilter("ignore", UserWarning)
        where = resolve_dataset_source(Path(source).resolve().as_uri())
    for split, context in _SPLIT_CONTEXTS.items():
        mlflow.log_input(MetaDataset(where, name=f"{name}/{split}", digest=digest[:36]), context=context)


@dataclass(frozen=True)
class BatchRef:
    """One batch of training runs: the MLflow experiment holding it and its ``batch_id``."""

    experiment_name: str
    experiment_id: str
    batch_id: str


def find_batch(experiment: str | None = None, batch_id: str | None = None) -> BatchRef:
    """Batch ``batch_id`` (default: the latest) of ``experiment`` (default: wherever it is).

    The latest batch is that of the most recently started training run; with no experiment
    named, it is looked for in every experiment of the store, so ``run --experiment smoke``
    followed by a bare ``report`` or ``promote`` finds the smoke batch. Needs a connected store.
    """
    from mlflow import MlflowClient

    client = MlflowClient()
    if batch_id is not None and not _BATCH_ID.fullmatch(batch_id):
        raise BenchmarkError(f"not a batch id: {batch_id!r} (`run` prints it, e.g. 20250101-120000-ab12cd)")
    experiments = [item for item in client.search_experiments() if item.lifecycle_stage == "active"]
    if experiment is not None:
        chosen = [item for item in experiments if item.name == experiment]
        if not chosen:
            names = ", ".join(sorted(item.name for item in experiments)) or "none"
            raise BenchmarkError(f"no MLflow experiment {experiment!r} (experiments there: {names})")
        experiments = chosen
    where = f"experiment {experiment!r}" if experiment else "this tracking store"
    filter_string = TRAINING_RUNS_FILTER + (f" and tags.batch_id = '{batch_id}'" if batch_id else "")
    runs = client.search_runs([item.experiment_id for item in experiments], filter_string=filter_string,
                              order_by=["attributes.start_time DESC"], max_results=100) if experiments else []
    run = next((run for run in runs if "batch_id" in run.data.tags), None)
    if run is None and batch_id is None:
        hint = f" --experiment {experiment}" if experiment else ""
        raise BenchmarkError(f"{where} has no training runs: run `python -m benchmark run --all{hint}` first")
    if run is None:
        recent = ", ".join(recent_batches(client, [item.experiment_id for item in experiments])) or "none"
        raise BenchmarkError(f"no runs of batch {batch_id!r} in {where} (recent batches: {recent})")
    names = {item.experiment_id: item.name for item in experiments}
    return BatchRef(names[run.info.experiment_id], run.info.experiment_id, run.data.tags["batch_id"])


def recent_batches(client, experiment_ids: list[str], limit: int = 5) -> list[str]:
    """The most recent batch ids among the training runs of ``experiment_ids``, newest first."""
    if not experiment_ids:
        return []
    runs = client.search_runs(experiment_ids, filter_string=TRAINING_RUNS_FILTER,
                              order_by=["attributes.start_time DESC"], max_results=200)
    batches = dict.fromkeys(run.data.tags["batch_id"] for run in runs if "batch_id" in run.data.tags)
    return list(batches)[:limit]


def batch_runs_filter(batch_id: str, *, finished: bool = False) -> str:
    """The MLflow search filter for the training runs of one batch (only FINISHED ones, if asked)."""
    status = " and attributes.status = 'FINISHED'" if finished else ""
    return f"{TRAINING_RUNS_FILTER} and tags.batch_id = '{batch_id}'{status}"


@contextmanager
def quiet_mlflow() -> Iterator[None]:
    """No MLflow progress bars or INFO lines for the duration of the block.

    Saving or loading a pyfunc copies each bundled file with a progress bar of its own: three
    bars a run, which bury the harness's own progress lines and the ``predict`` bar.
    """
    variable = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    saved_variable, mlflow_logger = os.environ.get(variable), logging.getLogger("mlflow")
    saved_level = mlflow_logger.level
    os.environ[variable] = "false"
    mlflow_logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        mlflow_logger.setLevel(saved_level)
        if saved_variable is None:
            os.environ.pop(variable, None)
        else:
            os.environ[variable] = saved_variable
