"""Everything MLflow-specific for runs: where they go, what identifies them, how they are logged.

The rest of the harness returns plain values (:class:`benchmark.unit.RunResult`) and writes
plain files (:mod:`benchmark.artifacts`); this module turns them into MLflow experiments, runs,
params, metrics, dataset inputs, artifacts and logged models, and finds them again: what a
training run is, and which batch is the latest, are defined here once. Layering is one way:
:mod:`benchmark.serving` and :mod:`benchmark.report` use this module, and it imports neither.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from benchmark.errors import BenchmarkError, causes, refused_by_storage
from benchmark.paths import ensure_writable_folder, mlruns_dir, slug
from benchmark.redaction import has_credentials, install_log_redaction, redact

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
#: How long a command waits for another one that is creating the same local store (its schema
#: migrations take seconds); past that, the lock is reported rather than waited on forever.
STORE_LOCK_SECONDS = 300


def default_tracking_uri() -> str:
    """A SQLite store in ``mlruns/`` under the working directory (artifacts beside it)."""
    return f"sqlite:///{mlruns_dir() / DATABASE_NAME}"


def resolve_tracking_uri(explicit: str | None = None) -> str:
    """``--tracking-uri``, else ``$MLFLOW_TRACKING_URI``, else the local SQLite store."""
    return explicit or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()


def connect(uri: str, *, writable: bool = True) -> None:
    """Point MLflow at ``uri``, failing fast with one clear line where it cannot be used.

    MLflow's own client retries an unreachable server for minutes before giving up; a short
    health check first turns that into an immediate, readable error. A local SQLite store is
    checked for writing first (``writable``: commands that only read skip that), so a
    read-only store fails before any slow work rather than after it, and is created (its
    schema migrated) under a file lock: two commands starting together on a new store would
    otherwise both run MLflow's migrations and one would crash. A URL's password is never
    shown: error lines redact it, and MLflow's own log lines and printed run links are kept
    from showing it.
    """
    import mlflow

    configure_mlflow_output(uri)
    scheme = urlparse(uri).scheme
    if scheme in ("http", "https"):
        _check_server(uri)
    mlflow.set_tracking_uri(uri)
    if scheme == "sqlite":
        database = _database_path(uri)
        if writable:
            _check_writable_database(database)
            with _store_creation_lock(database):
                _first_connection(uri)
        else:
            _first_connection(uri)


def _database_path(uri: str) -> Path:
    return Path(uri.removeprefix("sqlite:///"))


def _check_writable_database(database: Path) -> None:
    """The store's folder, its artifacts folder, and its database file where it exists, accept
    writes (else one line)."""
    hint = "pass another --tracking-uri (or set MLFLOW_TRACKING_URI)"
    ensure_writable_folder(database.parent, "tracking store folder", hint=hint)
    ensure_writable_folder(database.parent / "artifacts", "tracking store's artifacts folder", hint=hint)
    if database.exists():
        try:  # opening for writing truncates nothing and writes nothing
            os.close(os.open(database, os.O_WRONLY))
        except OSError as error:
            raise BenchmarkError(f"cannot write to the tracking store {database}: {error.strerror}") from None


@contextmanager
def _store_creation_lock(database: Path) -> Iterator[None]:
    """Hold ``<database>.lock`` for the block: one process at a time creates or migrates a store."""
    from filelock import FileLock, Timeout

    lock = FileLock(database.with_name(database.name + ".lock"), timeout=STORE_LOCK_SECONDS)
    try:
        with lock:
            yield
    except Timeout:
        raise BenchmarkError(f"another command has held {lock.lock_file} for {STORE_LOCK_SECONDS} s; "
                             "is it stuck creating the tracking store?") from None


def _first_connection(uri: str) -> None:
    """Open the store, which creates its tables (or checks its schema): errors become one line."""
    from mlflow import MlflowClient

    try:
        MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    except Exception as error:  # noqa: BLE001  MLflow, SQLAlchemy and sqlite3 raise their own types
        raise BenchmarkError(f"cannot open the tracking store {redact(uri)}: {_first_line(error)}") from None


def open_existing_store(tracking_uri: str | None, *, writable: bool = True) -> str:
    """Connect to a store that must already exist; returns its URI.

    Commands that only read (report, promote, predict) must not leave an empty ``mlruns/``
    behind in whatever folder they ran in. ``writable=False`` is for those that never write
    to it (``predict``): a read-only store serves them.
    """
    uri = resolve_tracking_uri(tracking_uri)
    if urlparse(uri).scheme == "sqlite" and not _database_path(uri).is_file():
        raise BenchmarkError(
            f"no tracking store at {redact(uri)}: run `python -m benchmark run` here first, or pass "
            "--tracking-uri (or set MLFLOW_TRACKING_URI)"
        )
    connect(uri, writable=writable)
    return uri


def _check_server(uri: str) -> None:
    import requests

    try:
        response = requests.get(uri.rstrip("/") + "/health", timeout=5)
    except requests.RequestException as error:
        raise BenchmarkError(
            f"cannot reach the MLflow tracking server at {redact(uri)} ({type(error).__name__}); "
            "start it or pass another --tracking-uri"
        ) from None
    if response.status_code != 200:
        raise BenchmarkError(
            f"{redact(uri)} answered {response.status_code} to /health: is it an MLflow tracking server?"
        )


def ensure_experiment(name: str, uri: str) -> str:
    """The id of MLflow experiment ``name``, created on first use.

    With a local SQLite store its artifacts go to ``<store folder>/artifacts/<name>``: left
    unset, MLflow would put them in ``./mlruns`` of whatever the working directory happens to be.
    Another command may create it at the same moment: whichever loses that race uses the winner's.
    """
    import mlflow
    from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode

    try:
        experiment = mlflow.get_experiment_by_name(name)
        if experiment is None:
            try:
                return mlflow.create_experiment(name, artifact_location=_artifact_location(name, uri))
            except mlflow.exceptions.MlflowException as error:
                if error.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
                    raise
            experiment = mlflow.get_experiment_by_name(name)  # created by a concurrent command
        if experiment.lifecycle_stage == "deleted":
            raise BenchmarkError(f"MLflow experiment {name!r} is deleted; restore it or rename the experiment")
        return experiment.experiment_id
    except mlflow.exceptions.MlflowException as error:
        raise BenchmarkError(f"tracking store {redact(uri)}: {error.message.splitlines()[0]}") from None


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
    exception inside marks the run FAILED (KILLED on Ctrl-C or SIGTERM) instead of leaving it
    RUNNING.

    A write that fails for want of space or permission (a full disk, a read-only store), in the
    store or in the artifacts, becomes one :class:`BenchmarkError` line: see
    :func:`_storage_failure`.
    """
    import mlflow

    run = None
    try:
        with mlflow.start_run(
            experiment_id=experiment_id, run_name=run_name, tags=dict(tags),
            nested=parent_run_id is not None, parent_run_id=parent_run_id,
        ) as run:
            try:
                yield run.info.run_id
            except KeyboardInterrupt:
                # Ctrl-C or SIGTERM (see benchmark.cli): the run was stopped, it did not fail.
                mlflow.end_run("KILLED")
                raise
    except Exception as error:
        reason = _storage_failure(error)
        if reason is None:
            raise
        outcome = "" if run is None else "; " + _fail_after_storage_error(run, out_of_space=_out_of_space(error))
        raise BenchmarkError(f"{run_name}: {reason}{outcome}") from None


