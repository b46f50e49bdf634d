"""Shared fixtures. Kept free of heavy imports: the model tests also run under JAX and PyTorch
in environments that hold only Keras and the backend."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"
EXCERPTS = SHARED_DATA / "gtzan-excerpts"


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


def write_clip(path: Path, *, seconds: float = 1.0, sample_rate: int = 22050, frequency: float = 440.0,
               channels: int = 1, fmt: str | None = None, subtype: str = "PCM_16") -> Path:
    """Write a short tone (with a little noise) as an audio file with soundfile."""
    import soundfile

    rng = np.random.default_rng(int(frequency))
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    tone = 0.5 * np.sin(2 * np.pi * frequency * t) + 0.01 * rng.standard_normal(t.size)
    data = np.stack([tone] * channels, axis=1) if channels > 1 else tone
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, data.astype(np.float32), sample_rate, format=fmt, subtype=subtype)
    return path


@pytest.fixture
def tone_tree(tmp_path) -> Path:
    """A folder-per-genre tree of 3 genres x 4 short wav tones, distinct by pitch."""
    root = tmp_path / "tones"
    for genre_index, genre in enumerate(("blues", "jazz", "rock")):
        for clip in range(4):
            write_clip(root / genre / f"{genre}.{clip:05d}.wav",
                       frequency=220.0 * (genre_index + 1) + 10 * clip)
    return root


def running_backend() -> str:
    return os.environ.get("KERAS_BACKEND", "tensorflow")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_http(url: str, process: subprocess.Popen, *, what: str, output: Callable[[], str],
                  seconds: float = 180) -> None:
    """Wait until ``url`` answers 200, failing the test (with the server's output) if the
    server exits or the deadline passes."""
    import requests

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{what} exited: {output()[-3000:]}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    pytest.fail(f"{what} did not answer {url} in {seconds:.0f} s: {output()[-3000:]}")
