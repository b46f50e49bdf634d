"""Evaluation protocols end to end: k-fold batches, track-list splits, segments, standardisation,
and duplicates that cross splits, read back from MLflow as a user would."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.config import load_experiment
from benchmark.data.gtzan import GTZAN_GENRES
from tests.helpers import SHARED_DATA, logged_network

ARTIST_FILTERED = SHARED_DATA / "gtzan-splits" / "artist-filtered"
#: Three folds of the smoke data (8 clips a genre), 0.5 s segments, train-only standardisation.
KFOLD_SMOKE = ['split.protocol="kfold"', "split.folds=3", "features.segment_seconds=0.5",
               'features.normalize="standardize"', 'evaluate.vote="majority"']


def runs_of(outcome) -> pd.DataFrame:
    import mlflow

    mlflow.set_tracking_uri(outcome.tracking_uri)
    return mlflow.search_runs([outcome.experiment_id], filter_string=(
        f"tags.batch_id = '{outcome.batch_id}' and tags.run_kind = 'train'"))


def artifact_json(uri: str, run_id: str, name: str) -> dict:
    from mlflow import MlflowClient

    return json.loads(Path(MlflowClient(uri).download_artifacts(run_id, name)).read_text())


@pytest.fixture(scope="module")
def kfold_batch(tmp_path_factory, shared_cache):
    """cnn2d on three folds x two seeds of the smoke data, run once for this module."""
    from benchmark.runner import run_experiment

    folder = tmp_path_factory.mktemp("kfold-batch")
    config = load_experiment("smoke", KFOLD_SMOKE, seeds=[0, 1])
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GENRE_BENCHMARK_CACHE", str(shared_cache))
        patch.chdir(folder)
        outcome = run_experiment(config, ["cnn2d"], tracking_uri=f"sqlite:///{folder / 'mlflow.db'}",
                                 progress=False)
    return config, outcome, folder


@pytest.fixture(scope="module")
def kfold_prepared(kfold_batch, shared_cache):
    """The batch's data as its runs saw it (from the session cache), for recomputing their scores."""
    from benchmark.data.prepare import prepare_data

    config, _, _ = kfold_batch
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GENRE_BENCHMARK_CACHE", str(shared_cache))
        return prepare_data(config, progress=False)


def logged_predictions(outcome, run_id: str) -> pd.DataFrame:
    from mlflow import MlflowClient

    path = MlflowClient(outcome.tracking_uri).download_artifacts(run_id, "predictions.csv")
    return pd.read_csv(path, dtype={"track_id": str})


@pytest.mark.slow
def test_kfold_batch_has_one_run_per_seed_and_fold_with_disjoint_test_folds(kfold_batch):
    config, outcome, _ = kfold_batch
    runs = runs_of(outcome)
    assert sorted(zip(runs["tags.seed"], runs["tags.fold"])) == [
        (seed, fold) for seed in "01" for fold in "012"]
    assert set(runs["tags.split_protocol"]) == {"kfold"} and set(runs["params.split.protocol"]) == {"kfold"}
    assert runs["tags.split_hash"].nunique() == 3  # one split per fold, shared by the seeds
    tests = {}
    for _, run in runs.iterrows():
        split = artifact_json(outcome.tracking_uri, run["run_id"], "split.json")
        assert split["membership_hash"] == run["tags.split_hash"]
        assert split["fold"] == int(run["tags.fold"])
        members = {name: set(split["members"][name]) for name in ("train", "valid", "test")}
        assert not (members["train"] & members["test"] or members["valid"] & members["test"]
                    or members["train"] & members["valid"])
        tests.setdefault(split["fold"], members["test"])
    everything = set.union(*tests.values())
    assert len(everything) == 80 and sum(map(len, tests.values())) == 80  # each track tested once


