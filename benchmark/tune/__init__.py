"""Hyperparameter tuning with Optuna over the same training code as ``run``.

:func:`tune_model` is what ``python -m benchmark tune`` calls.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from benchmark.config import ExperimentConfig
from benchmark.errors import BenchmarkError
from benchmark.redaction import redact

log = logging.getLogger(__name__)


@dataclass
class TuneOutcome:
    """What a tuning invocation did and found."""

    study_name: str
    #: Where the study lives, as it may be shown: a URL's password is ``***``.
    storage: str
    trials_before: int
    trials_after: int
    best_value: float | None
    best_params: dict
    best_trial: int | None
    tuned_experiment: Path | None
    parent_run_id: str
    summary: object  # pandas DataFrame of every trial


def tune_model(
    config: ExperimentConfig,
    model_name: str,
    *,
    trials: int,
    timeout: float | None = None,
    study_name: str | None = None,
    storage: str | None = None,
    jobs: int = 1,
    tracking_uri: str | None = None,
    export_dir: Path | None = None,
    ray=None,
) -> TuneOutcome:
    """Add ``trials`` trials to the model's study (created or resumed) and export the best.

    Validates the search space and prepares the data before any trial runs, so a typo or a
    missing data folder fails at once. The storage URL's password (a PostgreSQL storage) is
    redacted wherever it is shown or stored: log lines, the parent run's tag, the exported file.
    ``ray`` (:class:`benchmark.distributed.RayOptions`) runs the ``jobs`` workers as Ray tasks.
    """
    import optuna

    from benchmark import tracking
    from benchmark.data.prepare import prepare_models
    from benchmark.models import get_model_spec
    from benchmark.provenance import provenance_tags
    from benchmark.tune.export import study_figures, write_tuned_experiment
    from benchmark.tune.space import decode_params, search_space
    from benchmark.tune.study import WorkerTask, default_storage, load_study, run_workers

    if trials < 1 or jobs < 1:
        raise BenchmarkError("--trials and --jobs must be at least 1")
    if timeout is not None and not timeout > 0:  # 0 would start no trial at all
        raise BenchmarkError(f"--timeout must be a positive number of seconds, got {timeout:g}")
    get_model_spec(config.architecture_of(model_name))
    space = search_space(config, model_name)
    study_name = study_name or f"{config.name}-{model_name}"
    storage = storage or default_storage()
    shown_storage = redact(storage)  # the real URL only ever goes to Optuna itself
    uri = tracking.resolve_tracking_uri(tracking_uri)
    tracking.connect(uri)
    experiment_id = tracking.ensure_experiment(f"{config.name}-tuning", uri)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = load_study(config, study_name, storage)
    before = len(study.trials)
    log.info("study %r in %s: %d trials so far; adding %d (%s over %s)", study_name, shown_storage,
             before, trials, config.tuning.metric, ", ".join(space))
    # Once here, with a progress bar, so that worker processes find every spectrogram cached.
    prepared = prepare_models(config, [model_name])[model_name]
    tags = {"model": model_name, "run_kind": "tune", "study": study_name, "storage": shown_storage,
            "experiment": config.name, **provenance_tags()}
    with tracking.tracked_run(experiment_id, f"tune-{model_name}", tags) as parent_run_id:
        tracking.log_params(config.flat() | {"tune.trials": trials, "tune.jobs": jobs,
                                             "tune.timeout": timeout})
        tracking.log_dict({name: spec.model_dump() for name, spec in space.items()}, "search_space.json")
        run_workers(
            WorkerTask(config, model_name, study_name, storage, uri, experiment_id, parent_run_id,
                       trials, timeout, sampler_seed=sampler_seed(config, before)),
            jobs,
            prepared,
            ray,
        )
        study = load_study(config, study_name, storage)
        summary = _trials_table(study)
        best = study.best_trial if _has_complete_trial(study) else None
        tuned_experiment = None
        if best is not None:
            best_params = decode_params(best.params)
            tracking.log_metrics({f"best_{config.tuning.metric}": best.value})
            tracking.log_dict({"trial": best.number, "value": best.value, "params": best_params},
                              "best_params.json")
            tuned_experiment = write_tuned_experiment(
                config, model_name, best_params, study_name=study_name, storage=shown_storage,
                trial_number=best.number, value=best.value,
                folder=export_dir or Path.cwd() / "experiments",
            )
        for name, figure in study_figures(study):
            tracking.log_figure(figure, name)
        tracking.log_artifact_text(summary.to_csv(index=False), "trials.csv")
    return TuneOutcome(
        study_name=study_name,
        storage=shown_storage,
        trials_before=before,
        trials_after=len(study.trials),
        best_value=None if best is None else best.value,
        best_params={} if best is None else best_params,
        best_trial=None if best is None else best.number,
        tuned_experiment=tuned_experiment,
        parent_run_id=parent_run_id,
        summary=summary,
    )


def sampler_seed(config: ExperimentConfig, trials_so_far: int) -> int:
    """The first worker's sampler seed: the experiment's first seed, moved on by the trials the
    study holds already, so that resuming a study does not propose its first trials again."""
    from benchmark.config import MAX_SEED

    return (config.run.seeds[0] + trials_so_far) % (MAX_SEED + 1)


def _has_complete_trial(study) -> bool:
    import optuna

    return any(trial.state == optuna.trial.TrialState.COMPLETE for trial in study.trials)


def _trials_table(study):
    """Every trial: number, state, value, duration and parameters (pandas DataFrame)."""
    columns = ("number", "state", "value", "duration", "params_*", "user_attrs_fail_reason")
    frame = study.trials_dataframe(attrs=("number", "state", "value", "duration", "params", "user_attrs"))
    keep = [c for c in frame.columns if c in columns or c.startswith("params_")]
    frame = frame[keep].copy()
    if "duration" in frame:
        frame["duration"] = frame["duration"].dt.total_seconds().round(1)
    return frame.rename(columns=lambda c: c.removeprefix("params_").removeprefix("user_attrs_"))
