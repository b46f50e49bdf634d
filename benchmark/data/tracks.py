"""Finding the tracks of a data set and decoding their audio.

Any folder-per-genre tree works: a track's label is the name of the folder that holds it.
That covers GTZAN as distributed (``genres/<genre>/<genre>.NNNNN.au``), the Kaggle release
(``Data/genres_original/<genre>/<genre>.NNNNN.wav``, whose ``images_original/`` PNGs are not
audio and so are ignored) and the synthetic set.
"""

from __future__ import annotations

import hashlib
import os
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmark.errors import BenchmarkError

AUDIO_SUFFIXES = frozenset({".wav", ".au", ".flac", ".ogg", ".mp3"})
_HASH_CHUNK = 1 << 20


def printable_name(name: str | Path) -> str:
    """``name`` as text that any file, table or MLflow store can hold.

    A file name that is not valid UTF-8 (bytes written by an old Latin-1 system, say) reaches
    Python with its bad bytes as lone surrogates, which no UTF-8 writer accepts: pandas, the csv
    module and MLflow all raise ``UnicodeEncodeError``. Those bytes are shown escaped instead
    (``bad\\xc3(.wav``); a valid name is returned unchanged.
    """
    return os.fsencode(name).decode("utf-8", "backslashreplace")


@dataclass(frozen=True)
class Track:
    """One audio file of the data set and its genre label.

    ``path`` opens the file whatever its name; ``label``, ``relative_path`` and ``track_id`` are
    :func:`printable_name` text, what runs, manifests and reports record.
    """

    path: Path
    label: str
    #: The path relative to the data root, with forward slashes: stable across machines.
    relative_path: str

    @property
    def track_id(self) -> str:
        """GTZAN's stem, ``genre.NNNNN``: the same for the .au and .wav releases."""
        return printable_name(self.path.stem)

    @property
    def name(self) -> str:
        """The file's name, printable."""
        return printable_name(self.path.name)