@pytest.mark.slow
def test_kfold_aggregate_equals_the_runs_in_mlflow(kfold_batch):
    from scipy import stats

    from benchmark.summary import seed_spread, summary_table

    _, outcome, _ = kfold_batch
    accuracies = runs_of(outcome)["metrics.test_accuracy"].to_numpy()
    assert len(accuracies) == 6
    spread = seed_spread(summary_table(outcome.runs)).set_index("model").loc["cnn2d"]
    assert spread["runs"] == 6
    assert spread["test_accuracy"] == f"{accuracies.mean():.4f} ± {accuracies.std(ddof=1):.4f}"
    low, high = stats.t.interval(0.95, df=5, loc=accuracies.mean(), scale=stats.sem(accuracies))
    assert spread["accuracy_95%_ci"] == f"[{max(low, 0):.4f}, {min(high, 1):.4f}]"


@pytest.mark.slow
def test_kfold_report_aggregates_over_folds_and_seeds(kfold_batch):
    from benchmark.report import write_report

    _, outcome, folder = kfold_batch
    report = write_report("smoke", batch=outcome.batch_id, out=folder / "report",
                          tracking_uri=outcome.tracking_uri)
    summary = pd.read_csv(report.folder / "summary.csv").set_index("model")
    accuracies = runs_of(outcome)["metrics.test_accuracy"]
    assert summary.loc["cnn2d", "runs"] == 6
    assert summary.loc["cnn2d", "test_accuracy_mean"] == pytest.approx(accuracies.mean())
    assert summary.loc["cnn2d", "test_accuracy_std"] == pytest.approx(accuracies.std())
    assert "segment accuracy" in (report.folder / "report.md").read_text()


@pytest.mark.slow
def test_segment_runs_log_clip_and_segment_metrics_and_vote_per_clip(kfold_batch, kfold_prepared):
    from sklearn.metrics import f1_score

    _, outcome, _ = kfold_batch
    run = runs_of(outcome).iloc[0]
    # vote = "majority": the headline accuracy is the majority vote's.
    assert run["metrics.test_accuracy"] == run["metrics.test_clip_majority_accuracy"]
    # The smoke clips are capped at 64 frames (1.5 s): two 22-frame (0.5 s) segments each, the
    # partial third one dropped.
    assert int(run["params.inputs.test"]) == 2 * int(run["params.tracks.test"])
    predictions = logged_predictions(outcome, run["run_id"])
    assert len(predictions) == int(run["params.tracks.test"])  # one row per clip, not per segment
    confusion = artifact_json(outcome.tracking_uri, run["run_id"], "confusion_matrix.json")
    assert np.sum(confusion["counts"]) == len(predictions)

    # Every accuracy recomputed here, from the run's logged network on its fold's test segments.
    test = kfold_prepared.split(int(run["tags.fold"])).subset("test")
    network = logged_network(run["tags.audio_model_uri"])
    classes = list(range(len(kfold_prepared.class_names)))
    segments = pd.DataFrame(network.predict(test.x.astype(np.float32), verbose=0), columns=classes)
    segments["clip"], segments["truth"] = test.track_indices, test.y
    segments["vote"] = segments[classes].to_numpy().argmax(axis=1)
    assert run["metrics.test_segment_accuracy"] == pytest.approx((segments["vote"] == segments["truth"]).mean())
    clips = segments.groupby("clip")
    truth = clips["truth"].first()
    mean_label = clips[classes].mean().idxmax(axis=1)
    assert run["metrics.test_clip_mean_accuracy"] == pytest.approx((mean_label == truth).mean())

    def majority(group):  # most votes; a tie goes to the tied genre with the higher mean probability
        votes = group["vote"].value_counts()
        tied = votes.index[votes == votes.max()]
        return max(tied, key=lambda label: group[label].mean())

    majority_label = pd.Series({clip: majority(group) for clip, group in clips})
    assert run["metrics.test_clip_majority_accuracy"] == pytest.approx((majority_label == truth).mean())
    assert (clips["vote"].nunique() == 2).any()  # some clip's two segments disagree: a tie was broken

    # predictions.csv holds those majority labels, one row per clip, and macro F1 follows from it.
    ids = kfold_prepared.track_ids
    names = kfold_prepared.class_names
    assert dict(zip(predictions["track_id"], predictions["predicted"], strict=True)) == {
        ids[clip]: names[label] for clip, label in majority_label.items()}
    assert run["metrics.test_macro_f1"] == pytest.approx(f1_score(
        predictions["true"], predictions["predicted"], labels=names, average="macro", zero_division=0))


