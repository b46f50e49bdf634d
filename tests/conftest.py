"""Shared fixtures; shared helper functions are in :mod:`tests.helpers`. Kept free of heavy
imports: the model tests also run under JAX and PyTorch in environments that hold only Keras
and the backend."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from tests.helpers import EXCERPTS, write_clip


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory) -> Path:
    """One cache for the session, so the synthetic data set is generated once."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session", autouse=True)
def contained_temporary_files(tmp_path_factory):
    """Keep temporary folders inside pytest's own tree, which pytest prunes.

    MLflow leaves a folder in the system temp dir for every artifact download and model load;
    a test session makes hundreds of them.
    """
    patch = pytest.MonkeyPatch()
    patch.setenv("TMPDIR", str(tmp_path_factory.mktemp("tmp")))
    patch.setattr(tempfile, "tempdir", None)  # tempfile caches the folder it chose first
    yield
    patch.undo()


@pytest.fixture(autouse=True)
def isolated_workspace(tmp_path, monkeypatch, shared_cache):
    """Every test runs in its own folder (so ``mlruns/`` lands there) with the session cache."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GENRE_BENCHMARK_CACHE", str(shared_cache))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


@pytest.fixture
def excerpts_dir() -> Path:
    """The real GTZAN excerpts beside the project, or a skip saying why."""
    if not EXCERPTS.is_dir():
        pytest.skip(f"real GTZAN excerpts not found at {EXCERPTS}")
    return EXCERPTS


@pytest.fixture
def tone_tree(tmp_path) -> Path:
    """A folder-per-genre tree of 3 genres x 4 short wav tones, distinct by pitch."""
    root = tmp_path / "tones"
    for genre_index, genre in enumerate(("blues", "jazz", "rock")):
        for clip in range(4):
            write_clip(root / genre / f"{genre}.{clip:05d}.wav",
                       frequency=220.0 * (genre_index + 1) + 10 * clip)
    return root
