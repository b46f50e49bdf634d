"""The ensemble of one (seed, split) of a batch, as an MLflow run of its own (``model_kind`` ``ensemble``).

Formed once the batch's units have finished (:func:`form_batch_ensembles`, which ``run`` and
``run --resume`` call at their end): per (seed, split), the members' FINISHED runs of the
batch are read back, the weights are chosen on their validation predictions
(:mod:`benchmark.ensemble.select`), and the run logs the same test metrics, confusion matrix and
``predictions.csv`` as any run, its members and weights as params and ``ensemble.json``, and
``unit.json``. It trains nothing.

Its ``unit_key`` hashes the ensemble settings with the members' unit keys and run ids: a resume
keeps a FINISHED ensemble run of the same key, and forms the ensemble again (superseding the
earlier attempt) only where it never finished or a member changed.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from benchmark.batch import (
    CONFIG_HASH_TAG,
    SPLIT_INDEX_TAG,
    SUPERSEDED_TAG,
    UNIT_KEY_TAG,
    config_hash,
    unit_key,
    unit_record,
)
from benchmark.config import ENSEMBLE_MODEL, ExperimentConfig
from benchmark.ensemble.members import member_runs, read_tables, require_validation_predictions
from benchmark.ensemble.predictions import EnsemblePredictions, form_ensemble
from benchmark.unit import Unit

log = logging.getLogger(__name__)

ENSEMBLE_RECORD = "ensemble.json"
#: Tags every ensemble run copies from its members' runs: they describe the same data and split.
_SHARED_TAGS = ("experiment", "data_fingerprint", "split_protocol", "split_hash", "duplicates_across_splits", "fold")


def form_batch_ensembles(config: ExperimentConfig, models: Sequence[str], *, experiment_id: str,
                         batch_id: str) -> tuple[list, list[tuple[Unit, str]]]:
    """Form (or keep, on a resume) the ensemble of each (seed, split) of a batch.

    Returns the FINISHED ensemble runs (MLflow's) and the ensembles that could not be formed,
    as ``(unit, reason)``.

    Nothing where the experiment has no ``[ensemble]`` or the batch runs fewer than two of its
    members. An ensemble whose members did not all finish is a failure, not an error: the other
    ensembles are still formed.
    """
    from mlflow import MlflowClient

    from benchmark import tracking
    from benchmark.liveness import reap_dead_runs

    if config.ensemble is None:
        return [], []
    members = config.ensemble.members_of(list(models))
    if len(members) < 2:
        log.info("no ensemble: this batch runs one model (%s)", ", ".join(members))
        return [], []
    client = MlflowClient()
    runs = member_runs(client, config, members, experiment_id, batch_id)
    ensemble_filter = f"{tracking.batch_runs_filter(batch_id)} and tags.model = '{ENSEMBLE_MODEL}'"
    reap_dead_runs(client, [experiment_id], ensemble_filter)
    earlier = client.search_runs([experiment_id], filter_string=ensemble_filter, max_results=10000)
    splits = config.split.folds if config.split.protocol == "kfold" else 1
    rows, failures = [], []
    for split_index in range(splits):
        for seed in config.run.seeds:
            units = [Unit(name, seed, split_index) for name in members]
            missing = [unit.model for unit in units if unit not in runs]
            if missing:
                failures.append((Unit(ENSEMBLE_MODEL, seed, split_index),
                                 f"members without a finished run: {', '.join(missing)}"))
                continue
            rows.append(_ensemble_unit(client, config, models, {unit.model: runs[unit] for unit in units},
                                       Unit(ENSEMBLE_MODEL, seed, split_index), earlier,
                                       experiment_id=experiment_id, batch_id=batch_id))
    return rows, failures


def ensemble_settings(config: ExperimentConfig, member_runs_of: dict[str, object]) -> dict:
    """What an ensemble's result depends on: its settings, and each member's unit key and run."""
    return {"ensemble": config.ensemble.model_dump(mode="json"),
            "members": {name: {"unit_key": run.data.tags[UNIT_KEY_TAG], "run_id": run.info.run_id}
                        for name, run in member_runs_of.items()}}


def _ensemble_unit(client, config, models, members: dict[str, object], unit: Unit, earlier, *,
                   experiment_id: str, batch_id: str):
    """Keep this ensemble's FINISHED run of the same key, or form it in a new run."""
    settings = ensemble_settings(config, members)
    key = unit_key(unit, config_hash(settings))
    attempts = [run for run in earlier if run.data.tags.get("seed") == str(unit.seed)
                and run.data.tags.get(SPLIT_INDEX_TAG) == str(unit.split_index) and SUPERSEDED_TAG not in run.data.tags]
    for run in attempts:
        if run.info.status == "FINISHED" and run.data.tags.get(UNIT_KEY_TAG) == key:
            return run
    require_validation_predictions(client, members.values())
    return log_ensemble_run(client, config, models, members, unit, settings, key,
                            [run.info.run_id for run in attempts], experiment_id=experiment_id, batch_id=batch_id)


def log_ensemble_run(client, config, models, members: dict[str, object], unit: Unit, settings: dict, key: str,
                     supersedes: Sequence[str], *, experiment_id: str, batch_id: str):
    """Choose the weights, score the test clips and log it all in one run; the finished run.

    The run is claimed like any unit (:mod:`benchmark.claims`): where another command holds
    this ensemble, its run is the result once it finished (formed here after all if it died).
    """
    from benchmark import tracking
    from benchmark.claims import ClaimedElsewhere, claim, find_claims_run, wait_for, withdraw
    from benchmark.liveness import owner_tags
    from benchmark.provenance import provenance_tags

    started = time.perf_counter()
    first = next(iter(members.values()))
    fold = first.data.tags.get("fold")
    tags = {"run_kind": tracking.TRAINING_RUN, "batch_id": batch_id, "model": ENSEMBLE_MODEL,
            "architecture": ENSEMBLE_MODEL, "model_kind": ENSEMBLE_MODEL, "seed": str(unit.seed),
            "representation": "+".join(dict.fromkeys(run.data.tags.get("representation", "") for run in members.values())),
            **{name: first.data.tags[name] for name in _SHARED_TAGS if name in first.data.tags},
            UNIT_KEY_TAG: key, CONFIG_HASH_TAG: config_hash(settings), SPLIT_INDEX_TAG: str(unit.split_index),
            **owner_tags(), **provenance_tags()}
    name = f"{ENSEMBLE_MODEL}-seed{unit.seed}" + ("" if fold is None else f"-fold{fold}")
    tables = {member: read_tables(client, run) for member, run in members.items()}
    formed = form_ensemble({member: pair[0] for member, pair in tables.items()},
                           {member: pair[1] for member, pair in tables.items()},
                           method=config.ensemble.method, size=config.ensemble.size)

    run_id = None
    try:
        with tracking.tracked_run(experiment_id, name, tags) as run_id:
            claim(client, find_claims_run(client, experiment_id, batch_id), key, run_id)
            _log_formed(client, config, models, members, formed, settings, name, supersedes, run_id, started)
    except ClaimedElsewhere as claimed:
        withdraw(client, run_id)
        holder = wait_for(client, claimed.holder_run_id, name)
        if holder is not None and holder.info.status == "FINISHED":
            return holder
        return log_ensemble_run(client, config, models, members, unit, settings, key, supersedes,
                                experiment_id=experiment_id, batch_id=batch_id)  # its holder died: form it here
    return client.get_run(run_id)


def _log_formed(client, config, models, members: dict[str, object], formed: EnsemblePredictions, settings: dict,
                name: str, supersedes: Sequence[str], run_id: str, started: float) -> None:
    """Log a formed ensemble into its (claimed, active) run ``run_id``."""
    from benchmark import tracking

    try:
        for earlier in supersedes:
            client.set_tag(earlier, SUPERSEDED_TAG, run_id)
        metrics = _metrics(formed, members, seconds=time.perf_counter() - started)
        tracking.log_params(_params(config, formed, members))
        tracking.log_metrics(metrics)
        with tempfile.TemporaryDirectory(prefix="benchmark-ensemble-run-") as folder:
            _write_artifacts(Path(folder), config, models, formed, members, settings, name)
            tracking.log_artifacts(Path(folder))
        _log_audio_model(formed, members)
    except Exception as error:
        tracking.record_failure(error)
        raise
    log.info("%s: members %s, test accuracy %.4f", name,
             ", ".join(f"{member} {weight:.2f}" for member, weight in formed.weights.items()), metrics["test_accuracy"])


def _log_audio_model(formed: EnsemblePredictions, members: dict[str, object]) -> str:
    """The ensemble's audio model (:mod:`benchmark.ensemble.audio_model`), where every weighted
    member logged one; else '' (nothing to promote), with a warning."""
    from benchmark.ensemble.audio_model import log_ensemble_audio_model

    uris = {name: members[name].data.tags.get("audio_model_uri", "") for name in formed.weights}
    if not all(uris.values()):
        log.warning("no audio model for the ensemble: members %s logged none",
                    ", ".join(name for name, uri in uris.items() if not uri))
        return ""
    return log_ensemble_audio_model(uris, formed.weights, formed.class_names)


def _metrics(formed: EnsemblePredictions, members: dict[str, object], *, seconds: float) -> dict[str, float]:
    """The test metrics any run logs; size and inference time are those of the weighted members."""
    from benchmark.evaluate import classification_metrics

    chosen = [members[name].data.metrics for name in formed.weights]
    scores = classification_metrics(formed.truth, formed.predicted, formed.class_names)
    return {f"test_{key}": value for key, value in scores.items()} | {
        "test_inference_ms_per_clip": sum(item.get("test_inference_ms_per_clip", 0.0) for item in chosen),
        "parameters": sum(item.get("parameters", 0.0) for item in chosen),
        "train_seconds": 0.0,
        "ensemble_seconds": seconds,
        "final_val_accuracy": formed.validation_accuracy,
        "ensemble_members": len(formed.weights),
    }


def _params(config: ExperimentConfig, formed: EnsemblePredictions, members: dict[str, object]) -> dict:
    return {"ensemble.method": config.ensemble.method, "ensemble.size": config.ensemble.size,
            "ensemble.candidates": ",".join(members), "ensemble.members": ",".join(formed.weights),
            **{f"weight.{name}": round(weight, 6) for name, weight in formed.weights.items()},
            **{f"member_run.{name}": run.info.run_id for name, run in members.items()}}


def _write_artifacts(folder: Path, config, models, formed: EnsemblePredictions, members: dict[str, object],
                     settings: dict, name: str) -> None:
    """``predictions.csv``, the confusion matrix, ``ensemble.json``, ``unit.json``, labels and config."""
    import json

    from sklearn.metrics import confusion_matrix

    from benchmark.plots import confusion_matrix_figure, save_figure

    labels = list(range(len(formed.class_names)))
    confusion = confusion_matrix(formed.truth, formed.predicted, labels=labels)
    formed.test.to_csv(folder / "predictions.csv", index=False, float_format="%.6f")
    save_figure(confusion_matrix_figure(confusion, formed.class_names, f"{name} on {config.name}"),
                folder / "confusion_matrix.png")
    documents = {
        "confusion_matrix.json": {"labels": formed.class_names, "rows": "true", "columns": "predicted",
                                  "counts": confusion.tolist()},
        ENSEMBLE_RECORD: {"method": config.ensemble.method, "size": config.ensemble.size,
                          "weights": formed.weights, "validation_accuracy": formed.validation_accuracy,
                          "members": {member: {"run_id": run.info.run_id, "unit_key": run.data.tags[UNIT_KEY_TAG],
                                               "audio_model_uri": run.data.tags.get("audio_model_uri", "")}
                                      for member, run in members.items()}},
        "unit.json": unit_record(config, models, settings),
        "labels.json": {"classes": formed.class_names},
        "config.json": config.model_dump(mode="json"),
    }
    for file, payload in documents.items():
        (folder / file).write_text(json.dumps(payload, indent=2) + "\n")


def check_before_training(config: ExperimentConfig, models: Sequence[str], done_runs: Sequence = (),
                          prepared: dict | None = None) -> None:
    """The user errors an ensemble can meet, raised before any unit trains.

    Members not among the batch's models; members whose label sets differ (from the prepared
    data of the models about to run); a resume's finished member runs without validation
    predictions.
    """
    from benchmark.config import check_ensemble_models
    from benchmark.errors import BenchmarkError

    if config.ensemble is None:
        return
    check_ensemble_models(config, list(models))
    members = config.ensemble.members_of(list(models))
    if prepared:
        labels = {name: list(prepared[name].class_names) for name in members if name in prepared}
        distinct = {tuple(value) for value in labels.values()}
        if len(distinct) > 1:
            shown = "; ".join(f"{name}: {', '.join(value)}" for name, value in labels.items())
            raise BenchmarkError(f"ensemble members have different label sets ({shown})")
    if done_runs:
        from mlflow import MlflowClient

        require_validation_predictions(MlflowClient(), [run for run in done_runs
                                                        if run.data.tags.get("model") in members])
