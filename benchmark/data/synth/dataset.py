"""Writing the data set to disk: a resumable, parallel cache of WAV files with a marker.

A folder is claimed by a partial marker before the first clip is written and completed by
the final marker after the last; every file goes through a temporary name and an atomic
rename, so an interrupted run leaves only complete clips and resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import soundfile as sf
from filelock import FileLock

from benchmark.data.gtzan import GTZAN_GENRES, GTZAN_SAMPLE_RATE
from benchmark.data.synth.clip import check_audio_arguments, check_genre, check_integer, synthesize_clip
from benchmark.errors import BenchmarkError

#: Bump whenever the audio a given set of parameters produces changes: old caches then
#: no longer match and are never mistaken for the new data set.
FORMAT_VERSION = 1
MARKER_NAME = "synth.json"
_PARTIAL_MARKER_NAME = ".synth-partial.json"
_TEMP_SUFFIX = ".tmp"  # not an audio suffix, so track discovery never picks up a stray temp file

def write_dataset(out_dir: str | os.PathLike, *, clips_per_genre: int = 100, seconds: float = 30.0,
                  sample_rate: int = GTZAN_SAMPLE_RATE, seed: int = 0,
                  genres: Sequence[str] = GTZAN_GENRES, workers: int | None = None,
                  progress: bool = True) -> Path:
    """Write the data set as ``out_dir/<genre>/<genre>.NNNNN.wav``; return ``out_dir`` as a Path.

    A cache: once complete, ``out_dir/synth.json`` records the parameters, and a later call
    with the same ones returns at once. A folder holding another data set (a marker with
    other parameters, or files but no marker) is a :class:`BenchmarkError`, never
    overwritten. An interrupted run resumes where it stopped: every file is written
    atomically, so any ``.wav`` present is complete.
    """
    out_dir = Path(out_dir).expanduser()
    parameters = _dataset_parameters(clips_per_genre, seconds, sample_rate, seed, genres, workers)
    if _is_complete(out_dir, parameters):
        return out_dir
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # Two commands starting together on a fresh cache would both write, and each remove the
    # other's temporary files and markers: one generates, the other waits, then finds it complete.
    # The lock is a hidden file beside the folder (inside, it would make the folder look taken).
    with FileLock(out_dir.with_name(f".{out_dir.name}.lock")):
        if not _is_complete(out_dir, parameters):
            _generate(out_dir, parameters, workers=workers, progress=progress)
    return out_dir


def _generate(out_dir: Path, parameters: dict, *, workers: int | None, progress: bool) -> None:
    """Write the clips still missing, between the partial marker and the final one."""
    clips_per_genre, seconds, sample_rate, seed = (parameters[key] for key in
                                                   ("clips_per_genre", "seconds", "sample_rate", "seed"))
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_json_atomically(out_dir / _PARTIAL_MARKER_NAME, parameters)
    jobs = []
    for genre in parameters["genres"]:
        folder = out_dir / genre
        folder.mkdir(exist_ok=True)
        for stale in folder.glob(f".*{_TEMP_SUFFIX}"):  # left by a run that was killed
            stale.unlink()
        paths = (folder / f"{genre}.{index:05d}.wav" for index in range(clips_per_genre))
        jobs += [_ClipJob(path, genre, index, seconds, sample_rate, seed)
                 for index, path in enumerate(paths) if not path.exists()]
    from benchmark.data.parallel import map_in_processes

    map_in_processes(_write_clip, jobs, workers=workers or 0, progress=progress, desc="synthesising clips",
                     unit="clip")
    _write_json_atomically(out_dir / MARKER_NAME, parameters)
    (out_dir / _PARTIAL_MARKER_NAME).unlink()


def _dataset_parameters(clips_per_genre, seconds, sample_rate, seed, genres, workers) -> dict:
    """The marker's content, after checking every argument (one BenchmarkError per bad value)."""
    if isinstance(genres, str):  # a lone name would otherwise be read as a list of letters
        genres = (genres,)
    genres = list(genres)
    for genre in genres:
        check_genre(genre)
    if not genres or len(set(genres)) != len(genres):
        raise BenchmarkError(f"genres must be distinct and at least one, got {genres!r}")
    check_integer("clips_per_genre", clips_per_genre, 1)
    check_audio_arguments(seconds, sample_rate, seed)
    if workers is not None:
        check_integer("workers", workers, 1)
    return {
        "format": "benchmark synthetic GTZAN",
        "version": FORMAT_VERSION,
        "clips_per_genre": int(clips_per_genre),
        "seconds": float(seconds),
        "sample_rate": int(sample_rate),
        "seed": int(seed),
        "genres": genres,
    }


