"""Shared fixtures; shared helper functions are in :mod:`tests.helpers`. Kept free of heavy
imports: the model tests also run under JAX and PyTorch in environments that hold only Keras
and the backend."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

# The helpers' asserts (assert_user_error...) report what they compared, as the tests' own do:
# registered before the module is first imported, just below.
pytest.register_assert_rewrite("tests.helpers")

from tests.helpers import EXCERPTS, free_port, plant_champion, write_clip  # noqa: E402


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


@pytest.fixture
def postgres():
    """A real PostgreSQL server on 127.0.0.1 in a throw-away data folder; yields a function that
    creates a database and returns its SQLAlchemy URL."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.skip("PostgreSQL server not installed (Debian package postgresql; .ci/run installs it)")
    pytest.importorskip("psycopg2", reason="psycopg2 (the dev extra) is needed for PostgreSQL")
    bindir = Path(found[-1]).parent
    # In /tmp itself: the postgres user cannot enter pytest's (or TMPDIR's) 0700 folders.
    folder = Path(tempfile.mkdtemp(prefix="benchmark-pg-", dir="/tmp"))
    as_postgres = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        shutil.chown(folder, "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    data = folder / "data"

    def pg(*command):
        subprocess.run([*as_postgres, *command], check=True, capture_output=True, timeout=120)

    def database(name: str) -> str:
        pg(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", name)
        return f"postgresql+psycopg2://postgres@127.0.0.1:{port}/{name}"

    pg(str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres")
    pg(str(bindir / "pg_ctl"), "-D", str(data), "-w", "-l", str(folder / "log"), "-o",
       f"-p {port} -k {folder} -c listen_addresses=127.0.0.1", "start")
    try:
        yield database
    finally:
        pg(str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop")
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres) -> str:
    """The URL of a fresh database ``optuna`` on a real PostgreSQL server."""
    return postgres("optuna")


@pytest.fixture(scope="module")
def champion(tmp_path_factory, shared_cache):
    """A store whose genre-classifier@champion is a planted (untrained) smoke audio model."""
    folder = tmp_path_factory.mktemp("champion")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GENRE_BENCHMARK_CACHE", str(shared_cache))
        patch.chdir(folder)
        return plant_champion(folder)
