"""Splitting a data set into train, validation and test, always by track.

The study's protocol: a stratified, seeded test share (300 of GTZAN's 1000 clips), then a
stratified validation share of what remains (20%). Splitting happens on track indices, before
any segmenting or normalisation, so nothing of one recording can reach two splits.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from benchmark.errors import BenchmarkError

SPLIT_NAMES = ("train", "valid", "test")


@dataclass(frozen=True)
class Split:
    """Index arrays into the track list, one per split, disjoint and together complete."""

    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray

    def indices(self, name: str) -> np.ndarray:
        return getattr(self, name)

    def membership_hash(self, track_ids: Sequence[str]) -> str:
        """A hash of which track is in which split: equal hashes mean identical splits."""
        digest = hashlib.sha256()
        for name in SPLIT_NAMES:
            members = sorted(track_ids[index] for index in self.indices(name))
            digest.update(f"{name}:{','.join(members)}\n".encode())
        return digest.hexdigest()[:16]

    def class_counts(self, labels: Sequence[str]) -> dict[str, dict[str, int]]:
        """Per split, how many tracks of each label it holds."""
        return {
            name: dict(sorted(Counter(labels[index] for index in self.indices(name)).items()))
            for name in SPLIT_NAMES
        }


def split_by_track(
    labels: Sequence[str], *, test_fraction: float, valid_fraction: float, seed: int
) -> Split:
    """The study's split: stratified test share, then stratified validation share of the rest.

    Raises :class:`BenchmarkError` where a genre has too few tracks to appear in every split.
    """
    from sklearn.model_selection import train_test_split

    labels = np.asarray(labels)
    counts = Counter(labels.tolist())
    if min(counts.values()) < 3:
        scarce = ", ".join(f"{label} ({n})" for label, n in sorted(counts.items()) if n < 3)
        raise BenchmarkError(
            f"every genre needs at least 3 tracks to be split into train, validation and test; "
            f"too few: {scarce}"
        )
    indices = np.arange(len(labels))
    try:
        rest, test = train_test_split(
            indices, test_size=test_fraction, stratify=labels, random_state=seed
        )
        train, valid = train_test_split(
            rest, test_size=valid_fraction, stratify=labels[rest], random_state=seed
        )
    except ValueError as error:
        raise BenchmarkError(f"cannot split {len(labels)} tracks as configured: {error}") from None
    return Split(np.sort(train), np.sort(valid), np.sort(test))