def _read_marker(path: Path) -> dict | None:
    if not path.exists():
        return None
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise BenchmarkError(f"unreadable data set marker {path} ({error}); choose another folder") from None
    if not isinstance(content, dict):
        raise BenchmarkError(f"{path} is not a synthetic data set marker; choose another folder")
    return content


def _is_complete(out_dir: Path, parameters: dict) -> bool:
    """True if ``out_dir`` holds this data set, complete; False if it is free for it (missing,
    empty, or this data set partly written); a BenchmarkError if it holds anything else."""
    complete = _read_marker(out_dir / MARKER_NAME)
    if complete is not None:
        _check_same_parameters(out_dir, complete, parameters, "a synthetic data set")
        return True
    partial = _read_marker(out_dir / _PARTIAL_MARKER_NAME)
    if partial is not None:
        _check_same_parameters(out_dir, partial, parameters, "a partly written synthetic data set")
        return False
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise BenchmarkError(
            f"{out_dir} is not an empty folder and holds no synthetic data set; choose another folder"
        )
    return False


def _check_same_parameters(out_dir: Path, found: dict, wanted: dict, holding: str) -> None:
    if found != wanted:
        raise BenchmarkError(
            f"{out_dir} holds {holding} made with other parameters ({_describe(found)}, not "
            f"{_describe(wanted)}); choose another folder, or delete it to regenerate"
        )


def _describe(parameters: dict) -> str:
    return ", ".join(f"{key}={value}" for key, value in parameters.items() if key != "format")


def _write_json_atomically(path: Path, content: dict) -> None:
    temp = path.with_name(f".{path.name}.{os.getpid()}{_TEMP_SUFFIX}")
    temp.write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
    os.replace(temp, path)


class _ClipJob(NamedTuple):
    path: Path
    genre: str
    index: int
    seconds: float
    sample_rate: int
    seed: int


def _write_clip(job: _ClipJob) -> None:
    """Render one clip and write it under a temporary name, renamed into place when complete."""
    audio = synthesize_clip(
        job.genre, job.index, seconds=job.seconds, sample_rate=job.sample_rate, seed=job.seed
    )
    temp = job.path.with_name(f".{job.path.name}.{os.getpid()}{_TEMP_SUFFIX}")
    try:
        # Converting to int16 here, not in libsndfile, is faster and leaves nothing to its rounding.
        pcm = np.round(audio * np.float32(32767)).astype(np.int16)
        try:
            sf.write(temp, pcm, job.sample_rate, subtype="PCM_16", format="WAV")
        except sf.LibsndfileError:
            # libsndfile says only "System error" when the disk refuses a write. The same bytes,
            # written by Python, raise the OSError that says why (no space, read-only) and names
            # the file: one line from the command line instead of a traceback.
            encoded = io.BytesIO()
            sf.write(encoded, pcm, job.sample_rate, subtype="PCM_16", format="WAV")
            temp.write_bytes(encoded.getvalue())
        os.replace(temp, job.path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            temp.unlink()
        if isinstance(error, OSError) and not error.filename:  # a failed write names no file: say which
            raise OSError(error.errno, error.strerror, str(job.path)) from error
        raise
