"""Handcrafted clip statistics: the public GTZAN features table's 57 columns, and two more sets.

The public table (the Kaggle GTZAN release's ``features_30_sec.csv``) describes a clip by the
mean and variance of librosa's frame features over the clip, in this order: ``chroma_stft``,
``rms``, ``spectral_centroid``, ``spectral_bandwidth``, ``rolloff``, ``zero_crossing_rate``,
``harmony`` and ``perceptr`` (the samples of the harmonic and percussive parts from HPSS), then
``tempo``, then ``mfcc1`` .. ``mfcc20``. With ``extras``, spectral contrast (7 bands) and
tonnetz (6 dimensions) means and variances follow as named columns; tonnetz is computed from the
STFT chroma rather than librosa's default constant-Q chroma, which costs ten times as much.

Every feature is librosa's, with its defaults (2048-sample windows, hop 512: ``n_fft`` and
``hop_length`` of the experiment), computed from one STFT of the clip where librosa would
compute the same STFT again; a test checks the columns against direct librosa calls. The
harmonic-percussive separation is librosa's with its median filters run as scipy's 1-D filter
(:func:`hpss`, bit for bit the same; librosa's own took three quarters of a clip's time), and
extraction computes the statistics with one BLAS thread (:func:`one_blas_thread`).
"""

from __future__ import annotations

import numpy as np

#: The frame features whose mean and variance the public table gives, in its order.
_FRAME_FEATURES = (
    "chroma_stft", "rms", "spectral_centroid", "spectral_bandwidth", "rolloff", "zero_crossing_rate",
    "harmony", "perceptr",
)
N_MFCC = 20
#: The public GTZAN features table's 57 statistics, with its names and order.
TABLE_COLUMNS = (
    *(f"{name}_{stat}" for name in _FRAME_FEATURES for stat in ("mean", "var")),
    "tempo",
    *(f"mfcc{index}_{stat}" for index in range(1, N_MFCC + 1) for stat in ("mean", "var")),
)
#: The extra columns: spectral contrast (6 sub-bands and the top band) and the six tonnetz
#: dimensions, each mean and variance.
EXTRA_COLUMNS = (
    *(f"spectral_contrast{band}_{stat}" for band in range(1, 8) for stat in ("mean", "var")),
    *(f"tonnetz{dimension}_{stat}" for dimension in range(1, 7) for stat in ("mean", "var")),
)


def handcrafted_columns(extras: bool) -> tuple[str, ...]:
    """The column names of a handcrafted vector: the public table's 57, then the extras."""
    return TABLE_COLUMNS + (EXTRA_COLUMNS if extras else ())


