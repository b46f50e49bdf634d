"""Spectrograms of many clips, value for value those of :func:`~benchmark.data.features.compute_spectrogram`.

Extraction computes thousands of clips with the same settings. One clip at a time through
librosa, most of the cost besides the FFTs is overhead: a fresh window, frame copies and
arrays per call. Here the clips of a chunk share the window, the mel filters and the buffers,
and each clip's frames go through ``numpy.fft.rfft`` in blocks.

Why the values are librosa's, not merely close:

- ``librosa.stft`` pads a clip with ``n_fft // 2`` zeros at each end (``pad_mode="constant"``)
  and frames it; so do we, into the same frames.
- each frame is windowed in float64 (librosa's window is float64 and the clip float32) and
  transformed by ``numpy.fft.rfft``, which computes each frame alone whatever the array's
  layout; the result is rounded to complex64, as librosa's output array does, then ``np.abs``.
- the magnitudes are handed on as librosa's are, a (bins, frames) Fortran-ordered float32
  array, and everything after them is librosa's own code (``power_to_db`` /
  ``amplitude_to_db`` with the clip's own peak as reference and its own -80 dB floor, the
  MFCC's DCT) or, for the mel projection, the very ``np.dot`` its ``einsum`` makes, per clip.

That last product is a BLAS call, and OpenBLAS rounds its last bit differently with one thread
than with several: extraction limits BLAS to one thread (see ``features._extract_spectrograms``),
so the mel representations equal ``compute_spectrogram`` run with one BLAS thread, bit for bit,
and the default, threaded one to float16 precision. ``tests/test_extraction.py`` checks both,
on generated and on real audio.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from benchmark.data.features import FeatureParams

#: Representations computed here together; others (``musicnn-mel``) go clip by clip.
BATCHED_REPRESENTATIONS = ("stft", "logmel", "mfcc")
#: Frames windowed and transformed per FFT call: 2 MiB of float64 at n_fft = 2048.
_FFT_BLOCK_FRAMES = 128


def prepared_audio(audio: np.ndarray, params: FeatureParams) -> np.ndarray:
    """The samples :func:`compute_spectrogram` transforms: float32, trimmed, padded to one window."""
    audio = np.asarray(audio, dtype=np.float32)[: params.n_samples]
    if audio.size < params.n_fft:
        audio = np.pad(audio, (0, params.n_fft - audio.size))  # librosa.util.fix_length's zeros
    return audio


def frame_count(samples: int, params: FeatureParams) -> int:
    """Centred STFT frames of ``samples`` samples, as ``librosa.stft`` makes them."""
    return 1 + (samples + 2 * (params.n_fft // 2) - params.n_fft) // params.hop_length


_warm_up_lock = threading.Lock()


def warm_up(params: FeatureParams) -> None:
    """Import librosa and build the window and mel filters, once, while other threads wait.

    librosa loads its submodules on first use; threads importing the same modules at once can
    find them half-initialised, so the first thread to need them loads them for all.
    """
    with _warm_up_lock:
        _load(params)


def _load(params: FeatureParams) -> None:
    import librosa
    import librosa.feature  # noqa: F401

    for name in ("to_mono", "resample", "power_to_db", "amplitude_to_db"):
        getattr(librosa, name)
    if params.representation in BATCHED_REPRESENTATIONS:
        _window(params.n_fft)
        if params.representation != "stft":
            _mel_basis(params.sample_rate, params.n_fft, params.n_mels)


def batch_spectrograms(audios: Sequence[np.ndarray], params: FeatureParams) -> list[np.ndarray]:
    """``[compute_spectrogram(audio, params) for audio in audios]``, computed with shared buffers.

    Clips of any lengths; :data:`BATCHED_REPRESENTATIONS` only (extraction sends the others, such as
    ``musicnn-mel``, through :func:`~benchmark.data.features.compute_spectrogram` a clip at a time).
    """
    if params.representation not in BATCHED_REPRESENTATIONS:
        raise ValueError(f"{params.representation!r} is computed a clip at a time (compute_spectrogram)")
    results = []
    for magnitudes in stft_magnitudes([prepared_audio(audio, params) for audio in audios], params):
        if params.representation == "stft":
            results.append(_decibels(magnitudes.T, params))  # amplitude_to_db copies the shared buffer
        else:
            power = np.square(magnitudes, out=magnitudes)  # ``np.abs(stft) ** 2.0``: numpy squares
            results.append(_decibels(mel_power(power, params).T, params))
    return results


def mel_power(power: np.ndarray, params: FeatureParams) -> np.ndarray:
    """One clip's mel power from its STFT power (frames, bins): float32 (frames, mels).

    ``librosa.feature.melspectrogram``'s product as its ``einsum`` makes it: ``np.dot`` of the
    same shapes and layouts. One clip at a time: BLAS picks its kernels by the matrices' sizes,
    so a product over several clips' frames could round otherwise.
    """
    return np.dot(power, _mel_basis(params.sample_rate, params.n_fft, params.n_mels).T)


def stft_magnitudes(clips: Sequence[np.ndarray], params: FeatureParams) -> Iterator[np.ndarray]:
    """``|librosa.stft(clip)|`` of each clip (float32, from :func:`prepared_audio`), transposed.

    Yields a float32 (frames, bins) C-ordered array per clip, whose ``.T`` is laid out as
    librosa's (bins, frames) Fortran-ordered result. Every buffer is shared by the clips (no
    fresh pages to fault in per clip): a yielded array is valid until the next is asked for.
    """
    if not clips:
        return
    n_fft, hop, half = params.n_fft, params.hop_length, params.n_fft // 2
    window = _window(n_fft)
    longest = max(clip.size for clip in clips)
    padded = np.zeros(longest + 2 * half)
    magnitudes = np.empty((frame_count(longest, params), half + 1), dtype=np.float32)
    windowed = np.empty((_FFT_BLOCK_FRAMES, n_fft))
    spectrum = np.empty((_FFT_BLOCK_FRAMES, half + 1), dtype=np.complex128)
    rounded = np.empty((_FFT_BLOCK_FRAMES, half + 1), dtype=np.complex64)
    for clip in clips:
        # float64 from the start: librosa's float32 frames times its float64 window are float64 products
        padded[half: half + clip.size] = clip
        padded[half + clip.size:] = 0.0
        total = frame_count(clip.size, params)
        frames = np.lib.stride_tricks.sliding_window_view(padded[: clip.size + 2 * half], n_fft)[::hop][:total]
        for start in range(0, total, _FFT_BLOCK_FRAMES):
            count = min(_FFT_BLOCK_FRAMES, total - start)
            block = np.multiply(frames[start: start + count], window, out=windowed[:count])
            _rfft(block, spectrum[:count])
            np.copyto(rounded[:count], spectrum[:count], casting="same_kind")  # librosa's complex64 output
            np.abs(rounded[:count], out=magnitudes[start: start + count])
        yield magnitudes[:total]


def _rfft(frames: np.ndarray, out: np.ndarray) -> None:
    """``out[...] = np.fft.rfft(frames, axis=-1)``, into ``out`` itself where numpy can (2.0 on)."""
    try:
        np.fft.rfft(frames, axis=-1, out=out)
    except TypeError:  # numpy 1.x: no ``out``
        out[...] = np.fft.rfft(frames, axis=-1)


@functools.lru_cache(maxsize=8)
def _window(n_fft: int) -> np.ndarray:
    import librosa

    window = librosa.filters.get_window("hann", n_fft, fftbins=True)
    window = librosa.util.pad_center(window, size=n_fft)
    window.setflags(write=False)
    return window


@functools.lru_cache(maxsize=8)
def _mel_basis(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    import librosa

    basis = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels)
    basis.setflags(write=False)
    return basis


def _decibels(values: np.ndarray, params: FeatureParams) -> np.ndarray:
    """One clip's dB spectrogram from its (bins, frames) magnitudes or mel power: librosa's steps from there on."""
    import librosa

    if params.representation == "stft":
        decibels = librosa.amplitude_to_db(values, ref=np.max)
    else:
        decibels = librosa.power_to_db(values, ref=np.max)
        if params.representation == "mfcc":
            decibels = librosa.feature.mfcc(S=decibels, sr=params.sample_rate, n_mfcc=params.n_mfcc)
    return decibels[:, : params.frames].astype(np.float32)
