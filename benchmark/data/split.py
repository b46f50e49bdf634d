"""Splitting a data set into train, validation and test, always by track.

Three protocols, chosen by ``[split] protocol``:

- ``paper``: the study's split: a stratified, seeded test share (300 of GTZAN's 1000 clips),
  then a stratified validation share of what remains (20%).
- ``kfold``: stratified k-fold cross-validation; each fold is the test set once, and a
  stratified validation share is taken from the other folds' tracks.
- ``files``: membership read from ``train.txt``, ``valid.txt`` and ``test.txt`` lists of track
  ids, such as the artist-filtered GTZAN split (Kereliuk, Sturm & Larsen 2015: 443/197/290).

Splitting happens on track indices, before any segmenting or normalisation, so nothing of one
recording can reach two splits.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from benchmark.config import SplitConfig
from benchmark.data.tracks import AUDIO_SUFFIXES
from benchmark.errors import BenchmarkError

log = logging.getLogger(__name__)

SPLIT_NAMES = ("train", "valid", "test")
#: The files a ``files`` split folder holds, one per split.
SPLIT_FILES = {name: f"{name}.txt" for name in SPLIT_NAMES}


@dataclass(frozen=True)
class Split:
    """Index arrays into the track list, one per split, pairwise disjoint.

    Under ``paper`` and ``kfold`` they cover every track; under ``files`` unlisted tracks are
    in none of them. ``fold`` is the fold number under ``kfold``, else None.
    """

    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    fold: int | None = None

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

    def assignment(self, n_tracks: int) -> list[str | None]:
        """Per track, the name of the split holding it (None where unlisted)."""
        where: list[str | None] = [None] * n_tracks
        for name in SPLIT_NAMES:
            for index in self.indices(name):
                where[index] = name
        return where


@dataclass(frozen=True)
class SplitPlan:
    """The splits an experiment's runs use: one, or one per fold under ``kfold``."""

    protocol: str
    splits: list[Split]
    #: ``files`` only: ids listed in a split file but absent from the data (or undecodable).
    missing: list[str] = field(default_factory=list)
    #: ``files`` only: ids present in the data but listed nowhere; no run sees them.
    unlisted: list[str] = field(default_factory=list)


def plan_splits(track_ids: Sequence[str], labels: Sequence[str], config: SplitConfig) -> SplitPlan:
    """The splits of ``config.protocol`` over tracks with these ids and labels."""
    if config.protocol == "paper":
        split = split_by_track(labels, test_fraction=config.test_fraction,
                               valid_fraction=config.valid_fraction, seed=config.seed)
        return SplitPlan("paper", [split])
    if config.protocol == "kfold":
        return SplitPlan("kfold", kfold_splits(labels, folds=config.folds,
                                               valid_fraction=config.valid_fraction, seed=config.seed))
    if not config.split_dir:
        raise BenchmarkError("split protocol 'files' needs split.split_dir (or --split-dir DIR): a folder "
                             "holding train.txt, valid.txt and test.txt")
    return files_split(track_ids, read_split_lists(config.split_dir))


def split_by_track(
    labels: Sequence[str], *, test_fraction: float, valid_fraction: float, seed: int
) -> Split:
    """The study's split: stratified test share, then stratified validation share of the rest.

    Raises :class:`BenchmarkError` where a genre has too few tracks to appear in every split.
    """
    from sklearn.model_selection import train_test_split

    labels = np.asarray(labels)
    _require_tracks_per_genre(labels, 3, "be split into train, validation and test")
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


