"""musicnn's pretrained weights: fetched once from the package index, checked, cached as ``.npz``.

The ``musicnn`` 0.1.0 wheel on PyPI (ISC licence; Pons & Serra, "musicnn: pre-trained
convolutional neural networks for music audio tagging", ISMIR 2019 LBD,
https://github.com/jordipons/musicnn) ships TF1 checkpoints of ``MSD_musicnn`` and
``MTT_musicnn``. It cannot be a dependency (its metadata pins ``numpy<1.17`` and it turns eager
execution off at import), so only its files are used:

1. ``pip download --no-deps musicnn==0.1.0`` (the user's index and mirror settings apply), or a
   wheel already on disk (``weights fetch musicnn --from FILE``), checked against the pinned
   sha256: a missing or different wheel is a :class:`BenchmarkError`, never a guess;
2. the two checkpoints (``.index`` and ``.data``, each checked against its own pinned sha256)
   extracted into ``<cache>/pretrained/musicnn-0.1.0/<model>/``; the wheel itself is not kept;
3. each read once with TensorFlow's checkpoint reader and written as ``<model>.npz`` (variable
   name -> array, optimizer slots left out), which any Keras backend loads with NumPy alone.

This happens on first use, under a lock, with a message; afterwards nothing is fetched.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from benchmark.errors import BenchmarkError
from benchmark.paths import writable_cache_root

log = logging.getLogger(__name__)

PACKAGE = "musicnn"
VERSION = "0.1.0"
WHEEL_NAME = f"{PACKAGE}-{VERSION}-py3-none-any.whl"
WHEEL_SHA256 = "f38a4890c648c1ddbb141c5d96d2b0a8cfcd36746002d896989f7b88beb65cfa"
WHEEL_MEGABYTES = 29
#: The checkpoint files used, with the sha256 each has in the pinned wheel. The ``.data`` file's
#: hash identifies the checkpoint: runs log it as ``musicnn_checkpoint``.
CHECKPOINT_FILES = {
    "MSD_musicnn": {
        ".index": "87f3e0f3550c8d3bafc840374003e5c8af5eeb5ecf6add61af09a7822d3282c8",
        ".data-00000-of-00001": "8579734ee6388f799ed0def4bbd0d1fdcbeaf213ef2a9dc860917bd76a303de6",
    },
    "MTT_musicnn": {
        ".index": "da2d7bb670b2b31e9bc441bb1bd75eca31b5b061f963cc1f9630c1aff3238f57",
        ".data-00000-of-00001": "041f3935e981a65cea739842d30c188d3a7d2adf4410955c8668eb3de4a5acab",
    },
}
MODELS = tuple(CHECKPOINT_FILES)
#: Checkpoint variables that are the optimizer's, not the network's: never loaded.
OPTIMIZER_VARIABLES = ("/Adam", "beta1_power", "beta2_power")


def checkpoint_id(model: str) -> str:
    """The sha256 of ``model``'s checkpoint data file in the pinned wheel."""
    return CHECKPOINT_FILES[_known(model)][".data-00000-of-00001"]


def weights_dir() -> Path:
    """Where the checkpoints and ``.npz`` files live: ``<cache>/pretrained/musicnn-0.1.0``."""
    return writable_cache_root() / "pretrained" / f"{PACKAGE}-{VERSION}"


def checkpoint_prefix(model: str) -> Path:
    """The TF checkpoint prefix of ``model`` (its folder, the file names start with a dot)."""
    return weights_dir() / _known(model)


def is_fetched() -> bool:
    """True where every model's ``.npz`` is in the cache (nothing to fetch)."""
    return all((weights_dir() / f"{model}.npz").is_file() for model in MODELS)


def weights_file(model: str, *, wheel: Path | None = None) -> Path:
    """``model``'s ``.npz`` weights, fetched (or taken from ``wheel``) and converted on first use."""
    path = weights_dir() / f"{_known(model)}.npz"
    if not path.is_file():
        fetch(wheel)
    return path


