"""Running an Optuna study over one model: storage, resume, parallel workers, tracking, export.

One parent MLflow run per invocation (in the experiment ``<name>-tuning``), one nested child
run per trial. The study lives in a persistent storage, so running the same command again
resumes it: ``--trials N`` always means N *more* trials.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from benchmark.config import ExperimentConfig
from benchmark.errors import BenchmarkError
from benchmark.paths import mlruns_dir
from benchmark.redaction import redact

log = logging.getLogger(__name__)

JOURNAL_NAME = "optuna-journal.log"


def default_storage() -> str:
    """A journal file under ``mlruns/``: safe for several local worker processes at once."""
    return str(mlruns_dir() / JOURNAL_NAME)


def open_storage(url: str):
    """An Optuna storage for ``url``: any SQLAlchemy URL (sqlite, postgresql, ...) or a journal file path."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    if "://" in url:
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True})
        except Exception as error:  # noqa: BLE001  drivers raise their own types
            # Redacted: the URL (and a driver's message quoting it) may hold a password.
            reason = redact(str(error).splitlines()[0])
            raise BenchmarkError(f"cannot open Optuna storage {redact(url)}: {reason}") from None
    path = Path(url).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


def make_pruner(config: ExperimentConfig):
    """The pruner the experiment asks for."""
    import optuna

    tuning = config.tuning
    if tuning.pruner == "none":
        return optuna.pruners.NopPruner()
    if tuning.pruner == "threshold":
        if tuning.prune_below is None:
            raise BenchmarkError("tuning.pruner = 'threshold' needs tuning.prune_below")
        bound = {"upper" if tuning.metric == "val_loss" else "lower": tuning.prune_below}
        return optuna.pruners.ThresholdPruner(**bound, n_warmup_steps=tuning.pruner_warmup_epochs)
    return optuna.pruners.MedianPruner(
        n_startup_trials=tuning.pruner_startup_trials, n_warmup_steps=tuning.pruner_warmup_epochs
    )


def load_study(config: ExperimentConfig, study_name: str, storage_url: str, *, sampler_seed: int | None = None):
    """Create the study, or load it to resume; the sampler is TPE seeded with ``sampler_seed``
    (default: the experiment's first seed)."""
    import optuna

    direction = "minimize" if config.tuning.metric == "val_loss" else "maximize"
    seed = config.run.seeds[0] if sampler_seed is None else sampler_seed
    try:
        study = optuna.create_study(
            storage=open_storage(storage_url),
            study_name=study_name,
            direction=direction,
            sampler=optuna.samplers.TPESampler(seed=seed),
            pruner=make_pruner(config),
            load_if_exists=True,
        )
    except ValueError as error:
        raise BenchmarkError(f"study {study_name!r}: {error}") from None
    # Optuna resumes an existing study in its own direction, whatever is asked: tuning on
    # val_loss a study that maximised val_accuracy would maximise the loss.
    found = study.direction.name.lower()
    if found != direction:
        raise BenchmarkError(
            f"study {study_name!r} exists and optimises in the other direction ({found}, not {direction} "
            f"for {config.tuning.metric}); pass another --study name or the metric it was created with"
        )
    return study


@dataclass
class WorkerTask:
    """Everything a worker process needs to add its share of trials to the study."""

    config: ExperimentConfig
    model_name: str
    study_name: str
    storage_url: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    trials: int
    timeout: float | None
    #: This worker's sampler seed (:func:`worker_tasks`).
    sampler_seed: int


