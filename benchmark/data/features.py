"""Feature extraction with an on-disk, content-addressed cache, and the models' inputs.

Frame representations (``stft``, ``logmel``, ``mfcc``, ``musicnn-mel``) are cached per clip as
below; the vector representations, ``handcrafted`` (:mod:`benchmark.data.handcrafted`) and
``musicnn`` embeddings (:mod:`benchmark.pretrained.embed`), are cached as the clip's vectors, one
per segment (or one for the clip), since statistics and embeddings cannot be cut afterwards.

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

from benchmark.config import (
    FRAME_REPRESENTATIONS,
    REPRESENTATIONS,
    DataConfig,
    ExperimentConfig,
    FeaturesConfig,
)
from benchmark.data.normalize import scale_per_clip
from benchmark.data.parallel import map_in_processes
from benchmark.data.segments import Segmenting
from benchmark.data.tracks import AudioDecodeError, Track, content_hash, load_audio, probe_length
from benchmark.errors import BenchmarkError

log = logging.getLogger(__name__)

#: The rate musicnn's input is computed at (``musicnn-mel`` needs the data decoded at it).
MUSICNN_SAMPLE_RATE = 16000

CACHE_DTYPE = np.float16
#: Handcrafted statistics span 1e-8 to 1e7 (a centroid's variance): beyond float16.
VECTOR_DTYPE = np.float32
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
    n_mfcc: int = _FEATURE_DEFAULTS.n_mfcc
    handcrafted_extras: bool = _FEATURE_DEFAULTS.handcrafted_extras
    #: ``musicnn`` only (empty otherwise): the pretrained network, its activations, and the
    #: sha256 of its checkpoint (:func:`benchmark.pretrained.weights.checkpoint_id`).
    musicnn_model: str = ""
    musicnn_layers: tuple[str, ...] = ()
    musicnn_checkpoint: str = ""

    def __post_init__(self):
        if self.representation not in REPRESENTATIONS:
            raise BenchmarkError(
                f"unknown representation {self.representation!r} ({', '.join(REPRESENTATIONS)})"
            )
        object.__setattr__(self, "musicnn_layers", tuple(self.musicnn_layers))  # a list, read from JSON
        if self.representation == "musicnn-mel" and self.sample_rate != MUSICNN_SAMPLE_RATE:
            raise BenchmarkError(f"representation 'musicnn-mel' is musicnn's own input at {MUSICNN_SAMPLE_RATE} Hz: "
                                 f"set data.sample_rate = {MUSICNN_SAMPLE_RATE} (got {self.sample_rate})")

    @classmethod
    def from_config(cls, config: ExperimentConfig, model: str | None = None) -> FeatureParams:
        """The feature parameters an experiment asks for (those of one model entry, if named)."""
        features = config.features if model is None else config.features_for(model)
        return cls.from_features(features, config.data.sample_rate)

    @classmethod
    def from_features(cls, features: FeaturesConfig, sample_rate: int) -> FeatureParams:
        """The parameters of one ``[features]`` setting at ``sample_rate``."""
        values = {item.name: getattr(features, item.name) for item in fields(cls) if hasattr(features, item.name)
                  and item.name != "sample_rate"}
        if features.representation == "musicnn":
            from benchmark.pretrained.weights import checkpoint_id

            values["musicnn_checkpoint"] = checkpoint_id(features.musicnn_model)
        else:  # settings of a representation not used: left out of the parameters (and cache keys)
            values.update(musicnn_model="", musicnn_layers=())
        return cls(sample_rate=sample_rate, **values)

    def as_handcrafted(self) -> FeatureParams:
        """The same clip length and STFT, as handcrafted statistics (the combined model's second input)."""
        from dataclasses import replace

        return replace(self, representation="handcrafted")

    @property
    def is_vector(self) -> bool:
        """True where a clip (or segment) is one vector rather than frames (``handcrafted``, ``musicnn``)."""
        return self.representation not in FRAME_REPRESENTATIONS

    @property
    def n_samples(self) -> int:
        """Clip length giving exactly ``frames`` centred frames: 1319 * 512 = 675,328 in the study.

        Longer clips are trimmed to it; shorter ones are padded when whole clips are the input.
        """
        return (self.frames - 1) * self.hop_length

    @property
    def bins(self) -> int:
        """Rows per frame: ``n_fft // 2 + 1`` for the STFT (1025), ``n_mels`` for log-mel,
        ``n_mfcc`` for MFCC; a handcrafted vector's or a musicnn embedding's length."""
        if self.representation == "handcrafted":
            from benchmark.data.handcrafted import handcrafted_columns

            return len(handcrafted_columns(self.handcrafted_extras))
        if self.representation == "musicnn":
            from benchmark.pretrained.embed import embedding_size

            return embedding_size(self.musicnn_layers)
        return {"stft": self.n_fft // 2 + 1, "logmel": self.n_mels, "mfcc": self.n_mfcc,
                "musicnn-mel": self.n_mels}[self.representation]

    @property
    def shape(self) -> tuple[int, ...]:
        """A whole clip's input shape: (bins, frames), or (columns,) for a handcrafted vector."""
        return (self.bins,) if self.is_vector else (self.bins, self.frames)

    def key(self, segmenting: Segmenting | None = None) -> str:
        """A short stable hash of the parameters that shape a cache entry (and the code version).

        Only the fields the representation uses count, so adding a field for one representation
        never invalidates another's cache. Handcrafted vectors are computed per segment, so
        their key holds the segmenting too.
        """
        # (stft keys have always held n_mels: kept, so existing caches stay valid.)
        musicnn = ("musicnn_model", "musicnn_layers", "musicnn_checkpoint")
        unused = {"stft": ("n_mfcc", "handcrafted_extras", *musicnn),
                  "logmel": ("n_mfcc", "handcrafted_extras", *musicnn),
                  "mfcc": ("handcrafted_extras", *musicnn), "handcrafted": ("n_mels", "n_mfcc", *musicnn),
                  "musicnn": ("n_fft", "n_mels", "n_mfcc", "handcrafted_extras"),
                  "musicnn-mel": ("n_mfcc", "handcrafted_extras", *musicnn)}[self.representation]
        values = {key: value for key, value in asdict(self).items() if key not in unused}
        if self.is_vector and segmenting is not None:
            values["segmenting"] = segmenting.describe()
        payload = json.dumps({**values, "version": FEATURE_VERSION}, sort_keys=True)
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
    if params.is_vector:
        raise ValueError(f"{params.representation!r} is not a spectrogram: use clip_vectors")
    if params.representation == "musicnn-mel":
        from benchmark.pretrained.embed import log_mel

        return log_mel(audio).T[:, : params.frames].astype(np.float32)
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
        if params.representation == "mfcc":
            # Cepstral coefficients of the log-mel: no longer dB, and not bounded like them.
            decibels = librosa.feature.mfcc(S=decibels, sr=params.sample_rate, n_mfcc=params.n_mfcc)
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
    the clip's floor (0 after scaling, its quietest dB value otherwise). ``musicnn-mel`` is never
    scaled: the pretrained network's input batch normalisation expects musicnn's own values.
    """
    scaled = normalize == "per_clip" and params.representation != "musicnn-mel"
    values = scale_per_clip(spectrogram) if scaled else spectrogram
    floor = float(values.min()) if values.size else 0.0
    if segmenting is not None:
        return segmenting.cut(values, floor)
    whole = np.full((1, params.bins, params.frames), floor, dtype=values.dtype)
    kept = min(values.shape[1], params.frames)
    whole[0, :, :kept] = values[:, :kept]
    return whole


def audio_pieces(audio: np.ndarray, params: FeatureParams, segmenting: Segmenting | None = None) -> list[np.ndarray]:
    """The stretches of a clip's audio that get one vector each: the clip, or each segment.

    The clip is trimmed to ``params.n_samples``, as for spectrograms; each segment is the audio
    under the frames a spectrogram segment would cover (``segmenting.starts``), so segment ``i``
    of every representation is the same stretch of audio.
    """
    audio = np.asarray(audio, dtype=np.float32)[: params.n_samples]
    if segmenting is None:
        return [audio]
    total_frames = min(1 + audio.size // params.hop_length, params.frames)
    length = (segmenting.frames - 1) * params.hop_length
    pieces = []
    for start in segmenting.starts(total_frames):
        piece = audio[start * params.hop_length: start * params.hop_length + length]
        pieces.append(np.pad(piece, (0, length - piece.size)))  # a padded last segment
    return pieces


def handcrafted_vectors(audio: np.ndarray, params: FeatureParams, segmenting: Segmenting | None = None) -> np.ndarray:
    """A clip's handcrafted vectors, float32 (segments or 1, columns), one per :func:`audio_pieces`."""
    from benchmark.data.handcrafted import clip_statistics

    return np.stack([
        clip_statistics(piece, params.sample_rate, n_fft=params.n_fft, hop_length=params.hop_length,
                        extras=params.handcrafted_extras)
        for piece in audio_pieces(audio, params, segmenting)
    ]).astype(VECTOR_DTYPE)


def musicnn_vectors(audio: np.ndarray, params: FeatureParams, segmenting: Segmenting | None = None, *,
                    weights: str | Path | None = None) -> np.ndarray:
    """A clip's musicnn embeddings, float32 (segments or 1, size), one per :func:`audio_pieces`.

    ``weights``: the network's ``.npz`` (an audio model's bundled copy); by default the cached
    one, fetched on first use.
    """
    from benchmark.pretrained.embed import embedder
    from benchmark.pretrained.weights import weights_file

    weights = weights or weights_file(params.musicnn_model)
    network = embedder(str(weights), params.musicnn_layers)
    return network.embed(audio_pieces(audio, params, segmenting), params.sample_rate).astype(VECTOR_DTYPE)


def clip_vectors(audio: np.ndarray, params: FeatureParams, segmenting: Segmenting | None = None, *,
                 weights: str | Path | None = None) -> np.ndarray:
    """A clip's vectors of a vector representation, float32 (segments or 1, size)."""
    if params.representation == "musicnn":
        return musicnn_vectors(audio, params, segmenting, weights=weights)
    return handcrafted_vectors(audio, params, segmenting)


def clip_inputs(audio: np.ndarray, params: FeatureParams, *, segmenting: Segmenting | None = None,
                normalize: str = "per_clip", weights: str | Path | None = None) -> np.ndarray:
    """One clip's model inputs from its audio, float32: what extraction and the audio model compute.

    Frames: (1 or segments, bins, frames), scaled per clip unless standardised later; a
    vector per clip or segment: (1 or segments, columns), never scaled per clip. ``weights``:
    a pretrained network's weights file, for ``musicnn`` (default: the cached one).
    """
    if params.is_vector:
        return clip_vectors(audio, params, segmenting, weights=weights)
    return network_inputs(compute_spectrogram(audio, params), params, segmenting=segmenting,
                          normalize=normalize).astype(np.float32)


def compute_features(audio: np.ndarray, params: FeatureParams) -> np.ndarray:
    """The study's input of one clip: float32 (bins, frames), padded or trimmed, scaled to [0, 1]."""
    return network_inputs(compute_spectrogram(audio, params), params)[0]


def data_fingerprint(entries) -> str:
    """Hash of (relative path, content hash, label) triples, independent of their order."""
    digest = hashlib.sha256()
    for entry in sorted(entries):
        digest.update("\t".join(entry).encode() + b"\n")
    return digest.hexdigest()[:16]


def feature_cache_dir(cache_root: Path, params: FeatureParams, segmenting: Segmenting | None = None) -> Path:
    """The folder holding every cached entry made with ``params`` (and ``segmenting``, for vectors)."""
    return Path(cache_root) / "features" / f"{params.representation}-{params.key(segmenting)}"


def extract_features(
    tracks: list[Track],
    params: FeatureParams,
    cache_root: Path,
    *,
    segmenting: Segmenting | None = None,
    normalize: str = "per_clip",
    workers: int = 0,
    progress: bool = True,
    min_seconds: float = 0.0,
) -> FeatureSet:
    """Network inputs for ``tracks``, from spectrograms cached or computed in ``workers`` processes.

    Files that cannot be decoded, are truncated or last under ``min_seconds`` are skipped and
    listed in the result, never silently dropped.
    ``workers=0`` uses one process per CPU core; ``workers=1`` runs in this process.
    ``segmenting`` and ``normalize`` are as in :func:`network_inputs`.
    """

    cache_dir = feature_cache_dir(cache_root, params, segmenting)
    cache_dir.mkdir(parents=True, exist_ok=True)
    if params.representation == "musicnn":
        # The network runs in this process, each clip's windows in batches, on every core the
        # backend uses; fetched (once) before any work, so a failed fetch costs nothing.
        from benchmark.pretrained.weights import weights_file

        weights_file(params.musicnn_model)
        workers = 1
    _write_params_note(cache_dir, params)
    vector_segmenting = segmenting if params.is_vector else None
    results = map_in_processes(_featurize, [track.path for track in tracks], params, cache_dir,
                               vector_segmenting, min_seconds, workers=workers, progress=progress,
                               desc=params.representation, unit="clip")
    return _assemble(tracks, results, params, segmenting=segmenting, normalize=normalize)


@dataclass
class _TrackResult:
    content_hash: str
    #: The cached entry: a spectrogram, or a handcrafted vector per segment; None if undecodable.
    values: np.ndarray | None
    cached: bool
    error: str | None = None


def _featurize(path: Path, params: FeatureParams, cache_dir: Path,
               segmenting: Segmenting | None = None, min_seconds: float = 0.0) -> _TrackResult:
    """Worker: the cached entry of one file (a spectrogram, or vectors), computed and stored on a miss.

    A file that is truncated or shorter than ``min_seconds`` is skipped even where a cache entry
    exists (an older run may have cached it); the reason is ``data verify``'s for the same file.
    """
    digest = content_hash(path)
    entry = cache_dir / digest[:2] / f"{digest}.npy"
    try:
        probe_length(path, min_seconds)  # headers only: cheap enough to ask of every cached file
    except AudioDecodeError as error:
        return _TrackResult(digest, None, cached=False, error=error.reason)
    cached = _read_cache_entry(entry, params)
    if cached is not None:
        return _TrackResult(digest, cached, cached=True)
    try:
        audio = load_audio(path, params.sample_rate, min_seconds=min_seconds)
    except AudioDecodeError as error:
        return _TrackResult(digest, None, cached=False, error=error.reason)
    if params.is_vector:
        computed = clip_vectors(audio, params, segmenting).astype(VECTOR_DTYPE)
    else:
        computed = compute_spectrogram(audio, params).astype(CACHE_DTYPE)
    _write_atomically(entry, computed)
    return _TrackResult(digest, computed, cached=False)


def _read_cache_entry(entry: Path, params: FeatureParams) -> np.ndarray | None:
    """A cached entry, or None where it is absent or not a complete, well-formed entry."""
    if not entry.is_file():
        return None
    try:
        array = np.load(entry, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        log.warning("ignoring unreadable cache entry %s; recomputing", entry)
        return None
    if params.is_vector:
        malformed = array.ndim != 2 or array.shape[1] != params.bins or array.dtype != VECTOR_DTYPE
    else:
        malformed = (array.ndim != 2 or array.shape[0] != params.bins or not 0 < array.shape[1] <= params.frames
                     or array.dtype != CACHE_DTYPE)
    if malformed:
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
    except BaseException as error:
        Path(handle.name).unlink(missing_ok=True)
        if isinstance(error, OSError) and not error.filename:  # a failed write names no file: say which
            raise OSError(error.errno, error.strerror, str(entry)) from error
        raise


def _write_params_note(cache_dir: Path, params: FeatureParams) -> None:
    note = cache_dir / "params.json"
    if not note.exists():
        note.write_text(json.dumps({**asdict(params), "version": FEATURE_VERSION}, indent=2))


def _assemble(tracks: list[Track], results: list[_TrackResult], params: FeatureParams, *,
              segmenting: Segmenting | None, normalize: str) -> FeatureSet:
    kept = [index for index in range(len(tracks)) if results[index].values is not None]
    inputs, owners = [], []
    for row, index in enumerate(kept):
        if params.is_vector:  # already one vector per segment; learners scale them themselves
            clip = results[index].values
        else:
            clip = network_inputs(results[index].values.astype(np.float32), params,
                                  segmenting=segmenting, normalize=normalize).astype(CACHE_DTYPE)
        inputs.append(clip)
        owners.append(np.full(len(clip), row, dtype=np.int64))
        results[index].values = None  # the cached copy is no longer needed: halve the peak
    empty_shape = (0, params.bins) if params.is_vector else (0, params.bins, segmenting.frames if segmenting
                                                               else params.frames)
    skipped = [
        SkippedFile(tracks[index].relative_path, results[index].error or "unknown error")
        for index in range(len(tracks))
        if results[index].error is not None
    ]
    return FeatureSet(
        inputs=np.concatenate(inputs) if inputs else np.empty(empty_shape, CACHE_DTYPE),
        clip_index=np.concatenate(owners) if owners else np.empty(0, dtype=np.int64),
        tracks=[tracks[index] for index in kept],
        fingerprint=data_fingerprint(
            (track.relative_path, results[index].content_hash, track.label)
            for index, track in enumerate(tracks)
        ),
        skipped=skipped,
        from_cache=sum(results[index].cached for index in kept),
    )
