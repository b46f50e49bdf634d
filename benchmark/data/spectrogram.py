"""dB spectrograms of clips, in float32: what :func:`~benchmark.data.features.compute_spectrogram` computes.

One clip (serving) or a chunk of thousands (extraction), the same code: ``compute_spectrogram``
is :func:`batch_spectrograms` of one clip, so training and serving compute the same values.
The clips of a call share the window, the mel bands and the buffers, and each clip's frames go
through the steps in blocks of :data:`_FFT_BLOCK_FRAMES` that stay in the core's cache:

- centred frames as ``librosa.stft`` makes them: ``n_fft // 2`` zeros at each end, the clip's
  float32 samples framed in place (a strided view, never copied out);
- the periodic Hann window (librosa's, rounded to float32) and ``scipy.fft.rfft`` in float32,
  then ``np.abs``; squared for power (``np.abs(stft) ** 2``, as librosa squares);
- the mel projection (``logmel``, ``mfcc``): librosa's Slaney filters, in bands. A filter is
  non-zero on a few FFT bins only (2,008 of 96 x 1,025 weights at the default settings), so
  each band of neighbouring filters is one float32 product over its own bins alone
  (:func:`_mel_bands`): the same sum as the dense product, about a fifth of its work;
- dB: librosa's ``power_to_db`` arithmetic (``ref=np.max``, ``amin=1e-10``, ``top_db=80``) on
  power, which is also ``amplitude_to_db`` of the magnitudes for ``stft``; ``mfcc``: the
  orthonormal DCT-II of the log-mel, its first ``n_mfcc`` coefficients, as
  ``librosa.feature.mfcc(S=...)`` takes them.

Before representation version 4 (see ``features.REPRESENTATION_VERSIONS``) these were
librosa's own values: a float64 FFT rounded to complex64 and a dense mel product. Float32
rounding moves them by a few thousandths of a dB (``tests/test_spectrogram_numerics.py``
bounds the difference on generated and on real audio), under the cache's float16 step.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from benchmark.data.features import FeatureParams

#: Representations computed here; others (``musicnn-mel``) have their own code.
BATCHED_REPRESENTATIONS = ("stft", "logmel", "mfcc")
#: Frames windowed and transformed per FFT call: 512 KiB of float32 at n_fft = 2048, and as
#: much of spectrum, so a block's steps run in the core's L2 cache.
_FFT_BLOCK_FRAMES = 64
#: librosa's ``power_to_db`` defaults: the floor of the power, and the dB kept below the peak.
AMIN, TOP_DB = 1e-10, 80.0
#: The cost of one more band's product, in multiply-adds per frame (measured: a BLAS call on a
#: block's few bins costs about as much as a thousand of its multiply-adds).
_BAND_COST = 1000


def prepared_audio(audio: np.ndarray, params: FeatureParams) -> np.ndarray:
    """The samples a spectrogram is computed from: float32, trimmed, padded to one window."""
    audio = np.asarray(audio, dtype=np.float32)[: params.n_samples]
    if audio.size < params.n_fft:
        audio = np.pad(audio, (0, params.n_fft - audio.size))  # librosa.util.fix_length's zeros
    return audio


def frame_count(samples: int, params: FeatureParams) -> int:
    """Centred STFT frames of ``samples`` samples, as ``librosa.stft`` makes them."""
    return 1 + (samples + 2 * (params.n_fft // 2) - params.n_fft) // params.hop_length


_warm_up_lock = threading.Lock()


def warm_up(params: FeatureParams) -> None:
    """Build the window and mel bands, once, while other threads wait (each thread's first clip needs them)."""
    with _warm_up_lock:
        if params.representation in BATCHED_REPRESENTATIONS:
            _window(params.n_fft)
            if params.representation != "stft":
                _mel_bands(params.sample_rate, params.n_fft, params.n_mels)


def batch_spectrograms(audios: Sequence[np.ndarray], params: FeatureParams) -> list[np.ndarray]:
    """Each clip's dB spectrogram: float32 (bins, frames <= ``params.frames``), unscaled.

    Clips of any lengths; :data:`BATCHED_REPRESENTATIONS` only. Each result is its own array
    (Fortran-ordered: a transposed (frames, bins) one).
    """
    if params.representation not in BATCHED_REPRESENTATIONS:
        raise ValueError(f"{params.representation!r} is not computed here (compute_spectrogram)")
    buffers = _Buffers(params, max((audio.shape[0] for audio in audios), default=0))
    return [_decibels(buffers.frame_values(prepared_audio(audio, params)), params) for audio in audios]


class _Buffers:
    """The window, mel bands and scratch arrays one call's clips share (no fresh pages per clip)."""

    def __init__(self, params: FeatureParams, longest: int):
        self.params = params
        self.window = _window(params.n_fft)
        self.bands = None if params.representation == "stft" else _mel_bands(params.sample_rate, params.n_fft,
                                                                              params.n_mels)
        half = params.n_fft // 2
        self.padded = np.zeros(max(longest, params.n_fft) + 2 * half, dtype=np.float32)
        self.windowed = np.empty((_FFT_BLOCK_FRAMES, params.n_fft), dtype=np.float32)
        self.power = np.empty((_FFT_BLOCK_FRAMES, half + 1), dtype=np.float32)

    def frame_values(self, clip: np.ndarray) -> np.ndarray:
        """One clip's (frames, bins) float32 power: STFT bins (``stft``) or mel bands; a fresh array."""
        params, half = self.params, self.params.n_fft // 2
        padded = self.padded[: clip.size + 2 * half]
        padded[half: half + clip.size] = clip
        padded[half + clip.size:] = 0.0
        total = frame_count(clip.size, params)  # all of them: the dB are relative to the clip's peak
        frames = np.lib.stride_tricks.sliding_window_view(padded, params.n_fft)[:: params.hop_length][:total]
        values = np.empty((total, half + 1 if self.bands is None else params.n_mels), dtype=np.float32)
        for start in range(0, total, _FFT_BLOCK_FRAMES):
            count = min(_FFT_BLOCK_FRAMES, total - start)
            power = self.block_power(frames[start: start + count], self.power[:count])
            if self.bands is None:
                values[start: start + count] = power
            else:
                _project(power, self.bands, values[start: start + count])
        return values

    def block_power(self, frames: np.ndarray, out: np.ndarray) -> np.ndarray:
        """``np.abs(rfft(frames * window)) ** 2`` of a block of frames, in float32, into ``out``."""
        import scipy.fft

        windowed = np.multiply(frames, self.window, out=self.windowed[: len(frames)])
        spectrum = scipy.fft.rfft(windowed, axis=-1, overwrite_x=True, workers=1)
        np.abs(spectrum, out=out)
        return np.square(out, out=out)


def _project(power: np.ndarray, bands, out: np.ndarray) -> None:
    """``out[...] = power @ mel_basis.T``, each band of filters over its own bins (the rest are zeros)."""
    for first, last, low, high, weights in bands:
        np.matmul(power[:, low:high], weights, out=out[:, first:last])


def _decibels(values: np.ndarray, params: FeatureParams) -> np.ndarray:
    """(bins, frames) dB of a clip's (frames, bins) power, relative to its peak: ``librosa.power_to_db``'s
    arithmetic, in the same float32 steps; then the MFCC's DCT for ``mfcc``."""
    peak = values.max() if values.size else np.float32(AMIN)
    decibels = np.maximum(values, AMIN, out=values)
    np.log10(decibels, out=decibels)
    np.multiply(decibels, 10.0, out=decibels)
    decibels -= 10.0 * np.log10(np.maximum(AMIN, peak))
    if decibels.size:
        np.maximum(decibels, decibels.max() - TOP_DB, out=decibels)
    if params.representation == "mfcc":
        import scipy.fft

        # librosa.feature.mfcc(S=decibels): the orthonormal DCT-II over the mel bands.
        decibels = scipy.fft.dct(decibels, type=2, norm="ortho", axis=-1)[:, : params.n_mfcc]
    # A clip padded to one window may give more frames than a tiny ``frames`` allows.
    return decibels[: params.frames].T


@functools.lru_cache(maxsize=8)
def _window(n_fft: int) -> np.ndarray:
    """The periodic Hann window librosa takes from ``scipy.signal.get_window("hann", n_fft)``, in float32.

    Computed as scipy computes it (``0.5 + 0.5 * cos`` over ``linspace(-pi, pi, n_fft + 1)``, the
    last point dropped), without importing ``scipy.signal`` (most of a second, cold).
    """
    window = (0.5 + 0.5 * np.cos(np.linspace(-np.pi, np.pi, n_fft + 1)))[:-1].astype(np.float32)
    window.setflags(write=False)
    return window


@functools.lru_cache(maxsize=8)
def mel_basis(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """``librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels)``, float32 (n_mels, n_fft // 2 + 1).

    librosa's default filters (Slaney's mel scale from 0 Hz to Nyquist, each filter scaled to
    unit area), computed as librosa computes them, value for value, without importing librosa:
    its first use loads numba and its submodules, 0.4 s or more before the first clip.
    """
    frequencies = np.fft.rfftfreq(n=n_fft, d=1.0 / sample_rate)
    bands = _slaney_mel_to_hz(np.linspace(_slaney_hz_to_mel(0.0), _slaney_hz_to_mel(float(sample_rate) / 2),
                                          n_mels + 2))
    widths = np.diff(bands)
    ramps = np.subtract.outer(bands, frequencies)
    weights = np.zeros((n_mels, n_fft // 2 + 1), dtype=np.float32)
    for index in range(n_mels):  # each filter: the lower and upper slopes, clipped at zero
        weights[index] = np.maximum(0, np.minimum(-ramps[index] / widths[index], ramps[index + 2] / widths[index + 1]))
    weights *= (2.0 / (bands[2: n_mels + 2] - bands[:n_mels]))[:, np.newaxis]
    weights.setflags(write=False)
    return weights


#: Slaney's mel scale (librosa's default, ``htk=False``): linear below 1 kHz, logarithmic above.
_MEL_STEP_HZ, _LOG_HZ, _LOG_STEP = 200.0 / 3, 1000.0, np.log(6.4) / 27.0


def _slaney_hz_to_mel(hz: float) -> float:
    if hz >= _LOG_HZ:
        return _LOG_HZ / _MEL_STEP_HZ + np.log(hz / _LOG_HZ) / _LOG_STEP
    return hz / _MEL_STEP_HZ


def _slaney_mel_to_hz(mels: np.ndarray) -> np.ndarray:
    hz = _MEL_STEP_HZ * mels
    high = mels >= _LOG_HZ / _MEL_STEP_HZ
    hz[high] = _LOG_HZ * np.exp(_LOG_STEP * (mels[high] - _LOG_HZ / _MEL_STEP_HZ))
    return hz


@functools.lru_cache(maxsize=8)
def _mel_bands(sample_rate: int, n_fft: int, n_mels: int) -> tuple:
    """The mel filters in bands of neighbouring filters: (first, last filter, low, high bin, weights).

    ``weights`` is ``basis[first:last, low:high].T``, C-ordered; outside ``low:high`` those
    filters are zero. The bands minimise the multiply-adds plus :data:`_BAND_COST` per band.
    """
    basis = mel_basis(sample_rate, n_fft, n_mels)
    # Each filter's non-zero bins (an empty filter, which librosa warns of, widens no band).
    spans = [(int(nonzero[0]), int(nonzero[-1]) + 1) if nonzero.size else (n_fft, 0)
             for nonzero in map(np.flatnonzero, basis)]

    def bins_of(first: int, last: int) -> tuple[int, int]:
        low, high = min(span[0] for span in spans[first:last]), max(span[1] for span in spans[first:last])
        return (low, high) if low < high else (0, 0)

    best, cut = [0.0] + [np.inf] * n_mels, [0] * (n_mels + 1)
    for last in range(1, n_mels + 1):  # best[last]: the cheapest bands of filters 0..last-1
        low, high = n_fft, 0
        for first in range(last - 1, -1, -1):  # the band first..last-1, widened a filter at a time
            low, high = min(low, spans[first][0]), max(high, spans[first][1])
            cost = best[first] + max(high - low, 0) * (last - first) + _BAND_COST
            if cost < best[last]:
                best[last], cut[last] = cost, first
    bands, last = [], n_mels
    while last:
        first = cut[last]
        low, high = bins_of(first, last)
        weights = np.ascontiguousarray(basis[first:last, low:high].T)
        weights.setflags(write=False)
        bands.append((first, last, low, high, weights))
        last = first
    return tuple(reversed(bands))