def kfold_splits(labels: Sequence[str], *, folds: int, valid_fraction: float, seed: int) -> list[Split]:
    """Stratified k-fold by track: fold ``k`` is the test set of split ``k``.

    The validation tracks of each split are a stratified ``valid_fraction`` of the other folds,
    so each split's test fold is never seen in training or model selection.
    """
    from sklearn.model_selection import StratifiedKFold, train_test_split

    labels = np.asarray(labels)
    # Each genre needs a track in every fold, and two left beside the largest test fold for
    # training and validation: the least n >= folds with n - ceil(n / folds) >= 2 (4 for two
    # folds, 3 for three: one clip each to test, validate and train).
    minimum = folds
    while minimum - -(-minimum // folds) < 2:
        minimum += 1
    _require_tracks_per_genre(labels, minimum, f"be split into {folds} folds with validation tracks")
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    splits = []
    try:
        for fold, (rest, test) in enumerate(splitter.split(np.zeros(len(labels)), labels)):
            train, valid = train_test_split(
                rest, test_size=valid_fraction, stratify=labels[rest], random_state=seed
            )
            splits.append(Split(np.sort(train), np.sort(valid), np.sort(test), fold=fold))
    except ValueError as error:
        raise BenchmarkError(f"cannot split {len(labels)} tracks into {folds} folds: {error} (more tracks, "
                             "fewer folds or a larger split.valid_fraction would do)") from None
    return splits


def read_split_lists(split_dir: str | Path) -> dict[str, list[str]]:
    """The track ids of ``train.txt``, ``valid.txt`` and ``test.txt`` in ``split_dir``.

    One track a line, as ``genre.NNNNN`` or a relative path (``blues/blues.00012.wav``); blank
    lines and ``#`` comments are ignored. An audio extension is dropped, so the ``.au`` and
    ``.wav`` releases of GTZAN match the same list.
    """
    folder = Path(split_dir).expanduser()
    if not folder.is_dir():
        raise BenchmarkError(f"split folder not found: {folder}")
    lists = {}
    for name, file_name in SPLIT_FILES.items():
        path = folder / file_name
        if not path.is_file():
            raise BenchmarkError(f"split folder {folder} has no {file_name} (it needs "
                                 f"{', '.join(SPLIT_FILES.values())})")
        try:
            lines = path.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as error:
            raise BenchmarkError(f"cannot read {path}: {error}") from None
        lists[name] = [track_id_of(line) for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return lists


def track_id_of(entry: str) -> str:
    """``blues/blues.00012.wav`` -> ``blues.00012``; ``blues.00012`` stays as it is."""
    name = PurePosixPath(entry.strip().replace("\\", "/")).name
    stem, dot, suffix = name.rpartition(".")
    return stem if dot and f".{suffix.lower()}" in AUDIO_SUFFIXES else name


def files_split(track_ids: Sequence[str], lists: dict[str, list[str]]) -> SplitPlan:
    """A split from id lists: listed ids absent from the data and unlisted tracks are reported."""
    row_of: dict[str, int] = {}
    for row, track_id in enumerate(track_ids):
        if track_id in row_of:
            raise BenchmarkError(f"track id {track_id!r} names two files of the data set; a split "
                                 "list cannot tell them apart")
        row_of[track_id] = row
    owner: dict[str, str] = {}
    for name in SPLIT_NAMES:
        for track_id in lists[name]:
            if owner.setdefault(track_id, name) != name:
                raise BenchmarkError(f"track {track_id!r} is listed in both {owner[track_id]}.txt and "
                                     f"{name}.txt")
    missing = sorted(track_id for track_id in owner if track_id not in row_of)
    unlisted = sorted(track_id for track_id in row_of if track_id not in owner)
    indices = {
        name: np.array(sorted(row_of[i] for i in lists[name] if i in row_of), dtype=np.int64)
        for name in SPLIT_NAMES
    }
    for name, members in indices.items():
        if not len(members):
            raise BenchmarkError(f"no track of {name}.txt is in the data set ({len(lists[name])} listed); "
                                 "is --data-dir the right folder?")
    if missing:
        log.warning("split lists: %d listed tracks are not in the data set (first: %s)",
                    len(missing), ", ".join(missing[:5]))
    if unlisted:
        log.info("split lists: %d tracks of the data set are listed nowhere and left out", len(unlisted))
    return SplitPlan("files", [Split(indices["train"], indices["valid"], indices["test"])],
                     missing=missing, unlisted=unlisted)


def _require_tracks_per_genre(labels: np.ndarray, minimum: int, purpose: str) -> None:
    counts = Counter(labels.tolist())
    scarce = ", ".join(f"{label} ({n})" for label, n in sorted(counts.items()) if n < minimum)
    if scarce:
        raise BenchmarkError(f"every genre needs at least {minimum} tracks to {purpose}; too few: {scarce}")
