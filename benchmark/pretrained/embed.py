"""musicnn's input and clip embeddings: 16 kHz log-mel, 3 s windows, activations averaged.

The input is musicnn's own (``musicnn/extractor.py``, ``batch_data``): audio at 16 kHz, a
librosa mel power spectrogram (n_fft 512, hop 256, 96 bands), then ``log10(10000 x + 1)``. The
original casts the mel power to float16 first, which rounds it and overflows to infinity above
65504 (loud audio); the port computes in float32 throughout (the parity test measures where
the two differ). A clip (or segment) is cut, as the original does, into back-to-back windows of
187 frames (3 s), the last partial window dropped; a piece shorter than one window is repeated
to fill one (musicnn's training data was repeat-padded, ``pad_short = "repeat-pad"``). Each
window goes through the network, the chosen activations are concatenated and averaged over the
piece's windows: one vector per clip or segment.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmark.pretrained.musicnn import N_MELS, OUTPUT_SIZES, WINDOW_FRAMES

SAMPLE_RATE = 16000
N_FFT = 512
HOP_LENGTH = 256
#: Windows per network call: bounds memory, keeps the network busy.
BATCH_WINDOWS = 64


def resample(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """``audio`` at musicnn's 16 kHz (librosa's default resampler, as ``librosa.load(sr=16000)``)."""
    import librosa

    audio = np.asarray(audio, dtype=np.float32)
    if sample_rate == SAMPLE_RATE:
        return audio
    return librosa.resample(audio, orig_sr=sample_rate, target_sr=SAMPLE_RATE)


def log_mel(audio_16k: np.ndarray) -> np.ndarray:
    """musicnn's input of 16 kHz audio, float32 (frames, 96): ``log10(10000 * mel + 1)``."""
    import librosa

    audio = np.asarray(audio_16k, dtype=np.float32)
    if audio.size < N_FFT:
        audio = librosa.util.fix_length(audio, size=N_FFT)
    power = librosa.feature.melspectrogram(y=audio, sr=SAMPLE_RATE, hop_length=HOP_LENGTH, n_fft=N_FFT,
                                           n_mels=N_MELS).T
    return np.log10(np.float32(10000) * power.astype(np.float32) + np.float32(1)).astype(np.float32)


def windows(mel: np.ndarray, frames: int = WINDOW_FRAMES) -> np.ndarray:
    """Back-to-back windows of ``frames`` frames, (n, frames, 96); a short piece repeated to one."""
    if len(mel) < frames:
        return np.resize(mel, (frames, mel.shape[1]))[None] if len(mel) else np.zeros((1, frames, mel.shape[1]),
                                                                                    np.float32)
    starts = range(0, len(mel) - frames + 1, frames)
    return np.stack([mel[start:start + frames] for start in starts])


def embedding_size(layers: Sequence[str]) -> int:
    """The length of an embedding made of ``layers``."""
    return sum(OUTPUT_SIZES[layer] for layer in layers)


class Embedder:
    """The ported network with a checkpoint's weights, computing averaged activations in batches."""

    def __init__(self, weights: str | Path, layers: Sequence[str]):
        from benchmark.pretrained.musicnn import assign_checkpoint, build_musicnn
        from benchmark.pretrained.weights import load_weights

        self.layers = tuple(layers)
        self.model = build_musicnn(WINDOW_FRAMES)  # the whole network: every weight finds its layer
        assign_checkpoint(self.model, load_weights(weights))

    def activations(self, batch: np.ndarray) -> np.ndarray:
        """The concatenated activations of every window, float32 (n, embedding size)."""
        parts = []
        for start in range(0, len(batch), BATCH_WINDOWS):
            found = self.model.predict_on_batch(np.asarray(batch[start:start + BATCH_WINDOWS], np.float32))
            parts.append(np.concatenate([np.asarray(found[layer]) for layer in self.layers], axis=1))
        return np.concatenate(parts).astype(np.float32)

    def embed(self, pieces: Sequence[np.ndarray], sample_rate: int) -> np.ndarray:
        """One vector per piece of audio (a clip, or each of its segments): (pieces, size), float32.

        Every window of every piece goes through the network in batches, then each piece's are averaged.
        """
        stacks = [windows(log_mel(resample(piece, sample_rate))) for piece in pieces]
        values = self.activations(np.concatenate(stacks))
        bounds = np.cumsum([0, *(len(stack) for stack in stacks)])
        return np.stack([values[bounds[i]:bounds[i + 1]].mean(axis=0) for i in range(len(stacks))])


@functools.lru_cache(maxsize=4)
def embedder(weights: str, layers: tuple[str, ...]) -> Embedder:
    """One :class:`Embedder` per (weights file, layers) in a process: built once, reused."""
    return Embedder(weights, layers)
