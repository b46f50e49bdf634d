"""The networks of the study, registered by name.

Importing this package registers every architecture; only Keras is needed, so the model
code and its tests run on any Keras backend (TensorFlow, JAX, PyTorch).
"""

from benchmark.models.registry import (
    ModelSpec,
    create_model,
    get_model_spec,
    list_models,
    register_model,
    resolve_hyperparameters,
)

# Imported for their registration side effect.
from benchmark.models import cnn1d, cnn2d, crnn, fcnn  # noqa: E402,F401  isort: skip

__all__ = [
    "ModelSpec",
    "create_model",
    "get_model_spec",
    "list_models",
    "register_model",
    "resolve_hyperparameters",
]
