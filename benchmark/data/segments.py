"""Cutting a clip's spectrogram into fixed-length segments.

Networks may train on short segments (e.g. 3 s) instead of whole clips; a clip is then labelled
by voting over its segments (:func:`benchmark.evaluate.aggregate_clips`). Segments are cut from
the clip's spectrogram after the split is made by track, so the segments of one clip always
share its split.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchmark.config import LAST_SEGMENT_POLICIES
from benchmark.errors import BenchmarkError


@dataclass(frozen=True)
class Segmenting:
    """Segment length and step in spectrogram frames, and what happens to a short last segment.

    ``last = "drop"`` discards a trailing segment shorter than ``frames``; ``"pad"`` keeps it,
    padded to full length. A clip shorter than one segment always gives one padded segment, so
    no clip disappears from the data set.
    """

    frames: int
    hop_frames: int
    last: str = "drop"

    def __post_init__(self):
        if self.frames < 1 or self.hop_frames < 1:
            raise BenchmarkError(f"segments need at least one frame (got {self.frames}, hop {self.hop_frames})")
        if self.last not in LAST_SEGMENT_POLICIES:
            raise BenchmarkError(f"unknown last-segment policy {self.last!r} ({', '.join(LAST_SEGMENT_POLICIES)})")

    @classmethod
    def from_seconds(cls, seconds: float, hop_seconds: float | None, *, sample_rate: int,
                     hop_length: int, last: str = "drop") -> Segmenting:
        """Segments of ``seconds`` every ``hop_seconds`` (default: back to back), in frames."""
        frames_per_second = sample_rate / hop_length
        return cls(
            frames=max(1, round(seconds * frames_per_second)),
            hop_frames=max(1, round((hop_seconds or seconds) * frames_per_second)),
            last=last,
        )

    def starts(self, total_frames: int) -> list[int]:
        """The first frame of every segment of a clip ``total_frames`` long."""
        if total_frames <= self.frames:
            return [0]
        full = range(0, total_frames - self.frames + 1, self.hop_frames)
        starts = list(full)
        tail = starts[-1] + self.hop_frames
        if self.last == "pad" and tail < total_frames and tail + self.frames > total_frames:
            starts.append(tail)
        return starts

    def cut(self, spectrogram: np.ndarray, pad_value: float) -> np.ndarray:
        """The segments of one (bins, frames) spectrogram, stacked: (segments, bins, self.frames)."""
        bins, total = spectrogram.shape
        starts = self.starts(total)
        out = np.full((len(starts), bins, self.frames), pad_value, dtype=spectrogram.dtype)
        for row, start in enumerate(starts):
            piece = spectrogram[:, start:start + self.frames]
            out[row, :, :piece.shape[1]] = piece
        return out

    def describe(self) -> dict:
        """The settings as plain values, for ``preprocessing.json`` and run parameters."""
        return {"mode": "segments", "frames": self.frames, "hop_frames": self.hop_frames, "last": self.last}