@pytest.mark.slow
def test_audio_model_labels_each_test_clip_as_the_runs_predictions_csv(kfold_batch, kfold_prepared):
    """Serving checked against training: a segment run's audio model (train-fitted standardisation,
    majority vote), given each test clip's audio file, answers what the run scored for that clip."""
    import mlflow.pyfunc

    _, outcome, _ = kfold_batch
    runs = runs_of(outcome)
    run = runs[(runs["tags.seed"] == "1") & (runs["tags.fold"] == "2")].iloc[0]
    logged = logged_predictions(outcome, run["run_id"])
    path_of = {track.track_id: track.path for track in kfold_prepared.features.tracks}
    model = mlflow.pyfunc.load_model(run["tags.audio_model_uri"])
    served = model.predict(pd.DataFrame({"path": [str(path_of[track]) for track in logged["track_id"]]}))
    assert served["error"].isna().all()
    columns = [column for column in logged if column.startswith("p_")]
    assert columns == [f"p_{name}" for name in kfold_prepared.class_names]
    # predictions.csv rounds to 6 decimals; majority-vote scores are shares of the two segments.
    np.testing.assert_allclose(served[columns].to_numpy(dtype=float), logged[columns].to_numpy(dtype=float),
                               atol=2e-6)
    assert served["genre"].tolist() == logged["predicted"].tolist()
    assert served["probability"].to_numpy() == pytest.approx(logged[columns].max(axis=1).to_numpy(), abs=2e-6)


@pytest.mark.slow
def test_standardisation_statistics_come_from_the_fold_training_inputs(kfold_batch, shared_cache, monkeypatch):
    from benchmark.data.prepare import prepare_data

    config, outcome, _ = kfold_batch
    monkeypatch.setenv("GENRE_BENCHMARK_CACHE", str(shared_cache))
    prepared = prepare_data(config, progress=False)
    runs = runs_of(outcome)
    for fold in range(3):
        data = prepared.split(fold)
        run_id = runs[runs["tags.fold"] == str(fold)]["run_id"].iloc[0]
        logged = artifact_json(outcome.tracking_uri, run_id, "preprocessing.json")
        assert logged["normalisation"]["mode"] == "standardize"
        assert logged["segmenting"] == {"mode": "segments", "frames": prepared.segmenting.frames,
                                        "hop_frames": prepared.segmenting.hop_frames, "last": "drop",
                                        "vote": "majority"}
        raw_train = prepared.features.inputs[prepared.features.rows_of(data.split.train)].astype(np.float64)
        np.testing.assert_allclose(logged["normalisation"]["mean"], raw_train.mean(axis=(0, 2)), rtol=1e-6)
        np.testing.assert_allclose(logged["normalisation"]["std"], raw_train.std(axis=(0, 2)), rtol=1e-5)


def test_standardizer_never_sees_validation_or_test_inputs(tone_tree, tmp_path):
    """Plant wildly different values in the held-out clips: train-only statistics ignore them."""
    from benchmark.data.prepare import prepare_data

    config = load_experiment("smoke", ['features.normalize="standardize"', 'split.protocol="kfold"',
                                       "split.folds=2", "split.valid_fraction=0.5"],
                             data_dir=tone_tree)
    prepared = prepare_data(config, progress=False)
    split = prepared.plan.splits[0]
    held_out = prepared.features.rows_of(np.concatenate([split.valid, split.test]))
    planted = np.array(prepared.features.inputs)  # the extracted inputs are read-only: plant in a copy
    planted[held_out] += np.float16(500.0)
    prepared.features.inputs = planted
    data = prepared.split(0)
    train_rows = prepared.features.rows_of(split.train)
    raw_train = prepared.features.inputs[train_rows].astype(np.float64)
    np.testing.assert_allclose(data.standardizer.mean, raw_train.mean(axis=(0, 2)), rtol=1e-6)
    assert data.standardizer.mean.max() < 1.0  # dB values sit at or below 0; +500 would show
    np.testing.assert_allclose(data.subset("train").x.astype(np.float64).mean(), 0.0, atol=0.05)
    assert data.subset("test").x.astype(np.float64).mean() > 10.0  # the planted shift survives


