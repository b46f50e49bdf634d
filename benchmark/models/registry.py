"""Name -> model registry, in the style of timm's ``register_model``.

A model module registers a builder with ``@register_model(name, DEFAULTS, SEARCH_SPACE)``:
``DEFAULTS`` holds its hyperparameters (the one place they are written down, since
:func:`create_estimator` always passes every hyperparameter, defaults filled in) and
``SEARCH_SPACE`` what ``tune`` searches. ``adapter`` says what the builder builds: by default a
Keras network (:class:`~benchmark.models.network.KerasNetwork`); any class following the
:class:`~benchmark.models.estimator.Estimator` protocol may stand there. Registering is all a new
model needs to be trained, tuned, reported, served and tested (the model tests are
parametrised over :func:`list_models`).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from benchmark.errors import BenchmarkError
from benchmark.models.estimator import Estimator
from benchmark.models.network import KerasNetwork

Builder = Callable[..., Any]


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: its builder, adapter, default hyperparameters and a one-line summary."""

    name: str
    build: Builder
    defaults: Mapping[str, Any]
    summary: str
    #: The default Optuna search space, in the experiment file's ``[tuning.<model>]`` format:
    #: the model's own plus its adapter's training settings (``training_search_space``).
    search_space: Mapping[str, Mapping[str, Any]]
    #: The estimator class that wraps what ``build`` returns.
    adapter: type = KerasNetwork

    @property
    def kind(self) -> str:
        """``network``, ``classical``, ...: the adapter's label for listings and reports."""
        return self.adapter.kind


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(
    name: str,
    defaults: Mapping[str, Any],
    search_space: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    adapter: type = KerasNetwork,
) -> Callable[[Builder], Builder]:
    """Decorator registering ``build`` under ``name`` with its defaults and default search space.

    The adapter's training settings (a network's learning rate and batch size) join the search
    space unless the model's own space gives them.
    """

    def decorator(build: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        summary = (build.__doc__ or "").strip().splitlines()[0] if build.__doc__ else ""
        space = {**(search_space or {})}
        for key, spec in getattr(adapter, "training_search_space", {}).items():
            space.setdefault(key, spec)
        _REGISTRY[name] = ModelSpec(
            name, build, MappingProxyType(dict(defaults)), summary, MappingProxyType(space), adapter
        )
        return build

    return decorator


def list_models(pattern: str = "*", *, kind: str | None = None) -> list[str]:
    """Registered model names matching a shell-style ``pattern`` (and ``kind``, if given), sorted."""
    return sorted(
        name for name, spec in _REGISTRY.items()
        if fnmatch.fnmatch(name, pattern) and kind in (None, spec.kind)
    )


def get_model_spec(name: str) -> ModelSpec:
    """The registered spec for ``name``; an unknown name is a :class:`BenchmarkError` listing the valid ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise BenchmarkError(
            f"unknown model {name!r}; registered models: {', '.join(list_models())}"
        ) from None


def required_features(name: str) -> dict[str, Any]:
    """The ``[features]`` values registered model ``name`` needs for its inputs (its adapter's
    ``required_features``); none for an adapter that declares none, or for an unknown name
    (which fails where the model is looked up, naming the registered ones)."""
    spec = _REGISTRY.get(name)
    return dict(getattr(spec.adapter, "required_features", {})) if spec is not None else {}


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


def create_estimator(name: str, input_shape: tuple[int, ...], n_classes: int, **hp: Any) -> Estimator:
    """The registered model ``name`` as an unfitted estimator for ``input_shape`` (without batch)."""
    spec = get_model_spec(name)
    hyperparameters = resolve_hyperparameters(name, hp)
    shape = input_shape if isinstance(input_shape, Mapping) else tuple(input_shape)
    return spec.adapter(_checked_builder(spec), shape, n_classes, hyperparameters)


def create_model(name: str, input_shape: tuple[int, ...], n_classes: int, **hp: Any):
    """Build the registered model ``name`` (a ``keras.Model`` for a network), untrained."""
    return create_estimator(name, input_shape, n_classes, **hp).native


def load_estimator(path: str | Path) -> Estimator:
    """A model saved by :meth:`Estimator.save`, loaded by the adapter that owns its file suffix."""
    path = Path(path)
    adapters = {spec.adapter.suffix: spec.adapter for spec in _REGISTRY.values()}
    if path.suffix not in adapters:
        raise BenchmarkError(f"not a saved model: {path.name} (known: {', '.join(sorted(adapters))})")
    return adapters[path.suffix].load(path)


def _checked_builder(spec: ModelSpec) -> Builder:
    def build(input_shape, n_classes, **hyperparameters):
        try:
            return spec.build(input_shape, n_classes, **hyperparameters)
        except ValueError as error:
            raise _unbuildable(spec.name, input_shape, error) from None

    return build


def _unbuildable(name: str, input_shape, error: ValueError) -> BenchmarkError:
    # Keras explains a too-small input (pooling to nothing) over many lines; keep the gist.
    message = re.sub(r"\x1b\[[0-9;]*m", "", str(error))  # Keras bolds its messages.
    reason = next((line.strip() for line in message.splitlines() if "size" in line.lower()),
                  message.strip().splitlines()[0])
    shape = dict(input_shape) if isinstance(input_shape, Mapping) else tuple(input_shape)
    return BenchmarkError(
        f"model {name!r} cannot be built for input shape {shape}: {reason} "
        "(use a larger input or fewer/smaller blocks)"
    )
