"""The pipeline of one experiment: data -> features -> split -> normalise -> train -> evaluate -> tracking.

``run_experiment`` is what ``run --all`` calls; ``run_model`` trains and scores one
(model, seed, fold) and returns a plain dict, which is what the tuner and tests build on too.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmark.config import ExperimentConfig
from benchmark.data.features import CACHE_DTYPE, FeatureParams, FeatureSet, extract_features
from benchmark.data.normalize import Standardizer
from benchmark.data.segments import Segmenting
from benchmark.data.split import SPLIT_NAMES, Split, SplitPlan, plan_splits
from benchmark.data.tracks import discover_tracks
from benchmark.errors import BenchmarkError
from benchmark.paths import cache_root

log = logging.getLogger(__name__)


@dataclass
class Subset:
    """One split's network inputs: ``x[i]`` has label ``y[i]`` and belongs to track ``clips[i]``."""

    x: np.ndarray
    y: np.ndarray
    clips: np.ndarray


@dataclass
class FoldData:
    """One split of the data (the only one, or one fold), with its fitted normalisation."""

    split: Split
    split_hash: str
    #: Per-bin statistics fitted on this split's training inputs (``normalize = "standardize"``).
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
    class_names: list[str]
    encoder: object
    #: Per track (clip) label, encoded.
    y: np.ndarray
    plan: SplitPlan
    data_root: Path
    #: The manifest of an earlier ``data verify`` of this folder, when it is still current.
    manifest: object = None
    #: Exact duplicates that sit in different splits (see :mod:`benchmark.data.verify`).
    cross_split_duplicates: list = field(default_factory=list)
    _fold: FoldData | None = field(default=None, repr=False)

    @property
    def track_ids(self) -> list[str]:
        return [track.track_id for track in self.features.tracks]

    def fold(self, index: int = 0) -> FoldData:
        """Split ``index`` of the plan with its inputs gathered and normalised.

        Gathered once and kept until another fold is asked for: at the study's size the
        training inputs alone are 1.5 GB, not worth copying again for each (model, seed), nor
        worth holding for every fold at once.
        """
        split = self.plan.splits[index]
        if self._fold is None or self._fold.split is not split:
            self._fold = None  # free the previous fold's arrays before gathering the next
            self._fold = self._gather(split)
        return self._fold

    def _gather(self, split: Split) -> FoldData:
        subsets = {}
        for name in SPLIT_NAMES:
            rows = self.features.rows_of(split.indices(name))
            clips = self.features.clip_index[rows]
            subsets[name] = Subset(self.features.features[rows], self.y[clips], clips)
        standardizer = None
        if self.normalize == "standardize":
            # Fitted on this split's training inputs only: test data must not shape the inputs.
            standardizer = Standardizer.fit(subsets["train"].x)
            for name, subset in subsets.items():
                subsets[name] = Subset(standardizer.transform(subset.x, dtype=CACHE_DTYPE), subset.y, subset.clips)
        return FoldData(split, split.membership_hash(self.track_ids), standardizer, subsets)

    def split_summary(self, fold: FoldData) -> dict:
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
                {"fold": item.fold, "members": item.members}
                for item in self.cross_split_duplicates if item.fold == fold.fold
            ],
        }


def feature_params(config: ExperimentConfig) -> FeatureParams:
    """The feature parameters an experiment asks for."""
    features = config.features
    return FeatureParams(
        representation=features.representation,
        sample_rate=config.data.sample_rate,
        n_fft=features.n_fft,
        hop_length=features.hop_length,
        n_mels=features.n_mels,
        frames=features.frames,
    )


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


def segmenting_of(config: ExperimentConfig) -> Segmenting | None:
    """The experiment's segmenting in frames, or None where whole clips are the inputs."""
    features = config.features
    if features.segment_seconds is None:
        return None
    return Segmenting.from_seconds(
        features.segment_seconds, features.segment_hop_seconds, sample_rate=config.data.sample_rate,
        hop_length=features.hop_length, last=features.last_segment,
    )


