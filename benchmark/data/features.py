"""Feature extraction with an on-disk, content-addressed cache, and the models' inputs.

Frame representations (``stft``, ``logmel``, ``mfcc``, ``musicnn-mel``) are cached per clip as
below; the vector representations, ``handcrafted`` (:mod:`benchmark.data.handcrafted`) and
``musicnn`` embeddings (:mod:`benchmark.pretrained.embed`), are cached as the clip's vectors, one
per segment (or one for the clip), since statistics and embeddings cannot be cut afterwards.

Each clip is decoded, trimmed to at most ``frames`` frames' worth of samples and transformed
(the study's dB STFT magnitude, or dB log-mel power) exactly once: the dB spectrogram is stored
as float16 under a key made of the file's content hash and the feature parameters, so renaming
or copying the data set keeps the cache, and changing any parameter misses it.

Frame representations are extracted in this process, in chunks of clips on a few threads
(:func:`~benchmark.data.parallel.map_chunks_in_threads`; decoding, hashing, FFTs and writes
release the GIL): the clips of a chunk share their framing and FFT
(:mod:`benchmark.data.spectrogram`, the values of :func:`compute_spectrogram`, which stays
the per-clip path prediction uses), and no worker process has to start first. ``stft``,
``logmel`` and ``mfcc`` go this way; ``musicnn-mel`` and ``handcrafted`` run a clip at a time
in worker processes (a clip's statistics are many small librosa steps, 40% of their time under
the GIL: two threads compute 1.45x as many clips as one, two processes twice as many; each
worker computes them with one BLAS thread), ``musicnn`` in this process. Either way with a
progress bar.

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
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
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
from benchmark.data.parallel import StopFlag, map_chunks_in_threads
from benchmark.data.scratch import mapped_array
from benchmark.data.segments import Segmenting
from benchmark.data.spectrogram import BATCHED_REPRESENTATIONS
from benchmark.data.tracks import (
    AudioDecodeError,
    Track,
    check_length,
    content_hash,
    load_audio,
    probe_length,
)
from benchmark.errors import BenchmarkError

log = logging.getLogger(__name__)

#: The rate musicnn's input is computed at (``musicnn-mel`` needs the data decoded at it).
MUSICNN_SAMPLE_RATE = 16000

CACHE_DTYPE = np.float16
#: Handcrafted statistics span 1e-8 to 1e7 (a centroid's variance): beyond float16.
VECTOR_DTYPE = np.float32
#: Bumped whenever the computation below changes, so old cache entries are never reused.
FEATURE_VERSION = 2  # 2: the cache holds unpadded, unscaled dB spectrograms
#: A representation whose cached values changed since has its own version, in its key instead.
#: ``logmel``, ``mfcc`` 3: extraction projects onto the mel bands with one BLAS thread (the
#: chunks run in parallel instead), and the last float32 bit of OpenBLAS's product depends on
#: its threading: on the default data, 1 float16 value in 41 million log-mel values (one step,
#: 0.03 dB) differs from version 2's, and more of the cepstral coefficients'. ``stft`` (no BLAS)
#: is bit for bit as before, and the other representations are computed as before.
#: ``handcrafted`` 3: extraction computes each vector with one BLAS thread (the clips run in
#: parallel instead, see :func:`~benchmark.data.handcrafted.one_blas_thread`): on the default
#: data, 892 of 1,000 vectors differ from version 2's in a statistic or more of the chroma,
#: MFCC and tonnetz (the others, tempo included, are bit for bit as before): float32 rounding,
#: at most 1.7e-7 of a variance and 8e-8 of a column's largest value in a mean (up to 7.5e-6
#: of its own value in a mean near zero). The SVM's and random forest's accuracies are unchanged.
#: ``stft``, ``logmel``, ``mfcc`` 4: computed in float32 (:mod:`benchmark.data.spectrogram`: a
#: float32 FFT and the mel filters over their own bins) rather than librosa's float64 FFT, by
#: extraction and serving alike. On the default data (100 clips) the dB move by at most 0.0007
#: (logmel) and 0.007 (stft), the MFCC by 0.0004; 0.01% of the float16 log-mel values, 0.03% of
#: the STFT's and 0.3% of the MFCC's round to the neighbouring float16 value, none further.
REPRESENTATION_VERSIONS = {"stft": 4, "logmel": 4, "mfcc": 4, "handcrafted": 3}

#: How a worker's death names the representations extracted in worker processes.
_STAGES = {"handcrafted": "handcrafted statistics", "musicnn-mel": "musicnn-mel spectrograms"}
#: Float32 magnitudes a chunk of clips may hold at once (bytes): 32 clips of 431 frames' STFT,
#: 12 of the study's 1320; clips per chunk at most, and in the first chunk (the bar moves at once).
_CHUNK_BYTES, _MAX_CHUNK, _FIRST_CHUNK = 64 << 20, 32, 4
#: Threads reading, decoding and writing files for the chunks: a chunk's fsyncs go together.
_IO_THREADS = 8


_FEATURE_DEFAULTS, _DATA_DEFAULTS = FeaturesConfig(), DataConfig()


def feature_version(representation: str) -> int:
    """The version in a representation's cache keys: :data:`FEATURE_VERSION` unless it has its own."""
    return REPRESENTATION_VERSIONS.get(representation, FEATURE_VERSION)


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
        payload = json.dumps({**values, "version": feature_version(self.representation)}, sort_keys=True)
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
    the floor at -80 dB, as ``librosa`` computes them. ``stft``, ``logmel`` and ``mfcc`` are
    :func:`~benchmark.data.spectrogram.batch_spectrograms` of this one clip, the very code
    extraction runs on chunks of clips: the values the audio model serves are those it trained on.
    """
    if params.is_vector:
        raise ValueError(f"{params.representation!r} is not a spectrogram: use clip_vectors")
    if params.representation in BATCHED_REPRESENTATIONS:
        from benchmark.data.spectrogram import batch_spectrograms

        return batch_spectrograms([audio], params)[0]
    from benchmark.data.spectrogram import prepared_audio
    from benchmark.pretrained.embed import log_mel

    return log_mel(prepared_audio(audio, params)).T[:, : params.frames].astype(np.float32)  # musicnn-mel


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
    """Network inputs for ``tracks``, from spectrograms cached or computed on ``workers`` cores.

    Files that cannot be decoded, are truncated or last under ``min_seconds`` are skipped and
    listed in the result, never silently dropped.
    ``stft``, ``logmel``, ``mfcc``: ``workers`` threads of this process compute chunks of clips
    (``0``: one per CPU core). ``musicnn-mel``, ``handcrafted``: ``workers`` processes (``0``:
    one per core, ``1``: this process). ``segmenting`` and ``normalize`` are as in
    :func:`network_inputs`.
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
    paths = [track.path for track in tracks]
    if params.representation not in BATCHED_REPRESENTATIONS:  # a clip at a time, in processes
        # librosa's compiled functions run in the workers: the harness's numba cache is compiled
        # before they start, and a worker's death is one line naming the clip and the signal.
        from benchmark.data.handcrafted import compile_numba_functions
        from benchmark.data.numba_cache import map_with_compiled_cache

        results = map_with_compiled_cache(compile_numba_functions, _featurize, paths, params, cache_dir, segmenting,
                                          min_seconds, workers=workers, progress=progress,
                                          desc=params.representation, unit="clip",
                                          stage=_STAGES.get(params.representation, params.representation))
    else:
        results = _extract_spectrograms(paths, params, cache_dir, min_seconds, workers=workers, progress=progress)
    return _assemble(tracks, results, params, segmenting=segmenting, normalize=normalize)