def run_worker(task: WorkerTask, prepared=None) -> int:
    """Add ``task.trials`` trials to the study (in this process); returns how many ran.

    ``prepared`` is the experiment's data when the caller has it; a worker process loads its
    own copy (from the feature cache the caller filled). In a worker process, SIGTERM (the
    command stopping its workers) stops the trial in flight as Ctrl-C would: the trial is
    recorded FAIL and its MLflow run KILLED, and the worker returns.
    """
    import optuna

    from benchmark import interrupts, tracking
    from benchmark.data.prepare import prepare_models
    from benchmark.tune.objective import Objective

    in_worker = multiprocessing.current_process().name != "MainProcess"
    if in_worker:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    # Our own line per trial says what Optuna's INFO lines would, and more.
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    quiet_about_interrupted_trials()
    tracking.connect(task.tracking_uri)
    study = load_study(task.config, task.study_name, task.storage_url, sampler_seed=task.sampler_seed)
    prepared = prepared or prepare_models(task.config, [task.model_name], progress=False)[task.model_name]
    objective = Objective(task.config, prepared, task.model_name, task.experiment_id,
                          task.parent_run_id, task.study_name)
    before = len(study.trials)
    with warnings.catch_warnings(), (interrupts.handled() if in_worker else contextlib.nullcontext()):
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            study.optimize(objective, n_trials=task.trials, timeout=task.timeout,
                           catch=(Exception,), callbacks=[_report_trial], gc_after_trial=True)
        except KeyboardInterrupt:
            if not in_worker:
                raise
            # Stopped by the command: it knows; an Interrupted would not even unpickle there.
            log.info("tuning worker %d stopped", os.getpid())
    return len(study.trials) - before


def worker_tasks(task: WorkerTask, jobs: int) -> list[WorkerTask]:
    """``task`` split over ``jobs`` workers: their shares of the trials, and a sampler seed each.

    Workers seeded alike propose the same parameters, trial for trial: worker ``i`` gets
    ``task.sampler_seed + i``, so a study stays reproducible for a given seed and number of jobs.
    """
    from dataclasses import replace

    from benchmark.config import MAX_SEED

    shares = [task.trials // jobs + (1 if index < task.trials % jobs else 0) for index in range(jobs)]
    return [replace(task, trials=share, sampler_seed=(task.sampler_seed + index) % (MAX_SEED + 1))
            for index, share in enumerate(shares) if share]


def run_workers(task: WorkerTask, jobs: int, prepared, ray=None) -> None:
    """Run the study's new trials in this process, or split them over ``jobs`` spawned processes
    (``ray``: :class:`benchmark.distributed.RayOptions`, over ``jobs`` Ray tasks).

    Worker processes never outlive the command: Ctrl-C or SIGTERM stops the trials in flight
    and the workers at once (:func:`benchmark.data.parallel.map_in_processes`).
    """
    tasks = worker_tasks(task, jobs)
    if ray is not None:
        from benchmark.distributed import run_tuning_workers

        run_tuning_workers(run_worker, tasks, prepared, ray)
        return
    if len(tasks) == 1:
        run_worker(tasks[0], prepared)
        return
    from benchmark.data.parallel import map_in_processes

    map_in_processes(run_worker, tasks, workers=len(tasks), progress=False)


class _InterruptedTrialFilter(logging.Filter):
    """Drops Optuna's "Trial N failed" record, with its traceback, for a trial that Ctrl-C or
    SIGTERM stopped: the command says "interrupted" in one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], KeyboardInterrupt))


def quiet_about_interrupted_trials() -> None:
    """Install :class:`_InterruptedTrialFilter` on Optuna's log handlers (once)."""
    for handler in logging.getLogger("optuna").handlers:
        if not any(isinstance(existing, _InterruptedTrialFilter) for existing in handler.filters):
            handler.addFilter(_InterruptedTrialFilter())


def _report_trial(study, trial) -> None:
    """The live line per finished trial: number, state, value, best so far."""
    import optuna

    value = "" if trial.value is None else f" {trial.value:.4f}"
    reason = trial.user_attrs.get("fail_reason") or trial.system_attrs.get("fail_reason", "")
    try:
        best = f"best {study.best_value:.4f} (trial {study.best_trial.number})"
    except ValueError:
        best = "no complete trial yet"
    state = trial.state.name.lower()
    note = f" ({reason})" if reason and trial.state == optuna.trial.TrialState.FAIL else ""
    log.info("trial %d %s%s%s; %s", trial.number, state, value, note, best)