#: sqlite's own words for a store it cannot write, and what to call them.
_SQLITE_WRITE_FAILURES = {
    "database or disk is full": "No space left on device",
    "attempt to write a readonly database": "Read-only database",
    "unable to open database file": "Cannot open the database file",
    "disk i/o error": "Disk I/O error",
}


def _storage_failure(error: BaseException) -> str | None:
    """One line saying which write failed and why, where ``error`` is a storage failure; else None.

    Storage failures are the disk refusing a file (:func:`benchmark.errors.refused_by_storage`:
    no space, read-only, no permission), or sqlite's report of the same about the store's
    database (naming the store). Anything else is not the user's disk and keeps its traceback.
    """
    if refused := refused_by_storage(error):
        return f"cannot write {redact(refused)}"
    for cause in causes(error):
        text = str(cause).lower()
        for words, reason in _SQLITE_WRITE_FAILURES.items():
            if words in text:
                import mlflow

                return f"cannot write to the tracking store {redact(mlflow.get_tracking_uri())}: {reason}"
    return None


def _out_of_space(error: BaseException) -> bool:
    return any((isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT))
               or "database or disk is full" in str(cause).lower() for cause in causes(error))


def _fail_after_storage_error(run, *, out_of_space: bool) -> str:
    """End ``run`` FAILED where the store can still be written; says what became of it.

    Out of space, the run's artifacts and logged models are incomplete (a model file cut off
    mid-copy cannot be loaded), so they are removed first: that also frees the room the store
    needs to record FAILED. A run that cannot be ended stays RUNNING, and the line says so.
    """
    from mlflow import MlflowClient

    client, run_id = MlflowClient(), run.info.run_id
    removed = _remove_local_artifacts(client, run) if out_of_space else False
    try:
        if client.get_run(run_id).info.status == "RUNNING":
            client.set_terminated(run_id, status="FAILED")
    except Exception as error:  # noqa: BLE001  the store refuses writes: say so, do not mask the cause
        log.debug("cannot end run %s: %s", run_id, error)
        return f"run {run_id} could not be marked FAILED (the store cannot be written) and shows as RUNNING"
    return f"run {run_id} is marked FAILED" + (" and its incomplete artifacts were removed" if removed else "")


