"""The registered models: every module of this package is imported, and registers itself.

Adding a model is one file here with a ``@register_model`` builder: no import line to add.
Only Keras is needed by the networks, so the model code and its tests run on any Keras backend
(TensorFlow, JAX, PyTorch).
"""

import importlib
import pkgutil

from benchmark.models.estimator import Estimator, FitReport
from benchmark.models.registry import (
    ModelSpec,
    create_estimator,
    create_model,
    get_model_spec,
    list_models,
    load_estimator,
    register_model,
    required_features,
    resolve_hyperparameters,
)


def _discover() -> None:
    """Import every module of this package (names starting with ``_`` excepted)."""
    for module in pkgutil.iter_modules(__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")


_discover()

__all__ = [
    "Estimator",
    "FitReport",
    "ModelSpec",
    "create_estimator",
    "create_model",
    "get_model_spec",
    "list_models",
    "load_estimator",
    "register_model",
    "required_features",
    "resolve_hyperparameters",
]
