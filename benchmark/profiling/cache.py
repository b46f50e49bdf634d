"""Where a profile writes: a cold feature cache and a throwaway tracking store, both temporary.

Extraction from a warm cache measures reading ``.npy`` files, not extraction, so a profile
extracts into an empty feature cache by default. Only the features go cold: every other
folder of the cache (the synthetic data set, pretrained weights, ``data verify`` manifests) is
linked into the temporary cache root, so the synthetic set is generated once, in the user's
cache, and reused as ``run`` reuses it. And a profile's runs are not results: by default they
go to a tracking store in the same temporary folder, never to the user's ``mlruns/``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from benchmark.paths import CACHE_ENV, writable_cache_root

#: The cache folder that goes cold (see :func:`benchmark.data.features.feature_cache_dir`).
FEATURES_FOLDER = "features"
#: Folders shared with the user's cache even before they exist there (created, so that what
#: the profile puts in them stays for the next run).
SHARED_FOLDERS = ("synthetic",)


@dataclass(frozen=True)
class Workspace:
    """Where this profile's features go (and whether cold), and its tracking store."""

    cache_root: Path
    cold_cache: bool
    tracking_uri: str
    throwaway_store: bool


@contextmanager
def profile_workspace(*, cold_cache: bool, tracking_uri: str | None) -> Iterator[Workspace]:
    """A temporary folder for the block: the cold feature cache and the tracking store, unless
    ``cold_cache`` is False (the user's cache) or ``tracking_uri`` names a store. Removed after."""
    from benchmark.tracking import DATABASE_NAME

    with tempfile.TemporaryDirectory(prefix="benchmark-profile-") as folder:
        folder = Path(folder)
        # $MLFLOW_TRACKING_URI is not enough to log there: a profile must never fill a real store by accident.
        store = tracking_uri or f"sqlite:///{folder / 'mlruns' / DATABASE_NAME}"
        if not cold_cache:
            yield Workspace(writable_cache_root(), False, store, tracking_uri is None)
            return
        with _cold_feature_cache(folder / "cache") as root:
            yield Workspace(root, True, store, tracking_uri is None)


@contextmanager
def _cold_feature_cache(root: Path) -> Iterator[Path]:
    """``$GENRE_BENCHMARK_CACHE`` at ``root`` for the block: the user's cache minus its features."""
    shared = writable_cache_root()  # the user's, before the variable moves
    root.mkdir()
    for name in SHARED_FOLDERS:
        (shared / name).mkdir(exist_ok=True)
    for entry in shared.iterdir():
        if entry.name != FEATURES_FOLDER:
            (root / entry.name).symlink_to(entry)
    previous = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(root)
    try:
        yield root
    finally:
        if previous is None:
            os.environ.pop(CACHE_ENV, None)
        else:
            os.environ[CACHE_ENV] = previous
