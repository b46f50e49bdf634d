"""An experiment's data, ready for its runs: tracks -> features -> splits -> normalised inputs.

:func:`prepare_data` finds the tracks (or generates the synthetic set), extracts the model
inputs (whole clips or segments, from the spectrogram cache), encodes the labels and plans the
splits of the experiment's protocol. :meth:`PreparedData.split` then gathers one split's inputs
(the only split, or one fold) and fits the normalisation on its training inputs only. Every
run of a batch shares one :class:`PreparedData`; the tuner uses it too.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from benchmark.config import ExperimentConfig, FeaturesConfig
from benchmark.data.features import FeatureParams, FeatureSet, extract_features
from benchmark.data.inputs import FRAMES, HANDCRAFTED, Inputs
from benchmark.data.normalize import Standardizer
from benchmark.data.scratch import mapped_array, release_pages
from benchmark.data.segments import Segmenting
from benchmark.data.split import SPLIT_NAMES, Split, SplitPlan, plan_splits
from benchmark.data.tracks import discover_tracks
from benchmark.errors import BenchmarkError
from benchmark.paths import cache_root, writable_cache_root
from benchmark.profiling import stage

log = logging.getLogger(__name__)


@dataclass
class Subset:
    """One split's model inputs: ``x[i]`` has label ``y[i]`` and belongs to track ``track_indices[i]``.

    ``x`` is an array, or a dict of arrays for a model with a second input (:mod:`benchmark.data.inputs`).
    """

    x: Inputs
    y: np.ndarray
    #: Index into :attr:`FeatureSet.tracks` of each input's track (segments of a clip share it).
    track_indices: np.ndarray


@dataclass(frozen=True)
class DataSource:
    """Where the audio came from: a name for listings, and the folder (or recipe folder) it is in."""

    name: str
    uri: str


@dataclass
class SplitData:
    """One split of the data (the only one, or one fold of k), with its fitted normalisation."""

    split: Split
    split_hash: str
    #: Per-bin statistics fitted on this split's training inputs (``normalize = "standardize"``);
    #: of the frames part, for a two-part input.
    standardizer: Standardizer | None
    subsets: dict[str, Subset]

    @property
    def fold(self) -> int | None:
        return self.split.fold

    def subset(self, name: str) -> Subset:
        """Inputs, labels and clip ids of ``train``, ``valid`` or ``test``."""
        return self.subsets[name]


@dataclass
class PreparedData:
    """Features, labels and splits of one experiment, shared by all its runs."""

    features: FeatureSet
    params: FeatureParams
    segmenting: Segmenting | None
    normalize: str
    #: How a clip's label comes from its segments' probabilities (see :mod:`benchmark.evaluate`).
    vote: str
    class_names: list[str]
    encoder: object
    #: Per track (clip) label, encoded.
    y: np.ndarray
    plan: SplitPlan
    source: DataSource
    #: The manifest of an earlier ``data verify`` of this folder, when it is still current.
    manifest: object = None
    #: Exact duplicates that sit in different splits (see :mod:`benchmark.data.verify`).
    cross_split_duplicates: list = field(default_factory=list)
    #: The handcrafted vector of each input row, where the model takes it as a second input.
    handcrafted: np.ndarray | None = None
    _split: SplitData | None = field(default=None, repr=False)

    @property
    def track_ids(self) -> list[str]:
        return [track.track_id for track in self.features.tracks]

    def split(self, index: int = 0) -> SplitData:
        """Split ``index`` of the plan (0 without folds) with its inputs gathered and normalised.

        Gathered once, into read-only scratch files (:mod:`benchmark.data.scratch`), and kept
        until another split is asked for: at the study's size the training inputs alone are
        1.5 GB, not worth gathering again for each (model, seed), nor worth keeping on disk for
        every fold at once. Unit processes map the same files rather than receive copies.
        """
        split = self.plan.splits[index]
        if self._split is None or self._split.split is not split:
            self._split = None  # drop the previous fold's files before gathering the next
            with stage("inputs", self.params.representation):
                self._split = self._gather(split)
        return self._split

    def _gather(self, split: Split) -> SplitData:
        rows = {name: self.features.rows_of(split.indices(name)) for name in SPLIT_NAMES}
        source = self.features.inputs
        standardizer = None
        if self.normalize == "standardize":
            # Fitted on this split's training inputs only: test data must not shape the inputs.
            standardizer = Standardizer.fit_chunks(_rows_in_chunks(source, rows["train"]))
        inputs = {name: _gathered(source, rows[name], name, standardizer) for name in SPLIT_NAMES}
        if self.handcrafted is not None:
            inputs = {name: {FRAMES: x, HANDCRAFTED: self.handcrafted[rows[name]]} for name, x in inputs.items()}
        subsets = {}
        for name in SPLIT_NAMES:
            tracks = self.features.clip_index[rows[name]]
            subsets[name] = Subset(inputs[name], self.y[tracks], tracks)
        return SplitData(split, split.membership_hash(self.track_ids), standardizer, subsets)

    def split_summary(self, fold: SplitData) -> dict:
        """What ``split.json`` holds: protocol, fold, hash, class counts and members of each split."""
        ids = self.track_ids
        return {
            "protocol": self.plan.protocol,
            "fold": fold.fold,
            "membership_hash": fold.split_hash,
            "class_counts": fold.split.class_counts(self.features.labels),
            "members": {name: [ids[index] for index in fold.split.indices(name)] for name in SPLIT_NAMES},
            "listed_but_missing": self.plan.missing,
            "unlisted": self.plan.unlisted,
            "duplicates_across_splits": [
                {"fold": item.fold, "members": item.members} for item in self.duplicates_in(fold)
            ],
        }

    def duplicates_in(self, fold: SplitData) -> list:
        """The exact duplicates that ``fold``'s split puts in different splits."""
        return [item for item in self.cross_split_duplicates if item.fold == fold.fold]


