"""The pipeline of one experiment: prepared data -> train -> evaluate -> tracking.

``run_experiment`` is what ``run --all`` calls: it prepares the data once
(:mod:`benchmark.data.prepare`), then ``run_model`` trains and scores each (model, seed, fold)
in its own MLflow run and returns a plain dict, which is what the tests build on too.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmark.config import ExperimentConfig
from benchmark.data.prepare import FoldData, PreparedData, prepare_data
from benchmark.data.split import SPLIT_NAMES
from benchmark.errors import BenchmarkError

log = logging.getLogger(__name__)


def run_model(
    config: ExperimentConfig,
    prepared: PreparedData,
    model_name: str,
    seed: int,
    *,
    experiment_id: str,
    batch_id: str,
    fold: int = 0,
) -> dict:
    """Train and test one (model, seed, fold) inside its own MLflow run; returns its summary row."""
    from benchmark import tracking
    from benchmark.artifacts import write_run_artifacts
    from benchmark.evaluate import evaluate_model
    from benchmark.models import resolve_hyperparameters
    from benchmark.serving.preprocessing import preprocessing_config
    from benchmark.train import train_model

    hyperparameters = resolve_hyperparameters(model_name, config.model_settings(model_name).hyperparameters)
    training = config.training_for(model_name)
    data = prepared.fold(fold)
    train, valid, test = (data.subset(name) for name in SPLIT_NAMES)
    in_fold = "" if data.fold is None else f" fold {data.fold}"
    label = f"{model_name} seed {seed}{in_fold}"
    tags = {
        "run_kind": tracking.TRAINING_RUN,
        "model": model_name,
        "seed": str(seed),
        "experiment": config.name,
        "batch_id": batch_id,
        "data_fingerprint": prepared.features.fingerprint,
        "split_protocol": prepared.plan.protocol,
        "split_hash": data.split_hash,
        "duplicates_across_splits": str(len(prepared.duplicates_in(data))),
        **({} if data.fold is None else {"fold": str(data.fold)}),
        **tracking.provenance_tags(),
    }
    run_name = f"{model_name}-seed{seed}" + ("" if data.fold is None else f"-fold{data.fold}")
    with tracking.tracked_run(experiment_id, run_name, tags) as run_id:
        tracking.log_params(_run_params(config, prepared, data, hyperparameters, training))
        log.info("%s: training %d epochs on %d inputs of %d clips (run %s)", label, training.epochs,
                 len(train.y), len(data.split.train), run_id)
        result = train_model(
            model_name, hyperparameters, training,
            x_train=train.x, y_train=train.y, x_valid=valid.x, y_valid=valid.y,
            n_classes=len(prepared.class_names), seed=seed,
            callbacks=[tracking.epoch_logger()], label=label,
        )
        if not result.finite:
            raise BenchmarkError(f"{label}: the loss became non-finite; lower the learning rate")
        evaluation = evaluate_model(result.model, test.x, test.y, prepared.class_names, clips=test.clips,
                                    vote=config.evaluate.vote, batch_size=training.batch_size)
        parameters = int(result.model.count_params())
        tracking.log_metrics(
            {f"test_{key}": value for key, value in evaluation.metrics.items()}
            | {"parameters": parameters, "train_seconds": result.seconds,
               "epochs_run": result.epochs_run,
               "final_val_accuracy": result.history.get("val_accuracy", [float("nan")])[-1]}
        )
        preprocessing = preprocessing_config(
            prepared.params, segmenting=prepared.segmenting, vote=config.evaluate.vote,
            normalisation=data.standardizer.to_dict() if data.standardizer else None,
        )
        with tempfile.TemporaryDirectory(prefix="benchmark-run-") as folder:
            write_run_artifacts(
                Path(folder),
                title=f"{model_name} (seed {seed}{in_fold}) on {config.name}",
                class_names=prepared.class_names,
                evaluation=evaluation,
                history=result.history,
                test_tracks=[prepared.features.tracks[index] for index in evaluation.clips],
                y_test=evaluation.truth,
                encoder=prepared.encoder,
                skipped=prepared.features.skipped,
                split_summary=prepared.split_summary(data),
                config=config.model_dump(mode="json"),
                preprocessing=preprocessing,
                manifest=prepared.manifest,
            )
            tracking.log_artifacts(Path(folder))
        example = test.x[:2].astype(np.float32)
        model_uri = tracking.log_keras_model(
            result.model, example, np.asarray(result.model.predict(example, verbose=0), dtype=np.float32)
        )
        tracking.log_audio_model(result.model, preprocessing, prepared.class_names)
    log.info("%s: test accuracy %.4f, macro F1 %.4f", label, evaluation.metrics["accuracy"],
             evaluation.metrics["macro_f1"])
    return {
        "model": model_name,
        "seed": seed,
        "fold": data.fold,
        "test_accuracy": evaluation.metrics["accuracy"],
        "macro_f1": evaluation.metrics["macro_f1"],
        "parameters": parameters,
        "train_seconds": result.seconds,
        "run_id": run_id,
        "model_uri": model_uri,
    }


def _run_params(config, prepared: PreparedData, data: FoldData, hyperparameters: dict, training) -> dict:
    """What a run is: the whole config, the model's resolved hyperparameters, the data's shape."""
    sizes = {name: len(data.split.indices(name)) for name in SPLIT_NAMES}
    inputs = {name: len(data.subset(name).y) for name in SPLIT_NAMES}
    return (
        config.flat()
        | {f"hp.{key}": value for key, value in hyperparameters.items()}
        | {f"effective.{key}": value for key, value in training.model_dump().items()}
        | {f"tracks.{name}": size for name, size in sizes.items()}
        | {f"inputs.{name}": size for name, size in inputs.items()}
        | {"tracks.skipped": len(prepared.features.skipped),
           "tracks.listed_but_missing": len(prepared.plan.missing),
           "tracks.unlisted": len(prepared.plan.unlisted),
           "split.fold_index": "" if data.fold is None else data.fold,
           "input_shape": str(tuple(prepared.features.features.shape[1:])),
           "n_classes": len(prepared.class_names)}
    )


def run_experiment(
    config: ExperimentConfig,
    model_names: Sequence[str],
    *,
    tracking_uri: str | None = None,
    progress: bool = True,
) -> dict:
    """Run every (model, seed, fold) of an experiment as one batch; returns the batch id, URI and rows.

    Folds are the outer loop, so each fold's inputs are gathered (and normalised) once.
    """
    from benchmark import tracking

    uri = tracking.resolve_tracking_uri(tracking_uri)
    tracking.connect(uri)  # Before the slow part: a bad tracking URI fails in a second.
    experiment_id = tracking.ensure_experiment(config.name, uri)
    prepared = prepare_data(config, progress=progress)
    batch_id = tracking.new_batch_id()
    folds = len(prepared.plan.splits)
    log.info("batch %s: %s x seeds %s%s -> %s", batch_id, ", ".join(model_names),
             list(config.run.seeds), f" x {folds} folds" if folds > 1 else "", uri)
    rows = [
        run_model(config, prepared, name, seed, experiment_id=experiment_id, batch_id=batch_id, fold=fold)
        for fold in range(folds)
        for name in model_names
        for seed in config.run.seeds
    ]
    return {"batch_id": batch_id, "tracking_uri": uri, "experiment_id": experiment_id, "runs": rows,
            "protocol": prepared.plan.protocol}
