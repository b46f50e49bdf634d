"""Search spaces: from the experiment file's typed distributions to Optuna suggestions."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from benchmark.config import TRAINING_KEYS, Distribution, ExperimentConfig
from benchmark.errors import BenchmarkError


def search_space(config: ExperimentConfig, model_name: str) -> dict[str, Distribution]:
    """The experiment's ``[tuning.<model>]`` space, else the model's registered default space."""
    from benchmark.models import get_model_spec

    given = config.tuning.spaces.get(model_name)
    if given is not None:
        return given
    space = {name: Distribution.model_validate(spec)
             for name, spec in get_model_spec(config.architecture_of(model_name)).search_space.items()}
    if not space:
        raise BenchmarkError(
            f"model {model_name!r} has no default search space; give one as [tuning.{model_name}]"
        )
    return space


def suggest(trial, space: Mapping[str, Distribution]) -> dict[str, Any]:
    """Draw one value per hyperparameter from ``trial``.

    Optuna's categorical choices must be scalars, so list-valued choices (``filters = [16, 32]``)
    are offered as their JSON text and decoded after the draw.
    """
    values = {}
    for name, spec in space.items():
        if spec.type == "float":
            values[name] = trial.suggest_float(name, spec.low, spec.high, log=spec.log, step=spec.step)
        elif spec.type == "int":
            values[name] = trial.suggest_int(name, int(spec.low), int(spec.high),
                                             step=int(spec.step or 1), log=spec.log)
        else:
            labels = [_label(choice) for choice in spec.choices]
            values[name] = _unlabel(trial.suggest_categorical(name, labels))
    return values


def split_training_keys(values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Separate training settings (epochs, batch size, learning rate) from model hyperparameters."""
    training = {key: value for key, value in values.items() if key in TRAINING_KEYS}
    hyperparameters = {key: _as_hp(value) for key, value in values.items() if key not in TRAINING_KEYS}
    return training, hyperparameters


def decode_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """A stored trial's parameters with list-valued choices decoded again."""
    return {name: _unlabel(value) for name, value in params.items()}


def _label(choice: Any) -> Any:
    return json.dumps(choice) if isinstance(choice, (list, tuple)) else choice


def _unlabel(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("["):
        return json.loads(value)
    return value


def _as_hp(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value