def test_files_protocol_on_gtzan_shaped_data_uses_the_artist_filtered_lists(tmp_path):
    if not ARTIST_FILTERED.is_dir():
        pytest.skip(f"artist-filtered split lists not found at {ARTIST_FILTERED}")
    from benchmark.data.prepare import prepare_data

    config = load_experiment("smoke", ["data.synth_clips_per_genre=100", "data.synth_seconds=0.5",
                                       "features.frames=16"], split_dir=ARTIST_FILTERED)
    prepared = prepare_data(config, progress=False)
    data = prepared.split()
    assert [len(data.split.indices(name)) for name in ("train", "valid", "test")] == [443, 197, 290]
    assert (len(prepared.plan.unlisted), prepared.plan.missing) == (70, [])
    summary = prepared.split_summary(data)
    listed = {name: {line.split("/")[-1].rsplit(".", 1)[0]
                     for line in (ARTIST_FILTERED / f"{name}.txt").read_text().split()}
              for name in ("train", "valid", "test")}
    assert {name: set(summary["members"][name]) for name in listed} == listed
    assert summary["protocol"] == "files" and len(summary["unlisted"]) == 70


def test_duplicates_that_cross_splits_are_found_from_the_verify_manifest(tone_tree, caplog):
    from benchmark.data.prepare import prepare_data
    from benchmark.data.verify import verify_dataset

    shutil.copy(tone_tree / "jazz" / "jazz.00000.wav", tone_tree / "jazz" / "jazz.00009.wav")
    lists = tone_tree.parent / "lists"
    lists.mkdir()
    (lists / "train.txt").write_text("jazz.00000\nblues.00000\nrock.00000\nblues.00001\n")
    (lists / "valid.txt").write_text("jazz.00001\nblues.00002\nrock.00001\n")
    (lists / "test.txt").write_text("jazz.00009\nblues.00003\nrock.00002\n")
    config = load_experiment("smoke", data_dir=tone_tree, split_dir=lists)
    verify_dataset(tone_tree, split_config=config.split, workers=1, progress=False)
    prepared = prepare_data(config, progress=False)
    assert [item.members for item in prepared.cross_split_duplicates] == [
        [("jazz/jazz.00000.wav", "train"), ("jazz/jazz.00009.wav", "test")]]
    assert "duplicate audio in different splits" in caplog.text
    assert prepared.split_summary(prepared.split())["duplicates_across_splits"] == [
        {"fold": None, "members": [("jazz/jazz.00000.wav", "train"), ("jazz/jazz.00009.wav", "test")]}]


@pytest.mark.slow
def test_real_excerpts_with_track_lists_segments_and_voting(excerpts_dir, tmp_path):
    """Real GTZAN audio: clip 07 of each genre trains, 08 validates, 09 tests, on 3 s segments."""
    from benchmark.runner import run_experiment

    lists = tmp_path / "lists"
    lists.mkdir()
    for name, clip in (("train", 7), ("valid", 8), ("test", 9)):
        (lists / f"{name}.txt").write_text("".join(f"{g}/{g}.{clip:05d}.wav\n" for g in GTZAN_GENRES))
    config = load_experiment("smoke", ["features.frames=862", "features.segment_seconds=3.0",
                                       'evaluate.vote="mean"'], data_dir=excerpts_dir, split_dir=lists)
    outcome = run_experiment(config, ["cnn2d"], tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
                             progress=False)
    run = runs_of(outcome).iloc[0]
    assert (run["params.tracks.train"], run["params.tracks.test"]) == ("10", "10")
    # The excerpts are 15-20 s; 20 s caps them, 3 s segments back to back give 5 or 6 each.
    assert 50 <= int(run["params.inputs.test"]) <= 60
    assert run["metrics.test_accuracy"] == run["metrics.test_clip_mean_accuracy"]
    assert run["tags.split_protocol"] == "files"
