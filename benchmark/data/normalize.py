"""Normalising spectrograms: per clip (the study) or standardised per frequency bin.

``per_clip`` min-max scales each clip's dB spectrogram to [0, 1] on its own: it needs no
statistics. ``standardize`` subtracts a per-bin mean and divides by a per-bin standard
deviation that are fitted on the training split only (fitting them on all data would leak the
test set into training), and stored with the model so that prediction uses the same values.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

#: A bin with (almost) no variance in training is left unscaled rather than blown up.
_MIN_STD = 1e-6
#: Inputs per chunk when fitting: bounds the float64 working copy at the study's input size.
_FIT_CHUNK = 64


def scale_per_clip(values: np.ndarray) -> np.ndarray:
    """Min-max scale to [0, 1], as the study did per spectrogram; a constant input becomes zeros."""
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros_like(values)
    return (values - low) / (high - low)


@dataclass(frozen=True)
class Standardizer:
    """Per-row mean and standard deviation of training inputs: per frequency bin of frames
    (n, bins, frames), or per column of vectors (n, columns)."""

    mean: np.ndarray
    std: np.ndarray
    #: True where fitted on frames (statistics per bin, over every frame), False for vectors.
    frames: bool = True

    @classmethod
    def fit(cls, inputs: np.ndarray) -> Standardizer:
        """Statistics over every input (and frame) of ``inputs``, per bin (or column).

        Accumulates in float64 chunk by chunk: the inputs may be float16 and gigabytes large.
        """
        return cls.fit_chunks(inputs[start:start + _FIT_CHUNK] for start in range(0, len(inputs), _FIT_CHUNK))

    @classmethod
    def fit_chunks(cls, chunks: Iterable[np.ndarray]) -> Standardizer:
        """:meth:`fit` over inputs that come a chunk at a time (rows gathered as they are read)."""
        total = total_sq = None
        count, frames = 0, True
        for chunk in chunks:
            chunk = np.asarray(chunk).astype(np.float64)
            if total is None:
                total, total_sq, frames = np.zeros(chunk.shape[1]), np.zeros(chunk.shape[1]), chunk.ndim == 3
            axes = (0, 2) if frames else (0,)
            total += chunk.sum(axis=axes)
            total_sq += np.square(chunk).sum(axis=axes)
            count += chunk.size // chunk.shape[1]
        if not count:
            raise ValueError("cannot fit a standardizer on no inputs")
        mean = total / count
        variance = np.maximum(total_sq / count - np.square(mean), 0.0)
        std = np.sqrt(variance)
        return cls(mean=mean, std=np.where(std < _MIN_STD, 1.0, std), frames=frames)

    def transform(self, inputs: np.ndarray, dtype=np.float32) -> np.ndarray:
        """``(inputs - mean) / std`` per bin (or column): for one input, or a stack of them."""
        mean, std = (self.mean[:, None], self.std[:, None]) if self.frames else (self.mean, self.std)
        out = np.empty(inputs.shape, dtype=dtype)
        if inputs.ndim == (2 if self.frames else 1):  # one input
            out[...] = (inputs - mean) / std
            return out
        for start in range(0, len(inputs), _FIT_CHUNK):
            out[start:start + _FIT_CHUNK] = (inputs[start:start + _FIT_CHUNK].astype(np.float32) - mean) / std
        return out

    def to_dict(self) -> dict:
        """The statistics as JSON-ready lists, for ``preprocessing.json``."""
        return {"mode": "standardize", "mean": self.mean.tolist(), "std": self.std.tolist(), "frames": self.frames}

    @classmethod
    def from_dict(cls, values: dict) -> Standardizer:
        # Files written before vectors could be standardised hold frames statistics.
        return cls(mean=np.asarray(values["mean"], dtype=np.float64), std=np.asarray(values["std"], dtype=np.float64),
                   frames=bool(values.get("frames", True)))