def _extract_spectrograms(paths: list[Path], params: FeatureParams, cache_dir: Path, min_seconds: float, *,
                          workers: int, progress: bool) -> list[_TrackResult]:
    """Every file's cached spectrogram, the missing ones computed in chunks on ``workers`` threads."""
    from threadpoolctl import threadpool_limits

    chunk = max(1, min(_MAX_CHUNK, _CHUNK_BYTES // (4 * max(params.frames, 1) * (params.n_fft // 2 + 1))))
    # One BLAS thread per product: the chunks are the parallelism. A threaded OpenBLAS product
    # (the mel projection) beside other busy threads waits on its spinning helpers, 10x slower.
    with threadpool_limits(1, user_api="blas"), \
            ThreadPoolExecutor(_IO_THREADS, thread_name_prefix="features-io") as files, _CacheWriter(files) as writer:
        results = map_chunks_in_threads(_featurize_chunk, paths, params, cache_dir, min_seconds, files, writer,
                                        chunk_size=chunk, first_chunk_size=_FIRST_CHUNK, workers=workers,
                                        progress=progress, desc=params.representation, unit="clip")
        writer.finish()
    return results


class _CacheWriter:
    """The chunks' cache writes, in order on a thread of their own: a chunk's fsyncs (tens of
    milliseconds) never hold up the computing of the next chunk.

    A failed write stops the writes after it (none of them begins) and is raised by the next
    chunk that hands one in, or by :meth:`finish`. Leaving the ``with`` block waits for the
    writes handed in, each of which leaves whole entries or none (:func:`_write_all_atomically`),
    so an interrupted extraction leaves no partial entry either.
    """

    def __init__(self, files: ThreadPoolExecutor):
        self._files = files
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="features-write")
        self._pending: list = []
        self._failure: BaseException | None = None

    def __enter__(self) -> _CacheWriter:
        return self

    def __exit__(self, *exc_info) -> None:
        self._pool.shutdown(wait=True)

    def write(self, entries: list[Path], arrays: list[np.ndarray], then: Callable[[], None] | None = None) -> None:
        """Write ``arrays`` to ``entries`` after the writes handed in before, then call ``then``;
        raises an earlier write's error."""
        if self._failure is not None:
            raise self._failure
        self._pending.append(self._pool.submit(self._write, entries, arrays, then))

    def finish(self) -> None:
        """Wait for every write handed in; raise the first that failed."""
        for future in self._pending:
            future.result()

    def _write(self, entries: list[Path], arrays: list[np.ndarray], then: Callable[[], None] | None) -> None:
        if self._failure is not None:
            return
        try:
            _write_all_atomically(entries, arrays, self._files)
            if then is not None:
                then()
        except BaseException as error:
            self._failure = error
            raise


@dataclass
class _TrackResult:
    content_hash: str
    #: The cached entry: a spectrogram, or a handcrafted vector per segment; None if undecodable.
    values: np.ndarray | None
    cached: bool
    error: str | None = None


def _cache_entry(cache_dir: Path, digest: str) -> Path:
    return cache_dir / digest[:2] / f"{digest}.npy"


def _look_up(path: Path, params: FeatureParams, cache_dir: Path, min_seconds: float,
             before_decoding: Callable[[], None] | None = None) -> tuple[_TrackResult, np.ndarray | None]:
    """A file's cached entry, or its reason to be skipped, or else its decoded audio to compute.

    A file that is truncated or shorter than ``min_seconds`` is skipped even where a cache entry
    exists (an older run may have cached it); the reason is ``data verify``'s for the same file.
    ``before_decoding`` runs where the file has to be decoded.
    """
    digest = content_hash(path)
    try:
        probe_length(path, min_seconds)  # headers only: cheap enough to ask of every cached file
    except AudioDecodeError as error:
        return _TrackResult(digest, None, cached=False, error=error.reason), None
    cached = _read_cache_entry(_cache_entry(cache_dir, digest), params)
    if cached is not None:
        return _TrackResult(digest, cached, cached=True), None
    if before_decoding is not None:
        before_decoding()
    try:
        audio = _decoded_audio(path, params.sample_rate, min_seconds)
    except AudioDecodeError as error:
        return _TrackResult(digest, None, cached=False, error=error.reason), None
    return _TrackResult(digest, None, cached=False), audio


_librosa_lock = threading.Lock()


def _decoded_audio(path: Path, sample_rate: int, min_seconds: float) -> np.ndarray:
    """``load_audio(path, sample_rate, min_seconds=...)``, without librosa for a mono file at ``sample_rate``.

    Such a file (GTZAN's, the synthetic set's) is soundfile's samples as they are: librosa's
    mixing and resampling return them unchanged, at 0.5 ms a clip, and their first use imports
    numba (0.4 s) before the first clip. Any other file (several channels, another rate, a
    format or content soundfile refuses) goes to ``load_audio``, which decodes it again and
    converts it or says why it fails, with librosa loaded first by one thread for all.
    """
    import soundfile

    try:
        samples, native_rate = soundfile.read(path, dtype="float32", always_2d=True)
    except Exception:  # noqa: BLE001  load_audio's decoders try again and give the reason
        samples, native_rate = None, 0
    if (samples is not None and samples.shape[1] == 1 and native_rate == sample_rate and samples.size
            and np.isfinite(samples).all()):
        check_length(path, len(samples), native_rate, min_seconds)
        return samples[:, 0]
    with _librosa_lock:  # librosa loads its submodules on first use: threads at once can see them half-made
        import librosa

        librosa.to_mono, librosa.resample  # noqa: B018
    return load_audio(path, sample_rate, min_seconds=min_seconds)


def _featurize(path: Path, params: FeatureParams, cache_dir: Path,
               segmenting: Segmenting | None = None, min_seconds: float = 0.0) -> _TrackResult:
    """Worker: the cached entry of one file (a spectrogram, or vectors), computed and stored on a miss."""
    result, audio = _look_up(path, params, cache_dir, min_seconds)
    if audio is None:
        return result
    if params.representation == "handcrafted":
        from benchmark.data.handcrafted import one_blas_thread

        with one_blas_thread():
            computed = handcrafted_vectors(audio, params, segmenting)
    elif params.is_vector:
        computed = clip_vectors(audio, params, segmenting).astype(VECTOR_DTYPE)
    else:
        computed = compute_spectrogram(audio, params).astype(CACHE_DTYPE)
    _write_atomically(_cache_entry(cache_dir, result.content_hash), computed)
    result.values = computed
    return result


def _featurize_chunk(paths: list[Path], params: FeatureParams, cache_dir: Path, min_seconds: float,
                     files: ThreadPoolExecutor, writer: _CacheWriter, *, stop: StopFlag) -> list[_TrackResult]:
    """A chunk's cached spectrograms: files looked up on the ``files`` threads, misses computed together
    and handed to ``writer``."""
    from benchmark.data.spectrogram import batch_spectrograms, warm_up

    def look_up(path: Path):
        stop.check()  # a chunk being abandoned: its queued files return at once
        # The window and mel bands are built by the first thread to decode (a cached run never builds them).
        return _look_up(path, params, cache_dir, min_seconds, before_decoding=lambda: warm_up(params))

    looked_up = list(files.map(look_up, paths))
    missing = [index for index, (_, audio) in enumerate(looked_up) if audio is not None]
    results = [result for result, _ in looked_up]
    if not missing:
        return results
    stop.check()
    spectrograms = batch_spectrograms([looked_up[index][1] for index in missing], params)
    del looked_up
    computed = [spectrogram.astype(CACHE_DTYPE) for spectrogram in spectrograms]
    del spectrograms
    stop.check()
    entries = [_cache_entry(cache_dir, results[index].content_hash) for index in missing]
    for index, values in zip(missing, computed):
        results[index].values = values

    def mapped_once_written() -> None:  # the computed values leave memory for the page cache
        for index, entry in zip(missing, entries):
            results[index].values = np.load(entry, mmap_mode="r", allow_pickle=False)

    writer.write(entries, computed, then=mapped_once_written)
    return results


#: NumPy parses a ``.npy`` header with ``ast.literal_eval``, and CPython 3.11's parser is not safe
#: to enter from several threads at once: the I/O threads reading cache entries raised
#: ``SystemError: AST constructor recursion depth mismatch`` (seen in a test run). Opening a
#: map is only the header, so one at a time costs nothing measurable.
_npy_header_lock = threading.Lock()


def _read_cache_entry(entry: Path, params: FeatureParams) -> np.ndarray | None:
    """A cached entry, or None where it is absent or not a complete, well-formed entry."""
    if not entry.is_file():
        return None
    try:
        # A spectrogram is mapped, not read: assembling reads it once, a clip at a time, so the
        # whole set is never held (a truncated file fails here, as it fails to load).
        with _npy_header_lock:
            array = np.load(entry, allow_pickle=False, mmap_mode=None if params.is_vector else "r")
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
    _write_all_atomically([entry], [array])


def _write_all_atomically(entries: list[Path], arrays: list[np.ndarray],
                          files: ThreadPoolExecutor | None = None) -> None:
    """Each array to its entry as :func:`_write_atomically` does, the fsyncs together on ``files``' threads.

    Every array is written to a temporary file beside its entry; once all are on disk (fsync'd,
    concurrently: one journal commit rather than one each), each is renamed over its entry. A
    failure, Ctrl-C or kill at any point leaves whole entries or none: never a partial file
    under an entry's name, and the temporary files are removed (a killed process may leave
    ``.tmp-*.part`` files, which no reader takes for an entry).
    """
    handles, entry = [], None
    try:
        for entry, array in zip(entries, arrays):
            entry.parent.mkdir(parents=True, exist_ok=True)
            handles.append(tempfile.NamedTemporaryFile(dir=entry.parent, prefix=".tmp-", suffix=".part",
                                                       delete=False))
            np.save(handles[-1], array, allow_pickle=False)
            handles[-1].flush()
        entry = None
        syncs = (files.map if files is not None and len(handles) > 1 else map)(_fsync, handles)
        for _ in syncs:
            pass
        for handle, entry in zip(handles, entries):
            handle.close()
            os.replace(handle.name, entry)
    except BaseException as error:
        for handle in handles:
            handle.close()
            Path(handle.name).unlink(missing_ok=True)  # those already renamed are whole entries
        if isinstance(error, OSError) and not error.filename:  # a failed write names no file: say which
            raise OSError(error.errno, error.strerror, str(entry or entries[0])) from error
        raise


def _fsync(handle) -> None:
    os.fsync(handle.fileno())


def _write_params_note(cache_dir: Path, params: FeatureParams) -> None:
    note = cache_dir / "params.json"
    if not note.exists():
        note.write_text(json.dumps({**asdict(params), "version": feature_version(params.representation)}, indent=2))


def _assemble(tracks: list[Track], results: list[_TrackResult], params: FeatureParams, *,
              segmenting: Segmenting | None, normalize: str) -> FeatureSet:
    """Every kept clip's inputs, in track order, into one read-only scratch-file array.

    A clip at a time: its cached entry (mapped, not loaded: see :func:`_read_cache_entry`)
    becomes its network inputs, written into the file, so that no copy of the whole set is ever
    in memory (2.7 GB at the study's input on 1,000 clips; the list and its concatenation used
    to hold it twice).
    """
    kept = [index for index in range(len(tracks)) if results[index].values is not None]
    counts = np.array([_input_count(results[index].values, params, segmenting) for index in kept], dtype=np.int64)
    shape = (int(counts.sum()), params.bins) if params.is_vector else \
        (int(counts.sum()), params.bins, segmenting.frames if segmenting else params.frames)
    dtype = VECTOR_DTYPE if params.is_vector else CACHE_DTYPE

    def clips() -> Iterator[np.ndarray]:
        for index in kept:
            values, results[index].values = results[index].values, None  # its entry unmapped once used
            if params.is_vector:  # vectors are one per segment already; learners scale them themselves
                yield values
            else:
                yield network_inputs(np.asarray(values, dtype=np.float32), params, segmenting=segmenting,
                                     normalize=normalize)

    skipped = [
        SkippedFile(tracks[index].relative_path, results[index].error or "unknown error")
        for index in range(len(tracks))
        if results[index].error is not None
    ]
    return FeatureSet(
        inputs=mapped_array(shape, dtype, clips(), name=params.representation),
        clip_index=np.repeat(np.arange(len(kept), dtype=np.int64), counts),
        tracks=[tracks[index] for index in kept],
        fingerprint=data_fingerprint(
            (track.relative_path, results[index].content_hash, track.label)
            for index, track in enumerate(tracks)
        ),
        skipped=skipped,
        from_cache=sum(results[index].cached for index in kept),
    )


def _input_count(values: np.ndarray, params: FeatureParams, segmenting: Segmenting | None) -> int:
    """How many model inputs a clip's cached entry gives: one, its segments, or its vectors' rows."""
    if params.is_vector:
        return len(values)
    return 1 if segmenting is None else len(segmenting.starts(values.shape[1]))