def _remove_local_artifacts(client, run) -> bool:
    """Delete the local artifact folders of ``run`` and of the models it logged; True if any were.

    Only ``file:`` locations inside the run's own experiment folder are touched.
    """
    experiment = client.get_experiment(run.info.experiment_id)
    root = _local_path(experiment.artifact_location)
    if root is None:
        return False
    folders = [_local_path(run.info.artifact_uri)]
    try:
        models = client.search_logged_models([run.info.experiment_id],
                                             filter_string=f"source_run_id = '{run.info.run_id}'")
        folders += [_local_path(model.artifact_location) for model in models]
    except Exception as error:  # noqa: BLE001  reading the store may fail too: remove what is known
        log.debug("cannot list the models of run %s: %s", run.info.run_id, error)
    removed = False
    for folder in folders:
        # ``<root>/<run id>/artifacts``, ``<root>/models/<model id>/artifacts``: the id's folder goes.
        if (folder is not None and folder.name == "artifacts" and folder.parent != root
                and folder.parent.is_relative_to(root)):
            shutil.rmtree(folder.parent, ignore_errors=True)
            removed = True
    return removed


def _local_path(uri: str | None) -> Path | None:
    if not uri or urlparse(uri).scheme != "file":
        return None
    from urllib.request import url2pathname

    return Path(url2pathname(urlparse(uri).path)).resolve()


def _first_line(error: BaseException) -> str:
    text = redact(str(getattr(error, "message", None) or error).strip())
    return text.splitlines()[0] if text else type(error).__name__


#: Why a run FAILED: the error's first line (its traceback is the run's ``failure/traceback.txt``).
FAILURE_REASON_TAG = "failure_reason"


def record_failure(error: BaseException) -> str:
    """Tag the active run with why it failed and log the traceback; returns the reason.

    Best effort: a store that cannot take even this (it may be why the run failed) is left be.
    """
    import traceback

    reason = failure_reason(error)
    try:
        set_tags({FAILURE_REASON_TAG: reason[:5000]})
        log_artifact_text("".join(traceback.format_exception(error)), "failure/traceback.txt")
    except Exception as failure:  # noqa: BLE001  the original error is what matters
        log.warning("could not record the failure in MLflow: %s", _first_line(failure))
    return reason


