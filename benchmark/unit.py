"""One unit of work: fit one model with one seed on one split, then score it. No MLflow here.

:func:`fit_and_score` is what every run goes through, whatever the model is: the runner wraps
it in an MLflow run (:func:`benchmark.runner.run_unit`), the tuner's objective calls it on the
training and validation inputs alone, the tests call it directly. It returns a
:class:`RunResult`: plain values that :func:`benchmark.tracking.log_run` records and
:mod:`benchmark.artifacts` writes as files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from benchmark.config import EPOCH_TRAINING_OPTIONS, ExperimentConfig, TrainConfig
from benchmark.data.split import SPLIT_NAMES
from benchmark.errors import BenchmarkError
from benchmark.profiling import stage

if TYPE_CHECKING:
    from benchmark.data.prepare import PreparedData, SplitData
    from benchmark.evaluate import Evaluation
    from benchmark.models import Estimator, FitReport


@dataclass(frozen=True)
class Unit:
    """One run of a batch: a model entry, a seed, and which split of the plan (0 without folds).

    The entry is the experiment's name for the model (``crnn-mfcc``); its architecture, the
    registered model it builds, may differ (``crnn``).
    """

    model: str
    seed: int
    split_index: int = 0


class UnitFailed(Exception):
    """A unit's error, with the MLflow run it failed in (None where it failed before one started)."""

    def __init__(self, error: Exception, run_id: str | None):
        super().__init__(str(error))
        self.error, self.run_id = error, run_id


@dataclass(frozen=True)
class ModelSetup:
    """A model entry's effective settings: architecture, hyperparameters, training values, input."""

    hyperparameters: Mapping[str, Any]
    training: TrainConfig
    architecture: str = ""
    #: The input representation as reports name it (``logmel``, ``handcrafted``, ...).
    representation: str = ""
    #: Which training settings the model uses (a classical learner: none).
    training_keys: tuple[str, ...] = ("epochs", "batch_size", "learning_rate")

    @property
    def training_settings(self) -> dict[str, Any]:
        """The training settings the model uses, as plain values: its :attr:`training_keys`, and
        for a model that trains in epochs the ``[train]`` options of every such model."""
        keys = [*self.training_keys, *(EPOCH_TRAINING_OPTIONS if "epochs" in self.training_keys else ())]
        values = self.training.model_dump(mode="json")
        return {key: values[key] for key in keys}

    def describe(self) -> str:
        """One line of every value, as a batch prints it before it starts."""
        training = self.training_settings
        if "early_stopping" in training:
            training["early_stopping"] = self.training.early_stopping.describe()
        values = {"architecture": self.architecture, "input": self.representation, **training,
                  **self.hyperparameters}
        return ", ".join(f"{key}={_plain(value)}" for key, value in values.items() if value != "")


def model_setup(config: ExperimentConfig, model_name: str) -> ModelSetup:
    """The hyperparameters (defaults filled in), training settings and input a model entry runs with."""
    from benchmark.models import get_model_spec, resolve_hyperparameters

    architecture = config.architecture_of(model_name)
    hyperparameters = resolve_hyperparameters(architecture, config.model_settings(model_name).hyperparameters)
    return ModelSetup(hyperparameters, config.training_for(model_name), architecture,
                      config.features_for(model_name).describe,
                      tuple(get_model_spec(architecture).adapter.training_keys))