#: Inputs gathered (and standardised) at a time: a few MB at the default input, 170 MB at the study's.
_GATHER_CHUNK = 64


def _rows_in_chunks(source: np.ndarray, rows: np.ndarray) -> Iterator[np.ndarray]:
    """``source[rows]``, :data:`_GATHER_CHUNK` rows at a time; a mapped source's pages released as it goes."""
    for start in range(0, len(rows), _GATHER_CHUNK):
        chunk = source[rows[start:start + _GATHER_CHUNK]]
        release_pages(source)
        yield chunk


def _gathered(source: np.ndarray, rows: np.ndarray, name: str, standardizer: Standardizer | None = None) -> np.ndarray:
    """``source[rows]``, standardised if asked, into a read-only scratch file; a chunk of rows at a time."""
    chunks = _rows_in_chunks(source, rows)
    if standardizer is not None:
        chunks = (standardizer.transform(chunk, dtype=source.dtype) for chunk in chunks)
    return mapped_array((len(rows), *source.shape[1:]), source.dtype, chunks, name=name)


def resolve_data_root(config: ExperimentConfig, *, progress: bool = True) -> Path:
    """The audio tree to read: the given directory, or the synthetic set, generated on first use."""
    data = config.data
    if data.source == "directory":
        if not data.directory:
            raise BenchmarkError(
                f"experiment {config.name!r} reads audio from a directory: pass --data-dir PATH "
                "(a folder-per-genre tree such as GTZAN's genres/)"
            )
        return Path(data.directory).expanduser()
    from benchmark.data.synth import FORMAT_VERSION, write_dataset

    # One folder per parameter set (and generator version): each is generated once, reused after.
    folder = cache_root() / "synthetic" / (
        f"v{FORMAT_VERSION}-seed{data.synth_seed}-{data.synth_clips_per_genre}x"
        f"{data.synth_seconds:g}s-{data.sample_rate}hz"
    )
    return write_dataset(
        folder,
        clips_per_genre=data.synth_clips_per_genre,
        seconds=data.synth_seconds,
        sample_rate=data.sample_rate,
        seed=data.synth_seed,
        progress=progress,
    )


def segmenting_of(features: FeaturesConfig, sample_rate: int) -> Segmenting | None:
    """A ``[features]`` setting's segmenting in frames, or None where whole clips are the inputs."""
    if features.segment_seconds is None:
        return None
    return Segmenting.from_seconds(
        features.segment_seconds, features.segment_hop_seconds, sample_rate=sample_rate,
        hop_length=features.hop_length, last=features.last_segment,
    )


def prepare_models(config: ExperimentConfig, model_names, *, progress: bool = True) -> dict[str, PreparedData]:
    """Each model entry's prepared data: one per distinct feature setting, extracted once.

    Every setting shares the first one's tracks, labels and split plan, so every model of the
    batch is trained and scored on the same clips, folds and seeds (paired tests stay valid).
    """
    settings: dict[FeaturesConfig, list[str]] = {}
    for name in model_names:
        settings.setdefault(config.features_for(name), []).append(name)
    prepared: dict[str, PreparedData] = {}
    first = None
    for features, names in settings.items():
        if len(settings) > 1:
            log.info("inputs %s for %s", features.describe, ", ".join(names))
        data = prepare_data(config, progress=progress, features=features, share=first)
        first = first or data
        prepared.update(dict.fromkeys(names, data))
    return prepared


