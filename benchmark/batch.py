"""What a batch is made of, and what is left of it: units, their keys, and resuming.

A batch is every (model entry, seed, split) :class:`~benchmark.unit.Unit` of one experiment.
Each unit's MLflow run carries a ``unit_key`` tag: the hash of every setting that can change
that unit's result (:func:`unit_settings`: the data, its features, the split, the training
values, the model's resolved hyperparameters and the Keras backend), the model entry, the seed
and the split. Two FINISHED runs with the same key are the same result, so a unit is done once
one exists.

``run --resume`` re-enters a batch (:func:`plan_resume`): units with a FINISHED run of the same
key are kept, the others (FAILED, KILLED, never started, or RUNNING in a process that died) run
again, and their earlier attempts are tagged ``superseded``, which reports skip. A unit whose
FINISHED run was made with other settings refuses the resume, naming the first differing key:
one batch never mixes two configurations of one unit. A unit that never finished may change
(fix the hyperparameter that made it fail, then resume).

Every run also logs ``unit.json``: its settings, the experiment's whole effective config and
the batch's model list, from which ``--resume`` rebuilds the batch without the original flags.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.backend import current_backend
from benchmark.config import (
    EPOCH_TRAINING_OPTIONS,
    ExperimentConfig,
    TrainConfig,
    flatten,
    validate_experiment,
)
from benchmark.errors import BenchmarkError
from benchmark.unit import Unit, model_setup

UNIT_KEY_TAG, CONFIG_HASH_TAG, SPLIT_INDEX_TAG = "unit_key", "config_hash", "split_index"
#: On an earlier attempt of a unit that ran again: the id of the run that replaced it.
SUPERSEDED_TAG = "superseded_by"
UNIT_RECORD = "unit.json"




def unit_settings(config: ExperimentConfig, model: str) -> dict[str, Any]:
    """Every setting that can change a unit's result, as ``{"section.key": value}``.

    Not in it: the experiment's name, the other models, the seeds list (the seed is part of the
    unit) and ``[tuning]``, none of which change this unit's fit.
    """
    setup = model_setup(config, model)
    # Options at their default are left out, so batches recorded before an option existed keep
    # their keys (and can be resumed).
    defaults = TrainConfig().model_dump(mode="json")
    training = {key: value for key, value in setup.training_settings.items()
                if key not in EPOCH_TRAINING_OPTIONS or value != defaults[key]}
    nested = {
        "backend": current_backend(),
        "data": config.data.model_dump(mode="json"),
        "features": config.features_for(model).model_dump(mode="json"),
        "split": config.split.model_dump(mode="json"),
        "evaluate": config.evaluate.model_dump(mode="json"),
        "train": training,
        f"model.{model}": {"architecture": setup.architecture, **setup.hyperparameters},
    }
    return json.loads(json.dumps(dict(flatten(nested))))  # tuples become lists, as stored


def config_hash(settings: dict[str, Any]) -> str:
    """A short, stable hash of a unit's settings."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def unit_key(unit: Unit, settings_hash: str) -> str:
    """``<config hash>:<model>:seed=<seed>:split=<index>``: the identity of a unit's result."""
    return f"{settings_hash}:{unit.model}:seed={unit.seed}:split={unit.split_index}"


def plan_units(config: ExperimentConfig, models: Sequence[str], splits: int) -> list[Unit]:
    """A batch's units in running order: folds outermost, so each fold's inputs are gathered once."""
    return [Unit(model, seed, index) for index in range(splits) for model in models for seed in config.run.seeds]


def unit_tags(unit: Unit, settings: dict[str, Any]) -> dict[str, str]:
    """The tags that make a run findable as a unit of its batch."""
    return {UNIT_KEY_TAG: unit_key(unit, config_hash(settings)), CONFIG_HASH_TAG: config_hash(settings),
            SPLIT_INDEX_TAG: str(unit.split_index)}


def unit_record(config: ExperimentConfig, models: Sequence[str], settings: dict[str, Any]) -> dict[str, Any]:
    """``unit.json``: this unit's settings, and what ``--resume`` needs to rebuild the batch."""
    return {"settings": settings, "experiment": config.model_dump(mode="json"), "models": list(models)}


@dataclass(frozen=True)
class StoredBatch:
    """A batch as MLflow holds it: where, its runs, and its config and models as first run."""

    experiment_id: str
    batch_id: str
    config: ExperimentConfig
    models: list[str]
    runs: list = field(repr=False)


def load_stored_batch(client, experiment_id: str, batch_id: str) -> StoredBatch:
    """Read a batch's runs and its ``unit.json`` (from its newest run that has one)."""
    from benchmark import tracking

    runs = client.search_runs([experiment_id], filter_string=tracking.batch_runs_filter(batch_id),
                              order_by=["attributes.start_time DESC"], max_results=10000)
    for run in runs:
        record = _read_record(client, run.info.run_id)
        if record is not None:
            where = f"run {run.info.run_id}'s {UNIT_RECORD} (batch {batch_id})"
            _check_record(record, where)
            config = validate_experiment(record["experiment"], origin=where)
            return StoredBatch(experiment_id, batch_id, config, list(record["models"]), runs)
    raise BenchmarkError(f"batch {batch_id} has no run with {UNIT_RECORD} (logged before batches could "
                         "resume): start a new batch instead")


