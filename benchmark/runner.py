"""The pipeline of one experiment: data -> split -> features -> train -> evaluate -> tracking.

``run_experiment`` is what ``run --all`` calls; ``run_model`` trains and scores one
(model, seed) and returns a plain dict, which is what the tuner and tests build on too.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmark.config import ExperimentConfig
from benchmark.data.features import FeatureParams, FeatureSet, extract_features
from benchmark.data.split import Split, split_by_track
from benchmark.data.tracks import discover_tracks
from benchmark.errors import BenchmarkError
from benchmark.paths import cache_root

log = logging.getLogger(__name__)


@dataclass
class PreparedData:
    """Features, labels and split of one experiment, shared by all its runs."""

    features: FeatureSet
    params: FeatureParams
    class_names: list[str]
    encoder: object
    y: np.ndarray
    split: Split
    split_hash: str
    data_root: Path
    _subsets: dict = field(default_factory=dict, repr=False)

    def subset(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Inputs and integer labels of one split (``train``, ``valid`` or ``test``).

        Gathered once and shared by every run: at the study's size the training inputs alone
        are 1.5 GB, not worth copying again for each (model, seed).
        """
        if name not in self._subsets:
            indices = self.split.indices(name)
            self._subsets[name] = (self.features.features[indices], self.y[indices])
        return self._subsets[name]

    def split_summary(self) -> dict:
        ids = [track.track_id for track in self.features.tracks]
        return {
            "membership_hash": self.split_hash,
            "class_counts": self.split.class_counts(self.features.labels),
            "members": {
                name: [ids[index] for index in self.split.indices(name)]
                for name in ("train", "valid", "test")
            },
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


def prepare_data(config: ExperimentConfig, *, progress: bool = True) -> PreparedData:
    """Find the tracks, extract (or load cached) features, encode labels and split by track."""
    from sklearn.preprocessing import LabelEncoder

    root = resolve_data_root(config, progress=progress)
    tracks = discover_tracks(root)
    params = feature_params(config)
    log.info("data: %d audio files in %d genres under %s", len(tracks),
             len({track.label for track in tracks}), root)
    features = extract_features(
        tracks, params, cache_root(), workers=config.features.workers, progress=progress
    )
    log.info("features %s %s: %d from cache, %d computed, %d skipped", params.representation,
             params.shape, features.from_cache, len(features.tracks) - features.from_cache,
             len(features.skipped))
    for item in features.skipped:
        log.warning("skipped %s: %s", item.relative_path, item.reason)
    encoder = LabelEncoder().fit(features.labels)
    split = split_by_track(
        features.labels,
        test_fraction=config.split.test_fraction,
        valid_fraction=config.split.valid_fraction,
        seed=config.split.seed,
    )
    split_hash = split.membership_hash([track.track_id for track in features.tracks])
    log.info("split %s: %d train, %d validation, %d test tracks", split_hash,
             len(split.train), len(split.valid), len(split.test))
    return PreparedData(
        features=features,
        params=params,
        class_names=[str(name) for name in encoder.classes_],
        encoder=encoder,
        y=encoder.transform(features.labels),
        split=split,
        split_hash=split_hash,
        data_root=root,
    )


def run_model(
    config: ExperimentConfig,
    prepared: PreparedData,
    model_name: str,
    seed: int,
    *,
    experiment_id: str,
    batch_id: str,
) -> dict:
    """Train and test one (model, seed) inside its own MLflow run; returns its summary row."""
    from benchmark import tracking
    from benchmark.artifacts import write_run_artifacts
    from benchmark.evaluate import evaluate_model
    from benchmark.models import resolve_hyperparameters
    from benchmark.train import train_model

    hyperparameters = resolve_hyperparameters(model_name, config.model_settings(model_name).hyperparameters)
    training = config.training_for(model_name)
    x_train, y_train = prepared.subset("train")
    x_valid, y_valid = prepared.subset("valid")
    x_test, y_test = prepared.subset("test")
    label = f"{model_name} seed {seed}"
    tags = {
        "run_kind": tracking.TRAINING_RUN,
        "model": model_name,
        "seed": str(seed),
        "experiment": config.name,
        "batch_id": batch_id,
        "data_fingerprint": prepared.features.fingerprint,
        "split_hash": prepared.split_hash,
        **tracking.provenance_tags(),
    }
    with tracking.tracked_run(experiment_id, f"{model_name}-seed{seed}", tags) as run_id:
        tracking.log_params(_run_params(config, prepared, hyperparameters, training))
        log.info("%s: training %d epochs on %d clips (run %s)", label, training.epochs, len(y_train), run_id)
        result = train_model(
            model_name, hyperparameters, training,
            x_train=x_train, y_train=y_train, x_valid=x_valid, y_valid=y_valid,
            n_classes=len(prepared.class_names), seed=seed,
            callbacks=[tracking.epoch_logger()], label=label,
        )
        if not result.finite:
            raise BenchmarkError(f"{label}: the loss became non-finite; lower the learning rate")
        evaluation = evaluate_model(result.model, x_test, y_test, prepared.class_names,
                                    batch_size=training.batch_size)
        parameters = int(result.model.count_params())
        tracking.log_metrics(
            {f"test_{key}": value for key, value in evaluation.metrics.items()}
            | {"parameters": parameters, "train_seconds": result.seconds,
               "epochs_run": result.epochs_run,
               "final_val_accuracy": result.history.get("val_accuracy", [float("nan")])[-1]}
        )
        with tempfile.TemporaryDirectory(prefix="benchmark-run-") as folder:
            write_run_artifacts(
                Path(folder),
                title=f"{model_name} (seed {seed}) on {config.name}",
                class_names=prepared.class_names,
                evaluation=evaluation,
                history=result.history,
                test_tracks=[prepared.features.tracks[index] for index in prepared.split.test],
                y_test=y_test,
                encoder=prepared.encoder,
                skipped=prepared.features.skipped,
                split_summary=prepared.split_summary(),
                config=config.model_dump(mode="json"),
            )
            tracking.log_artifacts(Path(folder))
        example = x_test[:2].astype(np.float32)
        model_uri = tracking.log_keras_model(
            result.model, example, evaluation.probabilities[:2].astype(np.float32)
        )
        tracking.log_audio_model(result.model, prepared.params, prepared.class_names)
    log.info("%s: test accuracy %.4f, macro F1 %.4f", label, evaluation.metrics["accuracy"],
             evaluation.metrics["macro_f1"])
    return {
        "model": model_name,
        "seed": seed,
        "test_accuracy": evaluation.metrics["accuracy"],
        "macro_f1": evaluation.metrics["macro_f1"],
        "parameters": parameters,
        "train_seconds": result.seconds,
        "run_id": run_id,
        "model_uri": model_uri,
    }


def _run_params(config, prepared: PreparedData, hyperparameters: dict, training) -> dict:
    """What a run is: the whole config, the model's resolved hyperparameters, the data's shape."""
    sizes = {name: len(prepared.split.indices(name)) for name in ("train", "valid", "test")}
    return (
        config.flat()
        | {f"hp.{key}": value for key, value in hyperparameters.items()}
        | {f"effective.{key}": value for key, value in training.model_dump().items()}
        | {f"tracks.{name}": size for name, size in sizes.items()}
        | {"tracks.skipped": len(prepared.features.skipped),
           "input_shape": str(prepared.params.shape),
           "n_classes": len(prepared.class_names)}
    )


def run_experiment(
    config: ExperimentConfig,
    model_names: Sequence[str],
    *,
    tracking_uri: str | None = None,
    progress: bool = True,
) -> dict:
    """Run every (model, seed) of an experiment as one batch; returns the batch id, URI and rows."""
    from benchmark import tracking

    uri = tracking.resolve_tracking_uri(tracking_uri)
    tracking.connect(uri)  # Before the slow part: a bad tracking URI fails in a second.
    experiment_id = tracking.ensure_experiment(config.name, uri)
    prepared = prepare_data(config, progress=progress)
    batch_id = tracking.new_batch_id()
    log.info("batch %s: %s x seeds %s -> %s", batch_id, ", ".join(model_names),
             list(config.run.seeds), uri)
    rows = [
        run_model(config, prepared, name, seed, experiment_id=experiment_id, batch_id=batch_id)
        for name in model_names
        for seed in config.run.seeds
    ]
    return {"batch_id": batch_id, "tracking_uri": uri, "experiment_id": experiment_id, "runs": rows}