def clip_statistics(audio: np.ndarray, sample_rate: int, *, n_fft: int = 2048, hop_length: int = 512,
                    extras: bool = True) -> np.ndarray:
    """One clip's (or segment's) handcrafted vector, float32, in :func:`handcrafted_columns` order."""
    import librosa

    y = np.asarray(audio, dtype=np.float32)
    if y.size < n_fft:  # shorter than one window: pad it to one, as the spectrograms are
        y = librosa.util.fix_length(y, size=n_fft)
    stft = librosa.stft(y, n_fft=n_fft, hop_length=hop_length)
    magnitude = np.abs(stft)
    power = magnitude**2
    mel_db = librosa.power_to_db(librosa.feature.melspectrogram(S=power, sr=sample_rate))
    chroma = librosa.feature.chroma_stft(S=power, sr=sample_rate, n_fft=n_fft, hop_length=hop_length)
    harmonic_stft, percussive_stft = hpss(stft)
    centroid = librosa.feature.spectral_centroid(S=magnitude, sr=sample_rate, n_fft=n_fft, hop_length=hop_length)
    frame_features = {
        "chroma_stft": chroma,
        "rms": librosa.feature.rms(y=y, frame_length=n_fft, hop_length=hop_length),
        "spectral_centroid": centroid,
        "spectral_bandwidth": librosa.feature.spectral_bandwidth(S=magnitude, sr=sample_rate, n_fft=n_fft,
                                                                 hop_length=hop_length, centroid=centroid),
        "rolloff": librosa.feature.spectral_rolloff(S=magnitude, sr=sample_rate, n_fft=n_fft,
                                                    hop_length=hop_length),
        "zero_crossing_rate": librosa.feature.zero_crossing_rate(y, frame_length=n_fft, hop_length=hop_length),
        "harmony": librosa.istft(harmonic_stft, hop_length=hop_length, length=y.size),
        "perceptr": librosa.istft(percussive_stft, hop_length=hop_length, length=y.size),
    }
    values = [stat for name in _FRAME_FEATURES for stat in _mean_var(frame_features[name])]
    onsets = librosa.onset.onset_strength(S=mel_db, sr=sample_rate, hop_length=hop_length)
    values.append(float(librosa.feature.tempo(onset_envelope=onsets, sr=sample_rate, hop_length=hop_length)[0]))
    mfcc = librosa.feature.mfcc(S=mel_db, sr=sample_rate, n_mfcc=N_MFCC)
    values += [stat for row in mfcc for stat in _mean_var(row)]
    if extras:
        contrast = librosa.feature.spectral_contrast(S=magnitude, sr=sample_rate, n_fft=n_fft,
                                                    hop_length=hop_length)
        tonnetz = librosa.feature.tonnetz(chroma=chroma, sr=sample_rate)
        values += [stat for row in (*contrast, *tonnetz) for stat in _mean_var(row)]
    return np.asarray(values, dtype=np.float32)


def compile_numba_functions() -> None:
    """Run every librosa step of :func:`clip_statistics` once, so numba compiles (and caches) them all.

    Three seconds of a chord and noise: chroma's tuning estimate, the beat tracker, HPSS and the
    inverse STFT all run, at the types extraction calls them with. What
    :mod:`benchmark.data.numba_cache` runs before extraction's workers start.
    """
    rate = 22050
    time = np.arange(3 * rate, dtype=np.float32) / rate
    clip = sum(np.sin(2 * np.pi * pitch * time) for pitch in (220.0, 277.2, 329.6)) * np.float32(0.2)
    clip += np.random.default_rng(0).standard_normal(clip.size).astype(np.float32) * np.float32(0.01)
    with one_blas_thread():
        clip_statistics(clip.astype(np.float32), rate, extras=True)