@dataclass
class RunResult:
    """What one unit produced: the fitted estimator, how fitting went and its test scores."""

    unit: Unit
    setup: ModelSetup
    estimator: Estimator
    fit: FitReport
    #: Test-set scores; None where the test split was not touched (tuning trials).
    evaluation: Evaluation | None
    prepared: PreparedData = field(repr=False)
    data: SplitData = field(repr=False)
    #: The same scores on the validation clips (``validation_predictions.csv``, from which an
    #: ensemble is chosen); None where the test split was not touched or there are none.
    validation: Evaluation | None = None

    @property
    def metrics(self) -> dict[str, float]:
        """The run-level metrics: test scores, size, time, epochs, last validation accuracy."""
        scores = {} if self.evaluation is None else self.evaluation.metrics
        return {f"test_{key}": value for key, value in scores.items()} | {
            "parameters": self.estimator.count_params(),
            "train_seconds": self.fit.seconds,
            "epochs_run": self.fit.epochs_run,
            "final_val_accuracy": self.fit.history.get("val_accuracy", [float("nan")])[-1],
        } | self._early_stopping_metrics()

    def _early_stopping_metrics(self) -> dict[str, float]:
        """Where early stopping ran: the best epoch (whose weights were scored), its validation
        accuracy, and the epoch training stopped at (``epochs_run`` when it ran them all)."""
        if self.fit.best_epoch is None:
            return {}
        accuracy = self.fit.history.get("val_accuracy", [])
        best = {"best_val_accuracy": accuracy[self.fit.best_epoch - 1]} if len(accuracy) >= self.fit.best_epoch else {}
        return {"best_epoch": self.fit.best_epoch, "stopped_epoch": self.fit.stopped_epoch or self.fit.epochs_run,
                **best}

    @property
    def preprocessing(self) -> dict:
        """The ``preprocessing.json`` that turns audio into this estimator's inputs."""
        from benchmark.data.preprocessing import preprocessing_config

        standardizer = self.data.standardizer
        return preprocessing_config(
            self.prepared.params, segmenting=self.prepared.segmenting, vote=self.prepared.vote,
            normalisation=standardizer.to_dict() if standardizer else None,
            handcrafted_input=self.prepared.handcrafted is not None,
        )


def fit_and_score(
    config: ExperimentConfig,
    prepared: PreparedData,
    unit: Unit,
    *,
    setup: ModelSetup | None = None,
    callbacks: Sequence[Any] = (),
    score_test: bool = True,
    label: str | None = None,
) -> RunResult:
    """Fit ``unit``'s model on its split's training inputs (validation watched), then score it.

    ``setup`` replaces the experiment's settings for the model (a tuning trial's draw).
    ``score_test=False`` leaves the test split untouched: tuning selects on validation only.
    ``label`` names the run in log lines (default: ``<model> seed <seed>[ fold <k>]``).
    A loss that became NaN or infinite is a :class:`BenchmarkError`.
    """
    from benchmark.data.inputs import shape_of
    from benchmark.evaluate import evaluate_model
    from benchmark.models import create_estimator

    setup = setup or model_setup(config, unit.model)
    data = prepared.split(unit.split_index)
    train, valid, test = (data.subset(name) for name in SPLIT_NAMES)
    label = label or run_label(unit, data)
    estimator = create_estimator(setup.architecture or unit.model, shape_of(train.x), len(prepared.class_names),
                                 **setup.hyperparameters)
    with stage("fit", unit.model):
        fit = estimator.fit(train.x, train.y, valid.x, valid.y, training=setup.training, seed=unit.seed,
                            callbacks=callbacks, label=label)
    if not fit.finite:
        raise BenchmarkError(f"{label}: {nonfinite_reason(fit, setup.training)}")
    evaluation = validation = None
    if score_test:
        with stage("evaluate", unit.model):
            evaluation = evaluate_model(estimator, test.x, test.y, prepared.class_names,
                                        clips=test.track_indices, vote=prepared.vote,
                                        batch_size=setup.training.batch_size)
            validation = _score_validation(estimator, valid, prepared, setup)
    return RunResult(unit, setup, estimator, fit, evaluation, prepared, data, validation)