def failure_reason(error: BaseException) -> str:
    """A failure in one line: a user error's message, or a bug's type and first line (redacted)."""
    return _first_line(error) if isinstance(error, BenchmarkError) else f"{type(error).__name__}: {_first_line(error)}"


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
    """A Keras callback logging loss/accuracy/val_loss/val_accuracy to the active run each epoch.

    MLflow's callback has an ``on_batch_end`` (a no-op without ``log_every_n_steps``), and Keras
    reads every batch's logs on the host when any callback has one; ``async_safe`` tells Keras
    it may run that hook off the main thread, so training is not held up after each step. The
    harness's own bookkeeping in the logs (:data:`~benchmark.models._keras_callbacks.NONFINITE_METRIC`)
    is not a metric of the run and is left out.
    """
    import mlflow.keras

    class EpochLogger(mlflow.keras.MlflowCallback):
        async_safe = True

        def on_epoch_end(self, epoch, logs=None):
            super().on_epoch_end(epoch, _without_bookkeeping(logs))

        def on_test_end(self, logs=None):
            super().on_test_end(_without_bookkeeping(logs))

    return EpochLogger(log_every_epoch=True)


def _without_bookkeeping(logs: Mapping[str, float] | None) -> dict[str, float] | None:
    # The name is spelled here, not imported: the callbacks' module imports Keras.
    return None if logs is None else {key: value for key, value in logs.items()
                                      if not key.endswith("first_nonfinite_batch")}


def log_run(result: RunResult, config: ExperimentConfig) -> dict[str, str]:
    """Log a fitted and scored run into the active run: metrics, artifacts and its model.

    The model is the audio-in model (:func:`log_audio_model`), which holds the fitted estimator
    in its own file format: the network is written once per run, not once more in an MLflow
    flavour of its own. Returns ``{"audio_model_uri": ...}``, also the run's tag.
    """
    from benchmark.artifacts import write_run_artifacts

    log_metrics(result.metrics)
    with tempfile.TemporaryDirectory(prefix="benchmark-run-") as folder:
        write_run_artifacts(Path(folder), result, config)
        log_artifacts(Path(folder))
    return {"audio_model_uri": log_audio_model(result.estimator, result.preprocessing, result.prepared.class_names)}


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
        dataset = MetaDataset(where, name=f"{name}/{split}", digest=digest[:36])
        for attempt in range(_DATASET_ATTEMPTS):
            try:
                mlflow.log_input(dataset, context=context)
                break
            except mlflow.exceptions.MlflowException as error:
                # Two runs logging the same new dataset at once (a batch's units on several
                # workers) race to create it: the loser finds it created on a second try.
                if attempt + 1 == _DATASET_ATTEMPTS or not _DUPLICATE_KEY.search(str(error)):
                    raise


#: How a store reports the race of two writers creating one dataset (PostgreSQL, MySQL, SQLite).
_DUPLICATE_KEY = re.compile(r"UniqueViolation|duplicate key|Duplicate entry|UNIQUE constraint", re.IGNORECASE)
_DATASET_ATTEMPTS = 3


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
    if batch_id is not None:
        check_batch_id(batch_id)
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


def check_batch_id(batch_id: str) -> None:
    """A batch id has the form ``new_batch_id`` gives (it goes into search filters); else one line."""
    if not _BATCH_ID.fullmatch(batch_id):
        raise BenchmarkError(f"not a batch id: {batch_id!r} (`run` prints it, e.g. 20250101-120000-ab12cd)")


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


def configure_mlflow_output(uri: str) -> None:
    """What MLflow may print in this process while it writes to ``uri``: never its password,
    and not the traceback of a failed database session, which MLflow logs and then raises (the
    command turns it into one line, a full disk say, or keeps its traceback, a bug).

    :func:`connect` calls it; so does a process that logs to a store another process connected
    to (a unit's own process, a Ray worker).
    """
    install_log_redaction(logging.getLogger("mlflow"))  # MLflow's handler does not reach the root's
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
    if has_credentials(uri):
        os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"  # its "View run at <url>" lines


def use_store(uri: str) -> None:
    """Log to ``uri``, connected to already by the batch's process: MLflow's URI and output."""
    import mlflow

    configure_mlflow_output(uri)
    mlflow.set_tracking_uri(uri)


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
