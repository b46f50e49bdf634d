"""Name -> builder registry for the networks, in the style of timm's ``register_model``.

A builder is ``build(input_shape, n_classes, **hp) -> keras.Model`` with a module-level
``DEFAULTS`` dict holding the paper's hyperparameters: the one place they are written down, since
:func:`create_model` always passes every hyperparameter, defaults filled in. Registering it by name is all a new
architecture needs to be trained, tuned, reported and tested (the model tests are
parametrised over :func:`list_models`).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from benchmark.errors import BenchmarkError

Builder = Callable[..., Any]


@dataclass(frozen=True)
class ModelSpec:
    """A registered architecture: its builder, its default hyperparameters and a one-line summary."""

    name: str
    build: Builder
    defaults: Mapping[str, Any]
    summary: str
    #: The default Optuna search space, in the experiment file's ``[tuning.<model>]`` format.
    search_space: Mapping[str, Mapping[str, Any]]


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(
    name: str, defaults: Mapping[str, Any], search_space: Mapping[str, Mapping[str, Any]] | None = None
) -> Callable[[Builder], Builder]:
    """Decorator registering ``build`` under ``name`` with its defaults and default search space."""

    def decorator(build: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        summary = (build.__doc__ or "").strip().splitlines()[0] if build.__doc__ else ""
        _REGISTRY[name] = ModelSpec(
            name, build, MappingProxyType(dict(defaults)), summary,
            MappingProxyType(dict(search_space or {})),
        )
        return build

    return decorator


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style ``pattern``, sorted."""
    return sorted(name for name in _REGISTRY if fnmatch.fnmatch(name, pattern))


def get_model_spec(name: str) -> ModelSpec:
    """The registered spec for ``name``; an unknown name is a :class:`BenchmarkError` listing the valid ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise BenchmarkError(
            f"unknown model {name!r}; registered models: {', '.join(list_models())}"
        ) from None


def resolve_hyperparameters(name: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The model's defaults updated with ``overrides``; unknown names and ``None`` values handled.

    ``None`` values are dropped so a caller can pass "unset" through and the builder's own
    default stands. An unknown hyperparameter is a :class:`BenchmarkError` naming it, so a typo in
    an experiment file or a search space fails before any training starts.
    """
    spec = get_model_spec(name)
    given = {key: value for key, value in (overrides or {}).items() if value is not None}
    unknown = sorted(set(given) - set(spec.defaults))
    if unknown:
        raise BenchmarkError(
            f"unknown hyperparameter(s) {', '.join(unknown)} for model {name!r}; "
            f"known: {', '.join(sorted(spec.defaults))}"
        )
    for key, value in given.items():
        _check_type(name, key, value, spec.defaults[key])
    return {**spec.defaults, **given}


def _check_type(model: str, key: str, value: Any, default: Any) -> None:
    """A hyperparameter must have its default's type (an int may stand for a float)."""
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif isinstance(default, (tuple, list)):
        ok = isinstance(value, (tuple, list)) and all(
            isinstance(item, int) and not isinstance(item, bool) for item in value
        )
    else:
        ok = isinstance(value, type(default))
    if not ok:
        expected = "a list of integers" if isinstance(default, (tuple, list)) else type(default).__name__
        raise BenchmarkError(
            f"hyperparameter {key!r} of model {model!r} must be {expected}, got {value!r}"
        )


def create_model(name: str, input_shape: tuple[int, ...], n_classes: int, **hp: Any):
    """Build the registered network ``name`` for ``input_shape`` (without batch) and ``n_classes``."""
    spec = get_model_spec(name)
    hyperparameters = resolve_hyperparameters(name, hp)
    try:
        return spec.build(tuple(input_shape), n_classes, **hyperparameters)
    except ValueError as error:
        # Keras explains a too-small input (pooling to nothing) over many lines; keep the gist.
        message = re.sub(r"\x1b\[[0-9;]*m", "", str(error))  # Keras bolds its messages.
        reason = next((line.strip() for line in message.splitlines() if "size" in line.lower()),
                      message.strip().splitlines()[0])
        raise BenchmarkError(
            f"model {name!r} cannot be built for input shape {tuple(input_shape)}: {reason} "
            "(use a larger input or fewer/smaller blocks)"
        ) from None
