"""What a result needs to be repeated a year later: code version, packages, Keras backend.

MLflow-free on purpose: run tags, the audio model's pinned requirements and the report all
read these plain values, and :mod:`benchmark.tracking` only records them.
"""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
from pathlib import Path

#: Packages whose versions every run records.
RECORDED_PACKAGES = (
    "keras", "tensorflow", "jax", "jaxlib", "torch", "numpy", "librosa", "soundfile",
    "scikit-learn", "pandas", "mlflow", "optuna",
)
_PROJECT_ROOT = Path(__file__).resolve().parent.parent


def keras_backend() -> str:
    """The running Keras backend (``tensorflow``, ``jax``, ``torch``); imports Keras."""
    import keras

    return keras.backend.backend()


def provenance_tags() -> dict[str, str]:
    """Keras backend, git commit, Python and package versions, as run tags."""
    tags = {
        "keras_backend": keras_backend(),
        "git_commit": git_commit(),
        "python_version": platform.python_version(),
        "platform": platform.platform(),
    }
    for package in RECORDED_PACKAGES:
        try:
            tags[f"version.{package}"] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return tags


def git_commit() -> str:
    """The project's commit, with ``-dirty`` if the work tree has changes; ``unknown`` outside git."""
    try:
        commit = _git("rev-parse", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=_PROJECT_ROOT, capture_output=True, text=True, check=True, timeout=10
    ).stdout.strip()


def pinned_requirements(*packages: str) -> list[str]:
    """``name==version`` for ``packages`` and the running Keras backend: a logged model's pip
    requirements, given rather than inferred (inference reloads the model in a subprocess)."""
    backend = keras_backend()  # its package has the same name: tensorflow, jax, torch
    return [f"{name}=={importlib.metadata.version(name)}" for name in dict.fromkeys((*packages, backend))]

