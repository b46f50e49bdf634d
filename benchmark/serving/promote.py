"""``promote``: register the best run of a batch in the MLflow Model Registry as the champion.

The best run is chosen among the batch's finished training runs that carry an audio model
(tag ``audio_model_uri``), by one metric: higher is better, except for losses, times and sizes.
Its audio model becomes a new version of ``genre-classifier`` and the alias ``champion`` moves
to that version, so ``models:/genre-classifier@champion`` always names the promoted model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from benchmark import tracking
from benchmark.errors import BenchmarkError

REGISTERED_MODEL = "genre-classifier"
CHAMPION_ALIAS = "champion"
DEFAULT_METRIC = "test_accuracy"


@dataclass(frozen=True)
class Promotion:
    """What ``promote`` did: the chosen run, why it won, and the registered version."""

    experiment: str
    batch_id: str
    run_id: str
    run_name: str
    network: str
    metric: str
    value: float
    lower_is_better: bool
    candidates: int
    registered_model: str
    version: str
    alias: str


def lower_is_better(metric: str) -> bool:
    """Losses, times (``*_ms*``, ``*seconds``) and sizes are better small; scores better large."""
    return metric.endswith(("loss", "seconds")) or "_ms" in metric or metric == "parameters"


def promote(
    experiment: str | None = None,
    *,
    batch_id: str | None = None,
    metric: str = DEFAULT_METRIC,
    tracking_uri: str | None = None,
    registered_model: str = REGISTERED_MODEL,
    model: str | None = None,
) -> Promotion:
    """Register the best audio model of a batch as champion.

    The batch is ``batch_id`` of ``experiment``; by default the latest batch, of the experiment
    of the most recent training run when ``experiment`` is None too; ``model`` keeps only that
    model's runs (``ensemble``: the batch's ensembles).
    """
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    tracking.open_existing_store(tracking_uri)
    client = MlflowClient()
    batch = tracking.find_batch(experiment, batch_id)
    experiment, batch_id = batch.experiment_name, batch.batch_id
    candidates = client.search_runs([batch.experiment_id],
                                    filter_string=tracking.batch_runs_filter(batch_id, finished=True))
    candidates = [run for run in candidates if run.data.tags.get("audio_model_uri")]
    if model is not None:  # one model's runs: ``ensemble`` promotes the batch's best ensemble
        models = sorted({run.data.tags.get("model", "") for run in candidates})
        candidates = [run for run in candidates if run.data.tags.get("model") == model]
        if not candidates:
            raise BenchmarkError(f"batch {batch_id!r} has no finished run of model {model!r} with an audio model "
                                 f"(models: {', '.join(models) or 'none'})")
    if not candidates:
        raise BenchmarkError(
            f"batch {batch_id!r} of experiment {experiment!r} has no finished run with an audio model "
            "(runs logged before audio models existed have none: train again)"
        )
    best = best_run(candidates, metric)
    value = best.data.metrics[metric]
    try:
        version = mlflow.register_model(
            best.data.tags["audio_model_uri"], registered_model,
            tags={"batch_id": batch_id, "model": best.data.tags.get("model", ""),
                  "selected_by": metric, metric: str(value)},
        )
        client.set_registered_model_alias(registered_model, CHAMPION_ALIAS, version.version)
    except MlflowException as error:
        raise BenchmarkError(f"cannot register the model: {error.message.splitlines()[0]}") from None
    return Promotion(
        experiment=experiment, batch_id=batch_id, run_id=best.info.run_id,
        run_name=best.info.run_name, network=best.data.tags.get("model", "?"), metric=metric,
        value=value, lower_is_better=lower_is_better(metric), candidates=len(candidates),
        registered_model=registered_model, version=str(version.version), alias=CHAMPION_ALIAS,
    )


def best_run(runs: list, metric: str):
    """The run with the best value of ``metric``; runs without it (or with NaN) are left out.

    Ties go to the earliest-started run, so promoting the same batch twice picks the same run.
    """
    scored = [run for run in runs if math.isfinite(run.data.metrics.get(metric, math.nan))]
    if not scored:
        known = sorted({name for run in runs for name in run.data.metrics})
        raise BenchmarkError(
            f"no run of the batch has metric {metric!r}; metrics: {', '.join(known) or 'none'}"
        )
    sign = 1.0 if lower_is_better(metric) else -1.0
    return min(scored, key=lambda run: (sign * run.data.metrics[metric], run.info.start_time))
