"""Spectrogram extraction with an on-disk, content-addressed cache, and the networks' inputs.

Each clip is decoded, trimmed to at most ``frames`` frames' worth of samples and transformed
(the study's dB STFT magnitude, or dB log-mel power) exactly once: the dB spectrogram is stored
as float16 under a key made of the file's content hash and the feature parameters, so renaming
or copying the data set keeps the cache, and changing any parameter misses it. Extraction runs
in worker processes with a progress bar.

The cache holds each clip at its own length, before normalisation: turning it into network
inputs (:func:`network_inputs`: per-clip scaling, then padding to ``frames`` or cutting into
segments) is cheap and happens on load, so trying another segment length or normalisation
never recomputes a spectrogram.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from benchmark.config import REPRESENTATIONS, DataConfig, ExperimentConfig, FeaturesConfig
from benchmark.data.normalize import scale_per_clip
from benchmark.data.parallel import map_in_processes
from benchmark.data.segments import Segmenting
from benchmark.data.tracks import AudioDecodeError, Track, content_hash, load_audio
from benchmark.errors import BenchmarkError

log = logging.getLogger(__name__)

CACHE_DTYPE = np.float16
#: Bumped whenever the computation below changes, so old cache entries are never reused.
FEATURE_VERSION = 2  # 2: the cache holds unpadded, unscaled dB spectrograms


_FEATURE_DEFAULTS, _DATA_DEFAULTS = FeaturesConfig(), DataConfig()


@dataclass(frozen=True)
class FeatureParams:
    """Everything that determines a clip's spectrogram; its :meth:`key` names the cache folder.

    The defaults are the configuration's (:class:`benchmark.config.FeaturesConfig`), and
    :meth:`from_config` copies every field of the same name: the values live in one place.
    """

    representation: str = _FEATURE_DEFAULTS.representation
    sample_rate: int = _DATA_DEFAULTS.sample_rate
    n_fft: int = _FEATURE_DEFAULTS.n_fft
    hop_length: int = _FEATURE_DEFAULTS.hop_length
    n_mels: int = _FEATURE_DEFAULTS.n_mels
    frames: int = _FEATURE_DEFAULTS.frames

    def __post_init__(self):
        if self.representation not in REPRESENTATIONS:
            raise BenchmarkError(
                f"unknown representation {self.representation!r} ({', '.join(REPRESENTATIONS)})"
            )

    @classmethod
    def from_config(cls, config: ExperimentConfig) -> FeatureParams:
        """The feature parameters an experiment asks for."""
        values = {item.name: getattr(config.features, item.name) for item in fields(cls)
                  if item.name != "sample_rate"}
        return cls(sample_rate=config.data.sample_rate, **values)

    @property
    def n_samples(self) -> int:
        """Clip length giving exactly ``frames`` centred frames: 1319 * 512 = 675,328 in the study.

        Longer clips are trimmed to it; shorter ones are padded when whole clips are the input.
        """
        return (self.frames - 1) * self.hop_length

    @property
    def bins(self) -> int:
        """Frequency bins: ``n_fft // 2 + 1`` for the STFT (1025), ``n_mels`` for log-mel."""
        return self.n_fft // 2 + 1 if self.representation == "stft" else self.n_mels

    @property
    def shape(self) -> tuple[int, int]:
        """A whole clip's spectrogram shape, (bins, frames): the networks' input shape without segments."""
        return (self.bins, self.frames)

    def key(self) -> str:
        """A short stable hash of the parameters (and the extraction code's version)."""
        payload = json.dumps({**asdict(self), "version": FEATURE_VERSION}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class SkippedFile:
    """A track left out on purpose, and why."""

    relative_path: str
    reason: str


@dataclass
class FeatureSet:
    """Model inputs of every decodable track: one per clip, or its segments.

    ``inputs[i]`` belongs to the track ``tracks[clip_index[i]]``; a clip's inputs are
    contiguous and in time order.
    """

    inputs: np.ndarray
    clip_index: np.ndarray
    tracks: list[Track]
    #: Stable hash of every discovered track's (relative path, content hash, label).
    fingerprint: str
    skipped: list[SkippedFile] = field(default_factory=list)
    from_cache: int = 0

    @property
    def labels(self) -> list[str]:
        return [track.label for track in self.tracks]

    def rows_of(self, clips: np.ndarray) -> np.ndarray:
        """Indices into ``inputs`` of every input of the given clips (track indices)."""
        return np.flatnonzero(np.isin(self.clip_index, clips))


def compute_spectrogram(audio: np.ndarray, params: FeatureParams) -> np.ndarray:
    """One clip's dB spectrogram, float32 of shape (bins, frames <= params.frames), unscaled.

    The clip is trimmed to ``params.n_samples`` but not padded: padding (whole clips) or cutting
    (segments) is :func:`network_inputs`'s job. dB are relative to the clip's peak (0 dB), with
    the floor at -80 dB, as ``librosa`` computes them.
    """
    import librosa

    audio = np.asarray(audio, dtype=np.float32)[: params.n_samples]
    if audio.size < params.n_fft:  # a clip shorter than one window: pad it to one window
        audio = librosa.util.fix_length(audio, size=params.n_fft)
    if params.representation == "stft":
        magnitude = np.abs(librosa.stft(audio, n_fft=params.n_fft, hop_length=params.hop_length))
        decibels = librosa.amplitude_to_db(magnitude, ref=np.max)
    else:
        power = librosa.feature.melspectrogram(
            y=audio,
            sr=params.sample_rate,
            n_fft=params.n_fft,
            hop_length=params.hop_length,
            n_mels=params.n_mels,
        )
        decibels = librosa.power_to_db(power, ref=np.max)
    # A clip padded to one window may give more frames than a tiny ``frames`` allows.
    return decibels[:, : params.frames].astype(np.float32)


def network_inputs(
    spectrogram: np.ndarray, params: FeatureParams, *, segmenting: Segmenting | None = None,
    normalize: str = "per_clip",
) -> np.ndarray:
    """A clip's dB spectrogram as network inputs: (1, bins, frames) or (segments, bins, frames).

    ``per_clip`` scales the whole clip to [0, 1] before it is padded or cut, so every segment
    of a clip shares one scale. ``standardize`` leaves the dB values for a
    :class:`~benchmark.data.normalize.Standardizer` fitted on training inputs. Padding sits at
    the clip's floor (0 after scaling, its quietest dB value otherwise).
    """
    values = scale_per_clip(spectrogram) if normalize == "per_clip" else spectrogram
    floor = float(values.min()) if values.size else 0.0
    if segmenting is not None:
        return segmenting.cut(values, floor)
    whole = np.full((1, params.bins, params.frames), floor, dtype=values.dtype)
    kept = min(values.shape[1], params.frames)
    whole[0, :, :kept] = values[:, :kept]
    return whole


def compute_features(audio: np.ndarray, params: FeatureParams) -> np.ndarray:
    """The study's input of one clip: float32 (bins, frames), padded or trimmed, scaled to [0, 1]."""
    return network_inputs(compute_spectrogram(audio, params), params)[0]


def data_fingerprint(entries) -> str:
    """Hash of (relative path, content hash, label) triples, independent of their order."""
    digest = hashlib.sha256()
    for entry in sorted(entries):
        digest.update("\t".join(entry).encode() + b"\n")
    return digest.hexdigest()[:16]


def feature_cache_dir(cache_root: Path, params: FeatureParams) -> Path:
    """The folder holding every cached spectrogram made with ``params``."""
    return Path(cache_root) / "features" / f"{params.representation}-{params.key()}"


def extract_features(
    tracks: list[Track],
    params: FeatureParams,
    cache_root: Path,
    *,
    segmenting: Segmenting | None = None,
    normalize: str = "per_clip",
    workers: int = 0,
    progress: bool = True,
) -> FeatureSet:
    """Network inputs for ``tracks``, from spectrograms cached or computed in ``workers`` processes.

    Files that cannot be decoded are skipped and listed in the result, never silently dropped.
    ``workers=0`` uses one process per CPU core; ``workers=1`` runs in this process.
    ``segmenting`` and ``normalize`` are as in :func:`network_inputs`.
    """

    cache_dir = feature_cache_dir(cache_root, params)
    cache_dir.mkdir(parents=True, exist_ok=True)
    _write_params_note(cache_dir, params)
    results = map_in_processes(_featurize, [track.path for track in tracks], params, cache_dir,
                               workers=workers, progress=progress, desc="features", unit="clip")
    return _assemble(tracks, results, params, segmenting=segmenting, normalize=normalize)


@dataclass
class _TrackResult:
    content_hash: str
    spectrogram: np.ndarray | None
    cached: bool
    error: str | None = None


def _featurize(path: Path, params: FeatureParams, cache_dir: Path) -> _TrackResult:
    """Worker: the cached spectrogram of one file, computing and storing it on a miss."""
    digest = content_hash(path)
    entry = cache_dir / digest[:2] / f"{digest}.npy"
    cached = _read_cache_entry(entry, params)
    if cached is not None:
        return _TrackResult(digest, cached, cached=True)
    try:
        audio = load_audio(path, params.sample_rate)
    except AudioDecodeError as error:
        return _TrackResult(digest, None, cached=False, error=str(error))
    spectrogram = compute_spectrogram(audio, params).astype(CACHE_DTYPE)
    _write_atomically(entry, spectrogram)
    return _TrackResult(digest, spectrogram, cached=False)


def _read_cache_entry(entry: Path, params: FeatureParams) -> np.ndarray | None:
    """A cached spectrogram, or None where it is absent or not a complete, well-formed entry."""
    if not entry.is_file():
        return None
    try:
        array = np.load(entry, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        log.warning("ignoring unreadable cache entry %s; recomputing", entry)
        return None
    if (array.ndim != 2 or array.shape[0] != params.bins or not 0 < array.shape[1] <= params.frames
            or array.dtype != CACHE_DTYPE):
        log.warning("ignoring cache entry %s of shape %s; recomputing", entry, array.shape)
        return None
    return array


def _write_atomically(entry: Path, array: np.ndarray) -> None:
    # Write beside the target and rename: a reader sees the old state or the whole new file,
    # never a partial one, even if this process is killed mid-write.
    entry.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(dir=entry.parent, prefix=".tmp-", suffix=".part", delete=False)
    try:
        with handle:
            np.save(handle, array, allow_pickle=False)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(handle.name, entry)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


def _write_params_note(cache_dir: Path, params: FeatureParams) -> None:
    note = cache_dir / "params.json"
    if not note.exists():
        note.write_text(json.dumps({**asdict(params), "version": FEATURE_VERSION}, indent=2))


def _assemble(tracks: list[Track], results: list[_TrackResult], params: FeatureParams, *,
              segmenting: Segmenting | None, normalize: str) -> FeatureSet:
    kept = [index for index in range(len(tracks)) if results[index].spectrogram is not None]
    inputs, owners = [], []
    for row, index in enumerate(kept):
        clip = network_inputs(results[index].spectrogram.astype(np.float32), params,
                              segmenting=segmenting, normalize=normalize).astype(CACHE_DTYPE)
        inputs.append(clip)
        owners.append(np.full(len(clip), row, dtype=np.int64))
        results[index].spectrogram = None  # the cached copy is no longer needed: halve the peak
    input_frames = segmenting.frames if segmenting else params.frames
    skipped = [
        SkippedFile(tracks[index].relative_path, results[index].error or "unknown error")
        for index in range(len(tracks))
        if results[index].error is not None
    ]
    return FeatureSet(
        inputs=np.concatenate(inputs) if inputs else np.empty((0, params.bins, input_frames), CACHE_DTYPE),
        clip_index=np.concatenate(owners) if owners else np.empty(0, dtype=np.int64),
        tracks=[tracks[index] for index in kept],
        fingerprint=data_fingerprint(
            (track.relative_path, results[index].content_hash, track.label)
            for index, track in enumerate(tracks)
        ),
        skipped=skipped,
        from_cache=sum(results[index].cached for index in kept),
    )
