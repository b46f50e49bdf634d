"""Everything MLflow-specific: where runs go, what identifies them, how they are logged.

The rest of the harness returns plain values and writes plain files; this module turns them
into MLflow experiments, runs, params, metrics, artifacts and logged models.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import platform
import re
import subprocess
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from benchmark.errors import BenchmarkError
from benchmark.paths import mlruns_dir

log = logging.getLogger(__name__)

DATABASE_NAME = "mlflow.db"
#: ``run_kind`` tag of the runs `run` makes; tuning trials, studies and reports carry others.
TRAINING_RUN = "train"
#: MLflow search filter for training runs, which reports and promotion read.
TRAINING_RUNS_FILTER = f"tags.run_kind = '{TRAINING_RUN}'"
#: Packages whose versions every run records, so a result can be repeated a year later.
RECORDED_PACKAGES = (
    "keras", "tensorflow", "jax", "jaxlib", "torch", "numpy", "librosa", "soundfile",
    "scikit-learn", "pandas", "mlflow", "optuna",
)
_PROJECT_ROOT = Path(__file__).resolve().parent.parent


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
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "experiment"
    return (store / "artifacts" / slug).as_uri()


def new_batch_id() -> str:
    """An id shared by every run of one invocation: sortable by time, unique by suffix."""
    return f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"


def provenance_tags() -> dict[str, str]:
    """Keras backend, git commit, Python and package versions, as run tags."""
    import keras

    tags = {
        "keras_backend": keras.backend.backend(),
        "git_commit": git_commit(),
        "python_version": platform.python_version(),
        "platform": platform.platform(),
    }
    for package in RECORDED_PACKAGES:
        try:
            tags[f"version.{package}"] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return tags


def git_commit() -> str:
    """The project's commit, with ``-dirty`` if the work tree has changes; ``unknown`` outside git."""
    try:
        commit = _git("rev-parse", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=_PROJECT_ROOT, capture_output=True, text=True, check=True, timeout=10
    ).stdout.strip()


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


def log_keras_model(model, example_input, example_output) -> str:
    """Log the trained network with ``mlflow.keras`` and an explicit signature; returns its URI.

    The signature comes from :func:`mlflow.models.infer_signature` rather than an input example:
    MLflow 3.17 fails writing ``input_example.json`` for 3-D arrays. Requirements are given, not
    inferred, because inference reloads the model in a subprocess (slow, and fragile offline).
    """
    import mlflow.keras
    from mlflow.models import infer_signature

    signature = infer_signature(example_input, example_output)
    info = mlflow.keras.log_model(
        model, name="model", signature=signature, pip_requirements=pinned_requirements("keras", "numpy")
    )
    # The run points at its model, so reports and `predict` can find it from the run alone.
    mlflow.set_tag("model_uri", info.model_uri)
    return info.model_uri


def log_audio_model(network, preprocessing: dict, class_names) -> str:
    """Log the audio-in pyfunc model of the trained network; returns its URI.

    It bundles the network, its ``preprocessing.json`` (feature parameters, normalisation,
    segmenting and vote) and the class names
    (:mod:`benchmark.serving.audio_model`), so it labels audio files with no access to the
    training data. The run's ``audio_model_uri`` tag points at it, for ``promote`` to register.
    """
    import tempfile

    import mlflow.pyfunc

    from benchmark.serving.audio_model import audio_model_arguments, quiet_mlflow

    with tempfile.TemporaryDirectory(prefix="benchmark-audio-model-") as folder, quiet_mlflow():
        arguments = audio_model_arguments(Path(folder), network, preprocessing, class_names)
        info = mlflow.pyfunc.log_model(name="audio_model", **arguments)
    mlflow.set_tag("audio_model_uri", info.model_uri)
    return info.model_uri


def pinned_requirements(*packages: str) -> list[str]:
    """``name==version`` for ``packages`` and the running Keras backend: a logged model's pip
    requirements, given rather than inferred (inference reloads the model in a subprocess)."""
    import keras

    backend = keras.backend.backend()  # its package has the same name: tensorflow, jax, torch
    return [f"{name}=={importlib.metadata.version(name)}" for name in dict.fromkeys((*packages, backend))]