def discover_tracks(root: str | Path) -> list[Track]:
    """All audio files under ``root``, labelled by their parent folder, sorted by path.

    A missing root, a tree without audio, or audio of a single genre is a
    :class:`BenchmarkError`: none of them can be a classification benchmark.
    """
    root = Path(root).expanduser()
    if root.exists() and not root.is_dir():
        raise BenchmarkError(f"data directory {root} is a file: pass the folder that holds one folder per genre")
    if not root.is_dir():
        raise BenchmarkError(f"data directory not found: {root}")
    tracks = [
        Track(path, printable_name(path.parent.name), printable_name(path.relative_to(root).as_posix()))
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


def load_audio(path: Path, sample_rate: int, *, min_seconds: float = 0.0) -> np.ndarray:
    """Decode ``path`` to mono float32 at ``sample_rate``.

    Raises :class:`AudioDecodeError` where the file cannot be decoded, holds no samples, is
    truncated (:func:`check_length`) or lasts under ``min_seconds``, so callers can skip that
    file on purpose and say why. This is ``librosa.load`` (soundfile, audioread as the
    fallback, channels averaged, soxr_hq resampling) with :func:`decode_native`'s checks.
    """
    import librosa  # Imported here: it is slow to import and only extraction needs it.

    path = Path(path)
    samples, native_rate = decode_native(path)
    check_length(path, len(samples), native_rate, min_seconds)
    audio = librosa.to_mono(samples.T)
    return librosa.resample(audio, orig_sr=native_rate, target_sr=sample_rate, res_type="soxr_hq")


def decode_native(path: Path) -> tuple[np.ndarray, int]:
    """Samples as float32 (frames, channels) at the file's own rate: soundfile, else librosa (audioread).

    What ``run``, ``data verify`` and ``predict`` all decode with, so one file gets one reason
    everywhere: where both decoders fail, soundfile's, the more telling one ("Format not
    recognised" rather than audioread's bare "EOFError").
    """
    import soundfile

    try:
        # As bytes: soundfile encodes a str path as strict UTF-8, which a name that is not UTF-8 fails.
        samples, sample_rate = soundfile.read(os.fsencode(path), dtype="float32", always_2d=True)
    except Exception as first:  # noqa: BLE001  decoders raise many unrelated types
        import librosa

        try:
            with warnings.catch_warnings():
                # librosa warns that it falls back to audioread; the outcome is what counts.
                warnings.simplefilter("ignore", (UserWarning, FutureWarning))
                mono_or_channels, sample_rate = librosa.load(path, sr=None, mono=False)
        except Exception:  # noqa: BLE001
            raise AudioDecodeError(path, _decoder_reason(path, first)) from None
        samples = np.atleast_2d(mono_or_channels).T.astype(np.float32)
    if samples.size == 0:
        raise AudioDecodeError(path, "no audio samples")
    if not np.all(np.isfinite(samples)):
        raise AudioDecodeError(path, "non-finite samples")
    return samples, int(sample_rate)


def _decoder_reason(path: Path, error: Exception) -> str:
    # libsndfile's own words ("Format not recognised.") without soundfile's "Error opening '<path>': ".
    text = str(getattr(error, "error_string", "") or error).strip().replace(str(path), printable_name(path.name))
    return printable_name(text.splitlines()[0].rstrip(".")) if text else type(error).__name__


def check_length(path: Path, frames: int, sample_rate: int, min_seconds: float = 0.0) -> None:
    """Raise :class:`AudioDecodeError` where the decoded length is not the file's whole length.

    Truncated: the WAV or AU header announces another number of frames than the file holds
    (the decoders quietly read what is there: a 30 s clip cut after 1000 bytes decodes as
    0.02 s). Too short: under ``min_seconds`` (``data.min_seconds``).
    """
    announced = announced_frames(path)
    if announced is not None and announced != frames:
        raise AudioDecodeError(path, f"its header announces {announced} frames ({announced / sample_rate:.2f} s), "
                                     f"the file holds {frames} ({frames / sample_rate:.2f} s)", kind=TRUNCATED)
    if frames / sample_rate < min_seconds:
        raise AudioDecodeError(path, f"{frames / sample_rate:.2f} s, under data.min_seconds = {min_seconds:g} s",
                               kind=TOO_SHORT)


def probe_length(path: Path, min_seconds: float = 0.0) -> None:
    """:func:`check_length` from the headers alone, without decoding: for files served from a cache.

    A file soundfile cannot open passes: decoding it, if it comes to that, says why it fails.
    """
    import soundfile

    try:
        info = soundfile.info(os.fsencode(path))
    except Exception:  # noqa: BLE001
        return
    if info.samplerate > 0:
        check_length(path, info.frames, info.samplerate, min_seconds)


#: Bytes per sample of the AU encodings whose length the header gives exactly (linear PCM,
#: float, mu-law, A-law); others (ADPCM...) are left to the decoder.
_AU_SAMPLE_BYTES = {1: 1, 2: 1, 3: 2, 4: 3, 5: 4, 6: 4, 7: 8, 27: 1}
#: WAV format tags whose ``data`` size is a whole number of ``block_align`` frames.
_WAV_FRAME_FORMATS = {1, 3, 6, 7}  # PCM, IEEE float, A-law, mu-law
_WAV_EXTENSIBLE = 0xFFFE
_UNKNOWN_SIZE = 0xFFFFFFFF  # a streamed file's "size not known"


def announced_frames(path: Path) -> int | None:
    """The frame count a WAV or AU file's header announces; None where it announces none.

    Read here rather than from soundfile, whose ``frames`` is already cut to the bytes present.
    Other formats, compressed encodings and streamed files (size unknown) give None.
    """
    try:
        with path.open("rb") as handle:
            head = handle.read(24)
            if head[:4] == b".snd" and len(head) == 24:
                _, size, encoding, _, channels = struct.unpack(">5I", head[4:24])
                width = _AU_SAMPLE_BYTES.get(encoding)
                if width is None or channels == 0 or size == _UNKNOWN_SIZE:
                    return None
                return size // (width * channels)
            if head[:4] in (b"RIFF", b"RIFX") and head[8:12] == b"WAVE":
                handle.seek(12)
                return _riff_data_frames(handle, "<" if head[:4] == b"RIFF" else ">")
    except OSError:
        return None
    return None


def _riff_data_frames(handle, order: str) -> int | None:
    block_align = None
    while len(header := handle.read(8)) == 8:
        chunk, size = header[:4], struct.unpack(order + "I", header[4:])[0]
        if chunk == b"fmt ":
            fmt = handle.read(size)
            if len(fmt) < 14:
                return None
            tag, _, _, _, block_align = struct.unpack(order + "HHIIH", fmt[:14])
            if tag == _WAV_EXTENSIBLE and len(fmt) >= 26:
                tag = struct.unpack(order + "H", fmt[24:26])[0]  # the sub-format GUID's first two bytes
            if tag not in _WAV_FRAME_FORMATS:
                return None
            handle.seek(size % 2, 1)  # chunks are padded to an even size
        elif chunk == b"data":
            if not block_align or size in (0, _UNKNOWN_SIZE):
                return None
            return size // block_align
        else:
            handle.seek(size + size % 2, 1)
    return None


#: What :class:`AudioDecodeError` says a file is: the first word of every skip reason.
CANNOT_DECODE, TRUNCATED, TOO_SHORT = "cannot decode", "truncated", "too short"


class AudioDecodeError(BenchmarkError):
    """A file that is not usable audio (undecodable, truncated, too short); loading skips it and records why.

    ``reason`` (``cannot decode: Format not recognised``, ``truncated: ...``, ``too short: ...``)
    is what a run lists in ``skipped_files.csv`` and ``data verify`` in its manifest: the same
    words for the same file. The message also names the file.
    """

    def __init__(self, path: Path | str, detail: str, kind: str = CANNOT_DECODE):
        self.path, self.detail, self.kind = path, detail, kind
        self.reason = printable_name(f"{kind}: {detail}")  # written to manifests and skipped_files.csv
        shown = printable_name(str(path))
        super().__init__(f"{kind} {shown}: {detail}" if kind == CANNOT_DECODE else f"{shown}: {self.reason}")

    def __reduce__(self):  # picklable across worker processes despite the custom signature
        return type(self), (self.path, self.detail, self.kind)
