"""One Optuna trial: draw hyperparameters, train on the training split, score on validation.

Test data is never touched here: the objective is a validation metric, and the test split is
scored only when the winner is retrained with ``run``.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, replace

import keras
import optuna

from benchmark import tracking
from benchmark.config import ExperimentConfig
from benchmark.data.prepare import PreparedData
from benchmark.models import resolve_hyperparameters
from benchmark.tune.space import search_space, split_training_keys, suggest
from benchmark.unit import Unit, fit_and_score, model_setup

log = logging.getLogger(__name__)


class PruningCallback(keras.callbacks.Callback):
    """Reports the validation metric to the trial each epoch; stops training when Optuna prunes."""

    def __init__(self, trial: optuna.Trial, metric: str):
        super().__init__()
        self.trial = trial
        self.metric = metric
        self.pruned_at: int | None = None

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.metric)
        if value is None or not math.isfinite(value):
            return
        self.trial.report(float(value), step=epoch)
        if self.trial.should_prune():
            self.pruned_at = epoch
            if self.model is not None:  # a learner without epochs reports once and has nothing to stop
                self.model.stop_training = True


class TrialFailed(Exception):
    """A trial that could not produce a value; Optuna records it as FAIL with this reason."""


@dataclass
class Objective:
    """Callable objective over one model; picklable so worker processes can rebuild it."""

    config: ExperimentConfig
    prepared: PreparedData
    model_name: str
    experiment_id: str
    parent_run_id: str
    study_name: str

    def __call__(self, trial: optuna.Trial) -> float:
        trial.set_user_attr("worker_pid", os.getpid())  # provenance: which worker process ran it
        metric = self.config.tuning.metric
        values = suggest(trial, search_space(self.config, self.model_name))
        training_overrides, hp_overrides = split_training_keys(values)
        given = self.config.model_settings(self.model_name).hyperparameters
        training = self.config.training_for(self.model_name).model_copy(update=training_overrides)
        seed = self.config.run.seeds[0]
        tags = {"model": self.model_name, "run_kind": "tune_trial", "study": self.study_name,
                "trial_number": str(trial.number), "seed": str(seed)}
        outcome, reason, value = "complete", "", float("nan")
        with tracking.tracked_run(self.experiment_id, f"trial-{trial.number}", tags,
                                  parent_run_id=self.parent_run_id):
            tracking.log_params(values | {"trial_number": trial.number})
            pruning = PruningCallback(trial, metric)
            try:
                entry = model_setup(self.config, self.model_name)
                setup = replace(entry, training=training, hyperparameters=resolve_hyperparameters(
                    entry.architecture, {**given, **hp_overrides}))
                # Tuning sees the first split's train and validation data only (fold 0 under
                # kfold): the test tracks stay unseen until the tuned model is run.
                result = fit_and_score(self.config, self.prepared, Unit(self.model_name, seed, 0), setup=setup,
                                       callbacks=[pruning, tracking.epoch_logger()], score_test=False,
                                       label=f"{self.model_name} trial {trial.number}")
            except Exception as error:  # noqa: BLE001  any failure is the trial's, not the study's
                outcome, reason = "failed", f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
            else:
                if pruning.pruned_at is not None:
                    outcome, reason = "pruned", f"pruned after epoch {pruning.pruned_at + 1}"
                else:
                    value = result.fit.history[metric][-1]
                    tracking.log_metrics({"objective": value})
            tracking.set_tags({"trial_state": outcome, "trial_reason": reason})
        keras.utils.clear_session(free_memory=True)
        if outcome == "failed":
            trial.set_user_attr("fail_reason", reason)
            raise TrialFailed(reason)
        if outcome == "pruned":
            raise optuna.TrialPruned(reason)
        return value
