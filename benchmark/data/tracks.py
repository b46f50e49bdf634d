"""Finding the tracks of a data set and decoding their audio.

Any folder-per-genre tree works: a track's label is the name of the folder that holds it.
That covers GTZAN as distributed (``genres/<genre>/<genre>.NNNNN.au``), the Kaggle release
(``Data/genres_original/<genre>/<genre>.NNNNN.wav``, whose ``images_original/`` PNGs are not
audio and so are ignored) and the synthetic set.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmark.errors import BenchmarkError

AUDIO_SUFFIXES = frozenset({".wav", ".au", ".flac", ".ogg", ".mp3"})
_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class Track:
    """One audio file of the data set and its genre label."""

    path: Path
    label: str
    #: The path relative to the data root, with forward slashes: stable across machines.
    relative_path: str

    @property
    def track_id(self) -> str:
        """GTZAN's stem, ``genre.NNNNN``: the same for the .au and .wav releases."""
        return self.path.stem


def discover_tracks(root: str | Path) -> list[Track]:
    """All audio files under ``root``, labelled by their parent folder, sorted by path.

    A missing root, a tree without audio, or audio of a single genre is a
    :class:`BenchmarkError`: none of them can be a classification benchmark.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise BenchmarkError(f"data directory not found: {root}")
    tracks = [
        Track(path, path.parent.name, path.relative_to(root).as_posix())
        for path in sorted(root.rglob("*"))
        if path.suffix.lower() in AUDIO_SUFFIXES and path.is_file() and path.parent != root
    ]
    if not tracks:
        raise BenchmarkError(
            f"no audio files ({', '.join(sorted(AUDIO_SUFFIXES))}) in genre folders under {root}"
        )
    genres = sorted({track.label for track in tracks})
    if len(genres) < 2:
        raise BenchmarkError(
            f"{root} holds audio of one genre only ({genres[0]!r}); a benchmark needs at least two "
            "genre folders"
        )
    return tracks


def content_hash(path: Path) -> str:
    """SHA-256 of a file's bytes: the cache key that survives renames and copies."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def load_audio(path: Path, sample_rate: int) -> np.ndarray:
    """Decode ``path`` to mono float32 at ``sample_rate``.

    Raises :class:`AudioDecodeError` where the file cannot be decoded or holds no samples, so
    callers can skip that file on purpose and say why.
    """
    import librosa  # Imported here: it is slow to import and only extraction needs it.

    try:
        with warnings.catch_warnings():
            # librosa warns before falling back to audioread; the outcome is reported below.
            warnings.simplefilter("ignore", (UserWarning, FutureWarning))
            audio, _ = librosa.load(path, sr=sample_rate, mono=True)
    except Exception as error:  # noqa: BLE001  decoders raise many unrelated types
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise AudioDecodeError(f"cannot decode {path}: {reason}") from error
    if audio.size == 0:
        raise AudioDecodeError(f"cannot decode {path}: no audio samples")
    if not np.all(np.isfinite(audio)):
        raise AudioDecodeError(f"cannot decode {path}: non-finite samples")
    return audio


class AudioDecodeError(BenchmarkError):
    """A file that is not decodable audio; data loading skips it and records why."""
