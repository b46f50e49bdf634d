"""The floors a profile sets the harness against: the least the same work can cost.

- :func:`bare_fit`: ``model.fit`` of the same network (built by the registry's builder, as the
  harness builds it, same seed) on the same arrays already in float32, with the same epochs,
  batch size and validation data, and no callbacks but an epoch clock (epoch hooks only, so
  batches stay asynchronous): what training costs without the harness.
- :func:`fft_floor`: a plain float32 STFT magnitude (framing, Hann window, real FFT, magnitude)
  of the same clips' audio, a thread per core, decoding excluded: what extraction cannot go
  below, whatever the representation adds on top (mel filters, dB, cache files).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: Clips decoded and transformed at a time by :func:`fft_floor`: bounds memory at any data size.
FFT_CHUNK_CLIPS = 32
#: Frames windowed and transformed per FFT call: a block stays in the core's cache, as extraction's do.
FFT_BLOCK_FRAMES = 64


@dataclass(frozen=True)
class BareFit:
    """One bare ``model.fit``: its seconds, epochs and training inputs, and each epoch's window."""

    seconds: float
    epochs: int
    samples: int
    #: Each epoch's (start, end) on the ``perf_counter`` clock (:mod:`benchmark.profiling.epochs`).
    windows: tuple[tuple[float, float], ...] = ()


def bare_fit(architecture: str, hyperparameters: dict[str, Any], training, x_train, y_train, x_valid, y_valid, *,
             n_classes: int, seed: int, epochs: int) -> BareFit:
    """Fit a fresh, seeded ``architecture`` network with Keras alone; only ``model.fit`` is timed.

    Built through :func:`benchmark.models.create_estimator` so its layers are exactly the
    harness's; compiled with the optimiser, loss, metric and XLA setting :class:`~benchmark.models.network.KerasNetwork`
    uses. ``training`` gives the batch size and learning rate; ``epochs`` is how many the
    harness's fit ran.
    """
    import keras

    from benchmark.data.inputs import as_float32, shape_of
    from benchmark.models import create_estimator
    from benchmark.models.network import compile_network, seed_everything
    from benchmark.profiling.epochs import epoch_clock

    x_train, x_valid = as_float32(x_train), as_float32(x_valid)  # outside the timing: the floor's inputs
    keras.utils.clear_session(free_memory=True)
    seed_everything(seed)
    estimator = create_estimator(architecture, shape_of(x_train), n_classes, **hyperparameters)
    model = estimator.build()
    estimator.adapt(model, x_train)
    trained = compile_network(model, training.learning_rate, jit_compile=training.jit_compile)
    windows: list[tuple[float, float]] = []
    started = time.perf_counter()
    trained.fit(x_train, y_train, validation_data=(x_valid, y_valid), epochs=epochs,
                batch_size=training.batch_size, shuffle=True, verbose=0, callbacks=[epoch_clock(windows)])
    seconds = time.perf_counter() - started
    keras.utils.clear_session(free_memory=True)
    return BareFit(seconds, epochs, len(y_train), tuple(windows))


@dataclass(frozen=True)
class FftFloor:
    """A plain STFT of every clip: seconds (decoding excluded), clips and frames transformed."""

    seconds: float
    clips: int
    frames: int


def fft_floor(paths: Sequence[Path], *, sample_rate: int, n_fft: int, hop_length: int, n_samples: int,
              min_seconds: float = 0.0) -> FftFloor:
    """Time a float32 STFT magnitude of ``paths``' audio, as extraction frames it (centred frames).

    Each clip is decoded as extraction decodes it (:func:`benchmark.data.tracks.load_audio`,
    untimed) and trimmed to ``n_samples``; then the clips of a chunk are transformed on a thread
    per core (extraction's parallelism), each clip's frames windowed and put through
    ``scipy.fft.rfft`` in float32 blocks, and ``np.abs`` taken: no mel filters, dB or cache.
    Files extraction skipped fail to decode here too, and are left out.
    """
    import os
    from concurrent.futures import ThreadPoolExecutor

    import scipy.fft
    import scipy.signal

    from benchmark.data.tracks import AudioDecodeError, load_audio

    window = scipy.signal.get_window("hann", n_fft, fftbins=True).astype(np.float32)

    def magnitudes(clip: np.ndarray) -> int:
        frames = _frames(clip.astype(np.float32), n_fft, hop_length)
        for start in range(0, len(frames), FFT_BLOCK_FRAMES):
            np.abs(scipy.fft.rfft(frames[start:start + FFT_BLOCK_FRAMES] * window, axis=-1))
        return len(frames)

    seconds, clips, frames = 0.0, 0, 0
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        for start in range(0, len(paths), FFT_CHUNK_CLIPS):
            audio = []
            for path in paths[start:start + FFT_CHUNK_CLIPS]:
                try:
                    audio.append(load_audio(path, sample_rate, min_seconds=min_seconds)[:n_samples])
                except AudioDecodeError:
                    continue
            started = time.perf_counter()
            frames += sum(pool.map(magnitudes, audio))
            seconds += time.perf_counter() - started
            clips += len(audio)
    return FftFloor(seconds, clips, frames)


def _frames(audio: np.ndarray, n_fft: int, hop_length: int) -> np.ndarray:
    """Centred frames of one clip, (1 + len // hop, n_fft), as ``librosa.stft(center=True)`` frames it: a view."""
    padded = np.pad(audio, n_fft // 2)  # zeros, librosa's default pad mode
    return np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop_length]