def prepare_data(config: ExperimentConfig, *, progress: bool = True) -> PreparedData:
    """Find the tracks, extract (or load cached) features, encode labels and plan the splits."""
    from sklearn.preprocessing import LabelEncoder

    root = resolve_data_root(config, progress=progress)
    tracks = discover_tracks(root)
    params = feature_params(config)
    segmenting = segmenting_of(config)
    log.info("data: %d audio files in %d genres under %s", len(tracks),
             len({track.label for track in tracks}), root)
    features = extract_features(
        tracks, params, cache_root(), segmenting=segmenting, normalize=config.features.normalize,
        workers=config.features.workers, progress=progress,
    )
    log.info("features %s %s: %d from cache, %d computed, %d skipped; %d network inputs%s",
             params.representation, params.shape, features.from_cache,
             len(features.tracks) - features.from_cache, len(features.skipped), len(features.features),
             f" ({segmenting.frames}-frame segments)" if segmenting else "")
    for item in features.skipped:
        log.warning("skipped %s: %s", item.relative_path, item.reason)
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
        normalize=config.features.normalize,
        class_names=[str(name) for name in encoder.classes_],
        encoder=encoder,
        y=encoder.transform(features.labels),
        plan=plan,
        data_root=root,
        manifest=manifest,
        cross_split_duplicates=crossing,
    )


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


def run_model(
    config: ExperimentConfig,
    prepared: PreparedData,
    model_name: str,
    seed: int,
    *,
    experiment_id: str,
    batch_id: str,
    fold: int = 0,
) -> dict:
    """Train and test one (model, seed, fold) inside its own MLflow run; returns its summary row."""
    from benchmark import tracking
    from benchmark.artifacts import write_run_artifacts
    from benchmark.evaluate import evaluate_model
    from benchmark.models import resolve_hyperparameters
    from benchmark.serving.audio_model import preprocessing_config
    from benchmark.train import train_model

    hyperparameters = resolve_hyperparameters(model_name, config.model_settings(model_name).hyperparameters)
    training = config.training_for(model_name)
    data = prepared.fold(fold)
    train, valid, test = (data.subset(name) for name in SPLIT_NAMES)
    in_fold = "" if data.fold is None else f" fold {data.fold}"
    label = f"{model_name} seed {seed}{in_fold}"
    tags = {
        "run_kind": tracking.TRAINING_RUN,
        "model": model_name,
        "seed": str(seed),
        "experiment": config.name,
        "batch_id": batch_id,
        "data_fingerprint": prepared.features.fingerprint,
        "split_protocol": prepared.plan.protocol,
        "split_hash": data.split_hash,
        "duplicates_across_splits": str(len(_crossing(prepared, data))),
        **({} if data.fold is None else {"fold": str(data.fold)}),
        **tracking.provenance_tags(),
    }
    run_name = f"{model_name}-seed{seed}" + ("" if data.fold is None else f"-fold{data.fold}")
    with tracking.tracked_run(experiment_id, run_name, tags) as run_id:
        tracking.log_params(_run_params(config, prepared, data, hyperparameters, training))
        log.info("%s: training %d epochs on %d inputs of %d clips (run %s)", label, training.epochs,
                 len(train.y), len(data.split.train), run_id)
        result = train_model(
            model_name, hyperparameters, training,
            x_train=train.x, y_train=train.y, x_valid=valid.x, y_valid=valid.y,
            n_classes=len(prepared.class_names), seed=seed,
            callbacks=[tracking.epoch_logger()], label=label,
        )
        if not result.finite:
            raise BenchmarkError(f"{label}: the loss became non-finite; lower the learning rate")
        evaluation = evaluate_model(result.model, test.x, test.y, prepared.class_names, clips=test.clips,
                                    vote=config.evaluate.vote, batch_size=training.batch_size)
        parameters = int(result.model.count_params())
        tracking.log_metrics(
            {f"test_{key}": value for key, value in evaluation.metrics.items()}
            | {"parameters": parameters, "train_seconds": result.seconds,
               "epochs_run": result.epochs_run,
               "final_val_accuracy": result.history.get("val_accuracy", [float("nan")])[-1]}
        )
        preprocessing = preprocessing_config(
            prepared.params, segmenting=prepared.segmenting, vote=config.evaluate.vote,
            normalisation=data.standardizer.to_dict() if data.standardizer else {"mode": "per_clip"},
        )
        with tempfile.TemporaryDirectory(prefix="benchmark-run-") as folder:
            write_run_artifacts(
                Path(folder),
                title=f"{model_name} (seed {seed}{in_fold}) on {config.name}",
                class_names=prepared.class_names,
                evaluation=evaluation,
                history=result.history,
                test_tracks=[prepared.features.tracks[index] for index in evaluation.clips],
                y_test=evaluation.truth,
                encoder=prepared.encoder,
                skipped=prepared.features.skipped,
                split_summary=prepared.split_summary(data),
                config=config.model_dump(mode="json"),
                preprocessing=preprocessing,
                manifest=prepared.manifest,
            )
            tracking.log_artifacts(Path(folder))
        example = test.x[:2].astype(np.float32)
        model_uri = tracking.log_keras_model(
            result.model, example, np.asarray(result.model.predict(example, verbose=0), dtype=np.float32)
        )
        tracking.log_audio_model(result.model, preprocessing, prepared.class_names)
    log.info("%s: test accuracy %.4f, macro F1 %.4f", label, evaluation.metrics["accuracy"],
             evaluation.metrics["macro_f1"])
    return {
        "model": model_name,
        "seed": seed,
        "fold": data.fold,
        "test_accuracy": evaluation.metrics["accuracy"],
        "macro_f1": evaluation.metrics["macro_f1"],
        "parameters": parameters,
        "train_seconds": result.seconds,
        "run_id": run_id,
        "model_uri": model_uri,
    }