def one_blas_thread():
    """A context in which BLAS runs on one thread: how extraction computes every vector.

    Extraction runs a clip per worker process on every core; a threaded BLAS product (the mel
    and chroma projections) in each would put two busy threads on each core, and its helper
    threads spin while they wait for the next product: a third of the CPU time. One thread also
    makes the vectors independent of the machine's core count: OpenBLAS rounds the last bit of
    a product differently with one thread than with several (1 float32 ulp of some MFCC and
    tonnetz statistics), which is why ``handcrafted`` has its own cache version.
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1, user_api="blas")


def hpss(stft: np.ndarray, kernel_size: int = 31) -> tuple[np.ndarray, np.ndarray]:
    """``librosa.decompose.hpss(stft, kernel_size=kernel_size)``, value for value, 7x faster.

    librosa's harmonic-percussive separation filters the (bins, frames) magnitude twice with
    ``scipy.ndimage.median_filter``: a median over ``kernel_size`` frames of each bin, and over
    ``kernel_size`` bins of each frame. Given a 2-D array, scipy selects every sample's median
    afresh (0.2 s a filter at 1025 x 431: the two took three quarters of a clip's statistics);
    given a 1-D one, it slides a running median along it instead. So here the lines go through the 1-D
    filter (:func:`_median_lines`): a median is one of its window's values however it is found,
    and each line's edges are reflected as scipy reflects them, so the filtered magnitudes are
    bit for bit librosa's. The rest is librosa's own steps with ``hpss``'s defaults (power 2,
    margin 1, so zeros are split evenly), on the same arrays.
    """
    import librosa

    magnitude, phase = librosa.magphase(stft)
    harmonic = _median_lines(magnitude, kernel_size, axis=-1)
    percussive = _median_lines(magnitude, kernel_size, axis=-2)
    harmonic_mask = librosa.util.softmask(harmonic, percussive, power=2.0, split_zeros=True)
    percussive_mask = librosa.util.softmask(percussive, harmonic, power=2.0, split_zeros=True)
    return (magnitude * harmonic_mask) * phase, (magnitude * percussive_mask) * phase


def _median_lines(values: np.ndarray, size: int, axis: int) -> np.ndarray:
    """``scipy.ndimage.median_filter`` of ``size`` along ``axis`` only, with ``"reflect"`` edges, in 1-D.

    Each line is padded with its own reflection (numpy's ``"symmetric"`` is scipy's ``"reflect"``)
    and the padded lines, end to end, go through one 1-D filter: the window of a sample of a line
    never leaves that line's padding, and one call costs no Python per line. Lines shorter than
    the window (the bins' of a clip of under 31 frames) go one at a time, reflected by scipy.
    """
    from scipy.ndimage import median_filter

    half = size // 2
    lines = np.moveaxis(values, axis, -1)
    if lines.shape[-1] < size:
        lines = np.ascontiguousarray(lines)
        filtered = np.empty_like(lines)
        for index in np.ndindex(lines.shape[:-1]):
            median_filter(lines[index], size=size, mode="reflect", output=filtered[index])
        return np.moveaxis(filtered, -1, axis)
    padded = np.pad(lines, [(0, 0)] * (lines.ndim - 1) + [(half, size - 1 - half)], mode="symmetric")
    filtered = median_filter(padded.reshape(-1), size=size, mode="reflect").reshape(padded.shape)
    return np.moveaxis(filtered[..., half: half + lines.shape[-1]], -1, axis)


def _mean_var(values: np.ndarray) -> tuple[float, float]:
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()), float(values.var())


def features_table(root, *, sample_rate: int = 22050, n_fft: int = 2048, hop_length: int = 512,
                   extras: bool = True, workers: int = 0, progress: bool = True):
    """The handcrafted table of a folder-per-genre tree: ``filename, length, <columns>, label``.

    One row per decodable file, over the whole clip (no trimming), as the public GTZAN table
    has it; ``length`` is the clip's length in samples. Undecodable files are left out and
    returned beside the table as (relative path, reason) pairs.
    """
    import pandas as pd

    from benchmark.data.numba_cache import map_with_compiled_cache
    from benchmark.data.tracks import discover_tracks

    tracks = discover_tracks(root)
    rows = map_with_compiled_cache(compile_numba_functions, _table_row, [track.path for track in tracks],
                                   sample_rate, n_fft, hop_length, extras, workers=workers, progress=progress,
                                   desc="handcrafted", unit="clip", stage="handcrafted statistics")
    columns = handcrafted_columns(extras)
    kept = [(track, row) for track, row in zip(tracks, rows, strict=True) if not isinstance(row, str)]
    table = pd.DataFrame([row[1] for _, row in kept], columns=list(columns))
    table.insert(0, "length", [row[0] for _, row in kept])
    table.insert(0, "filename", [track.name for track, _ in kept])  # printable
    table["label"] = [track.label for track, _ in kept]
    skipped = [(track.relative_path, row) for track, row in zip(tracks, rows, strict=True) if isinstance(row, str)]
    return table, skipped


def _table_row(path, sample_rate: int, n_fft: int, hop_length: int, extras: bool):
    """Worker: (length in samples, vector) of one file, or the reason it could not be decoded."""
    from benchmark.data.tracks import AudioDecodeError, load_audio

    try:
        audio = load_audio(path, sample_rate)
    except AudioDecodeError as error:
        return str(error)
    with one_blas_thread():
        return audio.size, clip_statistics(audio, sample_rate, n_fft=n_fft, hop_length=hop_length, extras=extras)
