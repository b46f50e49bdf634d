"""Which Keras backend trains: chosen per command, before Keras is imported.

Keras reads ``KERAS_BACKEND`` once, at import, and cannot switch afterwards. So a command picks
the backend (``--backend``, else ``run.backend`` of the experiment, else ``KERAS_BACKEND``,
else TensorFlow) before anything imports Keras, and the choice is set in the environment,
where unit processes and Ray workers inherit it. Runs record it as the ``keras_backend`` tag,
and it is part of each unit's settings (:func:`benchmark.batch.unit_settings`), since results
differ between backends.
"""

from __future__ import annotations

import importlib.util
import os
import sys

from benchmark.errors import BenchmarkError

#: The Keras 3 backends a run may train on (``run.backend``), each the name of its package.
BACKENDS = ("tensorflow", "jax", "torch")
DEFAULT_BACKEND = "tensorflow"


def current_backend() -> str:
    """The backend this process trains on (or will, once Keras is imported)."""
    return os.environ.get("KERAS_BACKEND") or DEFAULT_BACKEND


def select_backend(name: str | None) -> str:
    """Make ``name`` this process's Keras backend (None: keep :func:`current_backend`); returns it.

    A backend whose package is not installed, or another backend than the one Keras was already
    imported with, is a :class:`BenchmarkError`: failing here costs a second, not a batch.
    """
    name = name or current_backend()
    if name not in BACKENDS:
        raise BenchmarkError(f"unknown Keras backend {name!r} ({', '.join(BACKENDS)})")
    if importlib.util.find_spec(name) is None:
        extra = "" if name == DEFAULT_BACKEND else f" (pip install 'genre-benchmark[{name}]')"
        raise BenchmarkError(f"the Keras backend {name!r} is not installed{extra}")
    if "keras" in sys.modules:
        running = sys.modules["keras"].backend.backend()
        if running != name:
            raise BenchmarkError(f"Keras already runs on {running!r} in this process; cannot switch to {name!r} "
                                 f"(set KERAS_BACKEND={name} before starting)")
    os.environ["KERAS_BACKEND"] = name
    return name