@dataclass
class ResumePlan:
    """Which units of a batch are done (their FINISHED runs) and which run again."""

    done: dict[Unit, Any] = field(default_factory=dict)
    #: Each unit to run, with the ids of its earlier attempts (to tag superseded).
    todo: dict[Unit, list[str]] = field(default_factory=dict)
    #: Units another command is running now (a concurrent resume), with that run's id: waited for.
    elsewhere: dict[Unit, str] = field(default_factory=dict)


def plan_resume(stored: StoredBatch, config: ExperimentConfig, units: Iterable[Unit]) -> ResumePlan:
    """Split ``units`` into done and to-do against the batch's runs.

    Refused (:class:`BenchmarkError`) where a unit's FINISHED run was made with other settings.
    A unit still RUNNING in a live process (another command's: call
    :func:`benchmark.liveness.reap_dead_runs` first, so only live ones are left RUNNING) is
    neither: it is that command's to finish (``elsewhere``).
    """
    attempts = defaultdict(list)
    for run in stored.runs:
        tags = run.data.tags
        if SPLIT_INDEX_TAG in tags:
            attempts[Unit(tags["model"], int(tags["seed"]), int(tags[SPLIT_INDEX_TAG]))].append(run)
    plan = ResumePlan()
    settings_of = {}
    for unit in units:
        if unit.model not in settings_of:
            settings_of[unit.model] = unit_settings(config, unit.model)
        key = unit_key(unit, config_hash(settings_of[unit.model]))
        runs = attempts.get(unit, [])
        running = [run for run in runs if run.info.status == "RUNNING"]
        finished = [run for run in runs if run.info.status == "FINISHED"]
        same = [run for run in finished if run.data.tags.get(UNIT_KEY_TAG) == key]
        if same:
            plan.done[unit] = same[0]
        elif finished:
            raise BenchmarkError(_difference(stored, finished[0], unit, settings_of[unit.model]))
        elif running:
            plan.elsewhere[unit] = running[0].info.run_id
        else:
            plan.todo[unit] = [run.info.run_id for run in runs if SUPERSEDED_TAG not in run.data.tags]
    return plan


def log_unit_record(record: dict[str, Any]) -> None:
    """Log ``unit.json`` into the active run."""
    from benchmark import tracking

    tracking.log_dict(record, UNIT_RECORD)


def _read_record(client, run_id: str) -> Any:
    """The run's ``unit.json`` as parsed JSON (not yet checked: :func:`_check_record`), None where
    it has none; a file that is not JSON is a :class:`BenchmarkError` naming the run and the file."""
    from benchmark.tracking import quiet_mlflow

    with tempfile.TemporaryDirectory(prefix="benchmark-resume-") as folder, quiet_mlflow():
        try:
            path = client.download_artifacts(run_id, UNIT_RECORD, folder)
        except Exception:  # noqa: BLE001  MLflow raises its own types for a missing artifact
            return None
        try:
            return json.loads(Path(path).read_text())
        except (ValueError, OSError) as error:  # not JSON, not UTF-8, unreadable
            raise BenchmarkError(f"run {run_id}'s {UNIT_RECORD} cannot be read ({error}): the batch cannot be "
                                 "rebuilt from it; start a new batch") from None


def _check_record(record: Any, where: str) -> None:
    """``unit.json`` as :func:`unit_record` writes it, or one line naming the run and the file."""
    problem = None
    if not isinstance(record, dict):
        problem = f"a JSON {type(record).__name__}, not an object"
    elif missing := [key for key in ("settings", "experiment", "models") if key not in record]:
        problem = f"no {', '.join(repr(key) for key in missing)}"
    elif not isinstance(record["settings"], dict) or not isinstance(record["experiment"], dict):
        problem = "'settings' and 'experiment' must be objects"
    elif not isinstance(record["models"], list) or not all(isinstance(name, str) for name in record["models"]):
        problem = "'models' must be a list of model names"
    if problem is not None:
        raise BenchmarkError(f"{where} is not a record of this harness ({problem}): the batch cannot be "
                             "rebuilt from it; start a new batch")


def _difference(stored: StoredBatch, finished, unit: Unit, now: dict[str, Any]) -> str:
    """The refusal line: the first setting where the unit's finished run and now differ."""
    from mlflow import MlflowClient

    record = _read_record(MlflowClient(), finished.info.run_id)
    before = record.get("settings") if isinstance(record, dict) else None
    before = before if isinstance(before, dict) else {}
    for key in [*now, *(key for key in before if key not in now)]:
        if before.get(key, _UNSET) != now.get(key, _UNSET):
            return (f"cannot resume batch {stored.batch_id}: {_label(unit)} finished with {key} = "
                    f"{_shown(before.get(key, _UNSET))}, now {_shown(now.get(key, _UNSET))}; resume with the "
                    "batch's settings (no --experiment or --set), or start a new batch")
    return (f"cannot resume batch {stored.batch_id}: {_label(unit)} finished with other settings "
            f"(unit key {finished.data.tags.get(UNIT_KEY_TAG)}); start a new batch")


def _label(unit: Unit) -> str:
    return f"{unit.model} seed {unit.seed}" + (f" split {unit.split_index}" if unit.split_index else "")


_UNSET = object()


def _shown(value: Any) -> str:
    return "unset" if value is _UNSET else json.dumps(value)