def load_weights(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of a weights ``.npz`` (as :func:`weights_file` writes it), by variable name."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (OSError, ValueError) as error:
        raise BenchmarkError(f"cannot read musicnn weights {path}: {error}") from None


def fetch(wheel: Path | None = None) -> Path:
    """Fetch the wheel (or check ``wheel``), extract and convert every model; returns the folder.

    Nothing is fetched where the cache already holds every model. Two processes fetching at once
    take turns under a lock beside the folder.
    """
    from filelock import FileLock

    folder = weights_dir()
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder.parent / f".{folder.name}.lock")):
        if is_fetched():
            return folder
        with tempfile.TemporaryDirectory(prefix="musicnn-wheel-", dir=folder.parent) as scratch:
            if wheel is None:
                wheel = _download(Path(scratch))
            check_wheel(Path(wheel))
            staging = Path(scratch) / "staging"
            _extract_checkpoints(Path(wheel), staging)
            for model in MODELS:
                _convert(staging / model, staging / f"{model}.npz")
            folder.mkdir(parents=True, exist_ok=True)
            for item in sorted(staging.iterdir(), key=lambda path: path.suffix == ".npz"):  # .npz last: the marker
                target = folder / item.name
                if target.is_dir():
                    shutil.rmtree(target)
                item.replace(target)
    log.info("musicnn weights ready in %s", folder)
    return folder


def _download(folder: Path) -> Path:
    log.info("fetching the musicnn %s wheel (%d MB) with pip download, once: its pretrained weights",
             VERSION, WHEEL_MEGABYTES)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "--dest", str(folder), f"{PACKAGE}=={VERSION}"]
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError as error:
        raise BenchmarkError(f"cannot run pip to fetch musicnn: {error}") from None
    wheels = sorted(folder.glob(f"{PACKAGE}-{VERSION}-*.whl"))
    if result.returncode != 0 or not wheels:
        reason = next((line.strip() for line in reversed(result.stderr.splitlines()) if line.strip()),
                      f"pip exited with status {result.returncode}")
        raise BenchmarkError(
            f"could not download {PACKAGE}=={VERSION} with pip ({reason}); fetch {WHEEL_NAME} another way "
            f"and run: python -m benchmark weights fetch musicnn --from FILE"
        )
    return wheels[0]


def check_wheel(wheel: Path) -> None:
    if not wheel.is_file():
        raise BenchmarkError(f"no such wheel: {wheel}")
    digest = file_sha256(wheel)
    if digest != WHEEL_SHA256:
        raise BenchmarkError(
            f"{wheel} is not the musicnn {VERSION} wheel: its sha256 is {digest}, expected {WHEEL_SHA256}"
        )


def _extract_checkpoints(wheel: Path, staging: Path) -> None:
    try:
        archive = zipfile.ZipFile(wheel)
    except zipfile.BadZipFile:
        raise BenchmarkError(f"{wheel} is not a readable wheel") from None
    with archive:
        for model, files in CHECKPOINT_FILES.items():
            (staging / model).mkdir(parents=True)
            for name, expected in files.items():
                # Fixed member names, written to fixed paths: nothing in the archive chooses a path.
                target = staging / model / name
                with archive.open(f"{PACKAGE}/{model}/{name}") as source, target.open("wb") as sink:
                    shutil.copyfileobj(source, sink)
                if file_sha256(target) != expected:
                    raise BenchmarkError(f"{wheel}: {model}/{name} differs from the pinned checkpoint")


def _convert(prefix_folder: Path, target: Path) -> None:
    """One checkpoint as an ``.npz`` of its network variables (TensorFlow's reader; no graph)."""
    arrays = {name: array for name, array in read_checkpoint(prefix_folder).items()
              if not any(marker in name for marker in OPTIMIZER_VARIABLES)}
    with target.open("wb") as handle:
        np.savez(handle, **arrays)


def read_checkpoint(prefix_folder: Path) -> dict[str, np.ndarray]:
    """Every variable of a TF checkpoint whose files are ``<folder>/.index`` and ``<folder>/.data-*``."""
    try:
        from tensorflow.python.training import py_checkpoint_reader
    except ImportError:
        raise BenchmarkError("reading musicnn's TF1 checkpoints needs TensorFlow (pip install tensorflow)") from None
    reader = py_checkpoint_reader.NewCheckpointReader(f"{prefix_folder}/")
    return {name: np.asarray(reader.get_tensor(name)) for name in reader.get_variable_to_shape_map()}


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _known(model: str) -> str:
    if model not in CHECKPOINT_FILES:
        raise BenchmarkError(f"unknown musicnn model {model!r} ({', '.join(MODELS)})")
    return model