def _score_validation(estimator, valid, prepared: PreparedData, setup: ModelSetup) -> Evaluation | None:
    """The fitted model's per-clip scores on the validation clips, voted as the test clips are.

    After the test scoring, and inference only: the run's own results do not change.
    """
    from benchmark.evaluate import evaluate_model

    if len(valid.y) == 0:
        return None
    return evaluate_model(estimator, valid.x, valid.y, prepared.class_names, clips=valid.track_indices,
                          vote=prepared.vote, batch_size=setup.training.batch_size)


def nonfinite_reason(fit: FitReport, training: TrainConfig) -> str:
    """Why a fit whose loss became NaN or infinite failed, naming the epoch and batch (1-based)
    where known, and what to change."""
    epoch, batch = fit.nonfinite_at or (fit.epochs_run, None)
    where = f"at epoch {epoch}" + (f", batch {batch}" if batch else "")
    # float16's largest value is 65504: activations overflow where bfloat16's (float32's range) do not.
    remedy = ("set mixed_precision to \"bfloat16\" or false, or lower the learning rate"
              if training.mixed_precision in (True, "float16") else "lower the learning rate")
    return f"the loss became NaN or infinite {where}; {remedy}"


def run_label(unit: Unit, data: SplitData) -> str:
    """``cnn2d seed 0`` (``... fold 3`` under k-fold), for log lines."""
    return f"{unit.model} seed {unit.seed}" + ("" if data.fold is None else f" fold {data.fold}")


def run_name(unit: Unit, data: SplitData) -> str:
    """The MLflow run name: ``cnn2d-seed0`` (``-fold3`` under k-fold)."""
    return f"{unit.model}-seed{unit.seed}" + ("" if data.fold is None else f"-fold{data.fold}")


def run_tags(config: ExperimentConfig, prepared: PreparedData, unit: Unit, data: SplitData) -> dict[str, str]:
    """What identifies a run: model, seed, fold, experiment, data fingerprint and split."""
    return {
        "model": unit.model,
        "architecture": config.architecture_of(unit.model),
        "model_kind": kind_of(config.architecture_of(unit.model)),
        "representation": config.features_for(unit.model).describe,
        "seed": str(unit.seed),
        "experiment": config.name,
        "data_fingerprint": prepared.features.fingerprint,
        "split_protocol": prepared.plan.protocol,
        "split_hash": data.split_hash,
        "duplicates_across_splits": str(len(prepared.duplicates_in(data))),
        **({} if data.fold is None else {"fold": str(data.fold)}),
    }


def run_params(config: ExperimentConfig, prepared: PreparedData, data: SplitData, setup: ModelSetup) -> dict:
    """What a run is: the whole config, the model's resolved hyperparameters, the data's shape."""
    from benchmark.data.inputs import shape_of

    sizes = {name: len(data.split.indices(name)) for name in SPLIT_NAMES}
    inputs = {name: len(data.subset(name).y) for name in SPLIT_NAMES}
    return (
        config.flat()
        | {f"hp.{key}": value for key, value in setup.hyperparameters.items()}
        | {f"effective.{key}": value for key, value in setup.training.model_dump().items()}
        | {f"effective.features.{key}": value for key, value in asdict(prepared.params).items()}
        | {f"tracks.{name}": size for name, size in sizes.items()}
        | {f"inputs.{name}": size for name, size in inputs.items()}
        | {"tracks.skipped": len(prepared.features.skipped),
           "tracks.listed_but_missing": len(prepared.plan.missing),
           "tracks.unlisted": len(prepared.plan.unlisted),
           "split.fold_index": "" if data.fold is None else data.fold,
           "input_shape": str(shape_of(data.subset("train").x)),
           "n_classes": len(prepared.class_names)}
    )


def kind_of(architecture: str) -> str:
    """The registered model's kind: ``network``, ``classical``, ..."""
    from benchmark.models import get_model_spec

    return get_model_spec(architecture).kind


def _plain(value: Any) -> str:
    return "[" + ", ".join(map(str, value)) + "]" if isinstance(value, (tuple, list)) else str(value)
