"""A batch: every (model, seed, fold) unit of an experiment, each in its own MLflow run.

``run_experiment`` is what ``run --all`` calls: it prepares the data once
(:mod:`benchmark.data.prepare`), prints each model's effective settings, then
:func:`run_unit` fits and scores each unit (:func:`benchmark.unit.fit_and_score`) inside its
MLflow run and logs the result (:func:`benchmark.tracking.log_run`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from benchmark.config import ExperimentConfig
from benchmark.data.prepare import PreparedData, prepare_models
from benchmark.unit import (
    ModelSetup,
    Unit,
    fit_and_score,
    model_setup,
    run_label,
    run_name,
    run_params,
    run_tags,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunSummary:
    """One finished unit as the summary table shows it."""

    model: str
    seed: int
    fold: int | None
    test_accuracy: float
    macro_f1: float
    parameters: int
    train_seconds: float
    run_id: str
    model_uri: str


@dataclass(frozen=True)
class BatchResult:
    """One ``run`` invocation: its batch id, where it was tracked, and a summary per unit."""

    batch_id: str
    tracking_uri: str
    experiment_id: str
    protocol: str
    runs: list[RunSummary]


def run_unit(config: ExperimentConfig, prepared: PreparedData, unit: Unit, *, experiment_id: str,
             batch_id: str, setup: ModelSetup | None = None) -> RunSummary:
    """Fit and score one unit inside its own MLflow run; returns its summary row.

    ``setup`` is the model entry's resolved settings, where the caller has them already.
    """
    from benchmark import tracking
    from benchmark.provenance import provenance_tags

    data = prepared.split(unit.split_index)
    setup = setup or model_setup(config, unit.model)
    tags = {"run_kind": tracking.TRAINING_RUN, **run_tags(config, prepared, unit, data), "batch_id": batch_id,
            **provenance_tags()}
    with tracking.tracked_run(experiment_id, run_name(unit, data), tags) as run_id:
        tracking.log_params(run_params(config, prepared, data, setup))
        tracking.log_data_inputs(prepared.source.name, prepared.source.uri, prepared.features.fingerprint)
        fitting = f"training {setup.training.epochs} epochs" if "epochs" in setup.training_keys else "fitting"
        log.info("%s: %s on %d inputs of %d clips (run %s)", run_label(unit, data), fitting,
                 len(data.subset("train").y), len(data.split.train), run_id)
        result = fit_and_score(config, prepared, unit, setup=setup, callbacks=[tracking.epoch_logger()])
        uris = tracking.log_run(result, config)
    metrics = result.evaluation.metrics
    log.info("%s: test accuracy %.4f, macro F1 %.4f", run_label(unit, data), metrics["accuracy"],
             metrics["macro_f1"])
    return RunSummary(
        model=unit.model, seed=unit.seed, fold=data.fold, test_accuracy=metrics["accuracy"],
        macro_f1=metrics["macro_f1"], parameters=result.estimator.count_params(),
        train_seconds=result.fit.seconds, run_id=run_id, model_uri=uris["model_uri"],
    )


def run_experiment(
    config: ExperimentConfig,
    model_names: Sequence[str],
    *,
    tracking_uri: str | None = None,
    progress: bool = True,
) -> BatchResult:
    """Run every (model, seed, fold) unit of an experiment as one batch.

    Folds are the outer loop, so each fold's inputs are gathered (and normalised) once.
    """
    from benchmark import tracking

    uri = tracking.resolve_tracking_uri(tracking_uri)
    tracking.connect(uri)  # Before the slow part: a bad tracking URI fails in a second.
    experiment_id = tracking.ensure_experiment(config.name, uri)
    setups = {name: model_setup(config, name) for name in model_names}
    prepared = prepare_models(config, model_names, progress=progress)
    first = prepared[model_names[0]]
    batch_id = tracking.new_batch_id()
    splits = len(first.plan.splits)
    log.info("batch %s: %s x seeds %s%s -> %s", batch_id, ", ".join(model_names),
             list(config.run.seeds), f" x {splits} folds" if splits > 1 else "", uri)
    for name, setup in setups.items():
        log.info("  %s: %s", name, setup.describe())
    runs = [
        run_unit(config, prepared[name], Unit(name, seed, index), experiment_id=experiment_id, batch_id=batch_id,
                 setup=setups[name])
        for index in range(splits)
        for name in model_names
        for seed in config.run.seeds
    ]
    return BatchResult(batch_id, uri, experiment_id, first.plan.protocol, runs)
