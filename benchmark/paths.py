"""Where the harness keeps what it generates: caches and the local tracking store."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from benchmark.errors import BenchmarkError

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


def writable_cache_root() -> Path:
    """:func:`cache_root`, created if needed, once it is known to be writable.

    Commands that fill the cache call this before their slow part, so that a read-only or
    unwritable cache fails in a second with one line, not after minutes of work.
    """
    return ensure_writable_folder(cache_root(), "cache folder", hint=f"set {CACHE_ENV} to a writable folder")


def ensure_writable_folder(folder: Path, what: str, *, hint: str = "") -> Path:
    """``folder``, created if missing, after a real write into it; else one clear error.

    A probe file is created and removed rather than trusting ``os.access``: it answers for
    read-only mounts, permissions, ACLs and a root user without ``CAP_DAC_OVERRIDE`` alike.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder, prefix=".write-check-"):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise BenchmarkError(f"cannot write to the {what} {folder}: {reason}" + (f"; {hint}" if hint else "")) from None
    return folder


def mlruns_dir() -> Path:
    """The local tracking store: ``mlruns/`` in the working directory."""
    return Path.cwd() / "mlruns"


def slug(name: str, fallback: str = "experiment") -> str:
    """``name`` as a file-name-safe slug (letters, digits and ``_.-``; other runs become ``-``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or fallback
