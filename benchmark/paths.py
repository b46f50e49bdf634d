"""Where the harness keeps what it generates: caches and the local tracking store."""

from __future__ import annotations

import os
import re
from pathlib import Path

CACHE_ENV = "GENRE_BENCHMARK_CACHE"


def cache_root() -> Path:
    """Root of generated data and feature caches.

    ``$GENRE_BENCHMARK_CACHE`` if set, else ``$XDG_CACHE_HOME/genre-benchmark``
    (``~/.cache/genre-benchmark``). Everything under it can be deleted and is rebuilt on demand.
    """
    if explicit := os.environ.get(CACHE_ENV):
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "genre-benchmark"


def mlruns_dir() -> Path:
    """The local tracking store: ``mlruns/`` in the working directory."""
    return Path.cwd() / "mlruns"


def slug(name: str, fallback: str = "experiment") -> str:
    """``name`` as a file-name-safe slug (letters, digits and ``_.-``; other runs become ``-``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or fallback