def _crossing(prepared: PreparedData, data: FoldData) -> list:
    return [item for item in prepared.cross_split_duplicates if item.fold == data.fold]


def _run_params(config, prepared: PreparedData, data: FoldData, hyperparameters: dict, training) -> dict:
    """What a run is: the whole config, the model's resolved hyperparameters, the data's shape."""
    sizes = {name: len(data.split.indices(name)) for name in SPLIT_NAMES}
    inputs = {name: len(data.subset(name).y) for name in SPLIT_NAMES}
    return (
        config.flat()
        | {f"hp.{key}": value for key, value in hyperparameters.items()}
        | {f"effective.{key}": value for key, value in training.model_dump().items()}
        | {f"tracks.{name}": size for name, size in sizes.items()}
        | {f"inputs.{name}": size for name, size in inputs.items()}
        | {"tracks.skipped": len(prepared.features.skipped),
           "tracks.listed_but_missing": len(prepared.plan.missing),
           "tracks.unlisted": len(prepared.plan.unlisted),
           "split.fold_index": "" if data.fold is None else data.fold,
           "input_shape": str(tuple(prepared.features.features.shape[1:])),
           "n_classes": len(prepared.class_names)}
    )


def run_experiment(
    config: ExperimentConfig,
    model_names: Sequence[str],
    *,
    tracking_uri: str | None = None,
    progress: bool = True,
) -> dict:
    """Run every (model, seed, fold) of an experiment as one batch; returns the batch id, URI and rows.

    Folds are the outer loop, so each fold's inputs are gathered (and normalised) once.
    """
    from benchmark import tracking

    uri = tracking.resolve_tracking_uri(tracking_uri)
    tracking.connect(uri)  # Before the slow part: a bad tracking URI fails in a second.
    experiment_id = tracking.ensure_experiment(config.name, uri)
    prepared = prepare_data(config, progress=progress)
    batch_id = tracking.new_batch_id()
    folds = len(prepared.plan.splits)
    log.info("batch %s: %s x seeds %s%s -> %s", batch_id, ", ".join(model_names),
             list(config.run.seeds), f" x {folds} folds" if folds > 1 else "", uri)
    rows = [
        run_model(config, prepared, name, seed, experiment_id=experiment_id, batch_id=batch_id, fold=fold)
        for fold in range(folds)
        for name in model_names
        for seed in config.run.seeds
    ]
    return {"batch_id": batch_id, "tracking_uri": uri, "experiment_id": experiment_id, "runs": rows,
            "protocol": prepared.plan.protocol}