def prepare_data(config: ExperimentConfig, *, progress: bool = True, features: FeaturesConfig | None = None,
                 share: PreparedData | None = None) -> PreparedData:
    """Find the tracks, extract (or load cached) features, encode labels and plan the splits.

    ``features`` replaces the experiment's ``[features]`` (a model entry's own setting).
    ``share`` is the prepared data of another setting of the same batch: its labels, split plan
    and data checks are reused, so both settings see exactly the same tracks in each split.
    """
    from sklearn.preprocessing import LabelEncoder

    features_config = features or config.features
    writable_cache_root()  # a read-only cache fails here, in a second, not after generating or extracting
    with stage("data"):
        root = resolve_data_root(config, progress=progress)
        tracks = discover_tracks(root)
    params = FeatureParams.from_features(features_config, config.data.sample_rate)
    segmenting = segmenting_of(features_config, config.data.sample_rate)
    if share is None:
        log.info("data: %d audio files in %d genres under %s", len(tracks),
                 len({track.label for track in tracks}), root)
    extracted = _extract(tracks, params, segmenting, features_config, progress, config.data.min_seconds)
    handcrafted = None
    if features_config.add_handcrafted:
        vectors = _extract(tracks, params.as_handcrafted(), segmenting, features_config, progress,
                           config.data.min_seconds)
        if not np.array_equal(vectors.clip_index, extracted.clip_index):
            raise BenchmarkError("the handcrafted vectors and the frames of a clip differ in number; "
                                 "report this with the segment settings used")
        handcrafted = vectors.inputs
    if share is not None:
        if [track.track_id for track in extracted.tracks] != share.track_ids:
            raise BenchmarkError(
                f"the {params.representation} features kept other tracks than the {share.params.representation} "
                "features of the same batch; every model must see the same clips"
            )
        return replace(share, features=extracted, params=params, segmenting=segmenting,
                       normalize=features_config.normalize, handcrafted=handcrafted, _split=None)
    for item in extracted.skipped:
        log.warning("skipped %s: %s", item.relative_path, item.reason)
    features = extracted
    with stage("data"):
        encoder = LabelEncoder().fit(features.labels)
        ids = [track.track_id for track in features.tracks]
        plan = plan_splits(ids, features.labels, config.split)
        for split in plan.splits:
            log.info("split %s%s: %d train, %d validation, %d test tracks", config.split.protocol,
                     "" if split.fold is None else f" fold {split.fold}",
                     len(split.train), len(split.valid), len(split.test))
        manifest, crossing = _verified_duplicates(root, features, plan)
    return PreparedData(
        features=features,
        params=params,
        segmenting=segmenting,
        normalize=features_config.normalize,
        vote=config.evaluate.vote,
        class_names=[str(name) for name in encoder.classes_],
        encoder=encoder,
        y=encoder.transform(features.labels),
        plan=plan,
        source=data_source(config, root),
        manifest=manifest,
        cross_split_duplicates=crossing,
        handcrafted=handcrafted,
    )


def _extract(tracks, params: FeatureParams, segmenting: Segmenting | None, features: FeaturesConfig,
             progress: bool, min_seconds: float) -> FeatureSet:
    with stage("extraction", params.representation, items=len(tracks)):
        extracted = extract_features(tracks, params, cache_root(), segmenting=segmenting,
                                     normalize=features.normalize, workers=features.workers, progress=progress,
                                     min_seconds=min_seconds)
    log.info("features %s %s: %d from cache, %d computed, %d skipped; %d model inputs%s",
             params.representation, params.shape, extracted.from_cache,
             len(extracted.tracks) - extracted.from_cache, len(extracted.skipped), len(extracted.inputs),
             f" ({segmenting.frames}-frame segments)" if segmenting else "")
    return extracted


def data_source(config: ExperimentConfig, root: Path) -> DataSource:
    """The data's name and location, as runs record them (the MLflow UI's Dataset column)."""
    if config.data.source == "synthetic":
        return DataSource(f"synthetic-{root.name}", str(root.resolve()))
    return DataSource(root.resolve().name or "data", str(root.resolve()))


def _verified_duplicates(root: Path, features: FeatureSet, plan: SplitPlan):
    """The folder's ``data verify`` manifest, if current, and its duplicates that cross splits."""
    from benchmark.data.verify import duplicate_groups, duplicates_across_splits, load_manifest

    manifest = load_manifest(root)
    if manifest is None:
        log.info("no current manifest of %s: `python -m benchmark data verify %s` checks it for "
                 "duplicates", root, root)
        return None, []
    crossing = duplicates_across_splits(
        duplicate_groups(manifest), [track.relative_path for track in features.tracks], plan
    )
    for item in crossing:
        log.warning("duplicate audio in different splits%s: %s",
                    "" if item.fold is None else f" (fold {item.fold})",
                    ", ".join(f"{path} ({name})" for path, name in item.members))
    return manifest, crossing
