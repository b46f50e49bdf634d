"""The baselines the study names: handcrafted features, classical learners, the combined network,
and models with inputs of their own in one batch."""

from __future__ import annotations

import base64
import json
import logging
import re

import numpy as np
import pytest

from benchmark.config import load_experiment
from benchmark.data.features import FeatureParams, handcrafted_vectors
from benchmark.data.handcrafted import EXTRA_COLUMNS, TABLE_COLUMNS, clip_statistics, handcrafted_columns
from benchmark.data.segments import Segmenting
from benchmark.errors import BenchmarkError
from tests.helpers import EXCERPTS, assert_user_error, run_cli, served_model

#: The public GTZAN features table's columns (features_30_sec.csv), between filename/length and label.
PUBLIC_TABLE = (
    "chroma_stft_mean chroma_stft_var rms_mean rms_var spectral_centroid_mean spectral_centroid_var "
    "spectral_bandwidth_mean spectral_bandwidth_var rolloff_mean rolloff_var zero_crossing_rate_mean "
    "zero_crossing_rate_var harmony_mean harmony_var perceptr_mean perceptr_var tempo "
    + " ".join(f"mfcc{i}_mean mfcc{i}_var" for i in range(1, 21))
).split()

BASELINES = """
extends = "smoke"
name = "smoke-baselines"
[run]
models = ["cnn2d", "svm", "knn", "random_forest", "logreg", "combined"]
[model.svm.features]
representation = "handcrafted"
[model.knn.features]
representation = "handcrafted"
[model.random_forest.features]
representation = "handcrafted"
[model.logreg.features]
representation = "handcrafted"
"""  # combined has no features table: it declares the handcrafted input it needs, and gets it


def test_columns_are_the_public_tables_57_in_order_then_the_named_extras():
    assert list(TABLE_COLUMNS) == PUBLIC_TABLE and len(TABLE_COLUMNS) == 57
    assert handcrafted_columns(False) == TABLE_COLUMNS
    assert handcrafted_columns(True) == TABLE_COLUMNS + EXTRA_COLUMNS
    assert len(EXTRA_COLUMNS) == 2 * (7 + 6) and EXTRA_COLUMNS[0] == "spectral_contrast1_mean"


def real_clip():
    import librosa

    path = EXCERPTS / "blues" / "blues.00007.wav"
    if not path.is_file():
        pytest.skip(f"real GTZAN excerpts not found at {EXCERPTS}")
    return librosa.load(path, sr=22050)


def test_feature_values_equal_direct_librosa_calls_on_real_music():
    import librosa

    y, sr = real_clip()
    values = dict(zip(handcrafted_columns(True), clip_statistics(y, sr), strict=True))
    harmonic, percussive = librosa.effects.hpss(y)
    mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=20)
    direct = {
        "chroma_stft_var": librosa.feature.chroma_stft(y=y, sr=sr).var(),
        "rms_mean": librosa.feature.rms(y=y).mean(),
        "spectral_centroid_mean": librosa.feature.spectral_centroid(y=y, sr=sr).mean(),
        "spectral_bandwidth_var": librosa.feature.spectral_bandwidth(y=y, sr=sr).var(),
        "rolloff_mean": librosa.feature.spectral_rolloff(y=y, sr=sr).mean(),
        "zero_crossing_rate_mean": librosa.feature.zero_crossing_rate(y).mean(),
        "harmony_var": harmonic.var(),
        "perceptr_var": percussive.var(),
        "tempo": librosa.feature.tempo(y=y, sr=sr)[0],
        "mfcc1_mean": mfcc[0].mean(),
        "mfcc13_var": mfcc[12].var(),
        "spectral_contrast3_mean": librosa.feature.spectral_contrast(y=y, sr=sr)[2].mean(),
    }
    for column, expected in direct.items():
        assert values[column] == pytest.approx(float(expected), rel=1e-4, abs=1e-7), column


def test_statistics_are_those_of_librosas_own_hpss_bit_for_bit(monkeypatch):
    """The separation runs its median filters a line at a time (handcrafted.hpss): same values as
    librosa.decompose.hpss, on music, noise, clicks, silence and clips shorter than its kernel."""
    import librosa

    from benchmark.data import handcrafted

    sr = 22050
    rng = np.random.default_rng(0)
    t = np.arange(3 * sr) / sr
    chord = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6)) * np.sin(2 * np.pi * 0.5 * t) ** 2
    clicks = np.zeros(t.size)
    clicks[:: sr // 4] = 1.0
    mix = (0.2 * chord + clicks + 0.01 * rng.standard_normal(t.size)).astype(np.float32)
    clips = [mix, mix[: 7 * 512], mix[:1000], np.zeros(sr, np.float32), mix[: sr] * 1e-6]
    if EXCERPTS.is_dir():
        clips.append(real_clip()[0])
    for y in clips:
        stft = librosa.stft(librosa.util.fix_length(y, size=max(y.size, 2048)))
        for fast, reference in zip(handcrafted.hpss(stft), librosa.decompose.hpss(stft), strict=True):
            assert fast.dtype == reference.dtype
            np.testing.assert_array_equal(fast, reference)
    vectors = [clip_statistics(y, sr) for y in clips]
    monkeypatch.setattr(handcrafted, "hpss", librosa.decompose.hpss)
    for y, vector in zip(clips, vectors, strict=True):
        np.testing.assert_array_equal(vector, clip_statistics(y, sr))


def test_extracted_vectors_are_clip_statistics_with_one_blas_thread(tone_tree, tmp_path):
    """Worker processes compute each clip's statistics with one BLAS thread: bit for bit the reference."""
    from benchmark.data.features import extract_features
    from benchmark.data.handcrafted import one_blas_thread
    from benchmark.data.tracks import discover_tracks, load_audio

    params = FeatureParams(representation="handcrafted", frames=40)
    extracted = extract_features(discover_tracks(tone_tree), params, tmp_path, workers=2, progress=False)
    with one_blas_thread():
        expected = [clip_statistics(load_audio(track.path, params.sample_rate)[: params.n_samples],
                                    params.sample_rate) for track in extracted.tracks]
    assert extracted.inputs.shape == (12, 83)
    np.testing.assert_array_equal(extracted.inputs, np.stack(expected))


def test_segment_vectors_are_the_statistics_of_each_segments_audio():
    y, sr = real_clip()
    params = FeatureParams(representation="handcrafted", frames=431, handcrafted_extras=False)
    cut = Segmenting.from_seconds(3.0, 3.0, sample_rate=sr, hop_length=512)
    vectors = handcrafted_vectors(y, params, cut)
    assert vectors.shape == (3, 57) and vectors.dtype == np.float32  # a 10 s clip: three 3 s segments
    length = (cut.frames - 1) * 512
    for index, start in enumerate(cut.starts(431)):
        expected = clip_statistics(y[start * 512: start * 512 + length], sr, extras=False)
        np.testing.assert_allclose(vectors[index], expected, rtol=1e-6)
    whole = handcrafted_vectors(y, params)
    np.testing.assert_allclose(whole[0], clip_statistics(y[: params.n_samples], sr, extras=False), rtol=1e-6)


def test_handcrafted_vectors_are_cached_as_float32_per_segmenting(tone_tree, tmp_path):
    from benchmark.data.features import extract_features, feature_cache_dir
    from benchmark.data.tracks import discover_tracks

    tracks = discover_tracks(tone_tree)
    params = FeatureParams(representation="handcrafted", frames=40, hop_length=512)
    first = extract_features(tracks, params, tmp_path, workers=1, progress=False)
    again = extract_features(tracks, params, tmp_path, workers=1, progress=False)
    assert first.inputs.shape == (12, 83) and first.inputs.dtype == np.float32
    assert (first.from_cache, again.from_cache) == (0, 12)
    np.testing.assert_array_equal(first.inputs, again.inputs)
    cut = Segmenting(frames=10, hop_frames=10)
    assert feature_cache_dir(tmp_path, params, cut) != feature_cache_dir(tmp_path, params)
    segments = extract_features(tracks, params, tmp_path, segmenting=cut, workers=1, progress=False)
    assert segments.from_cache == 0 and len(segments.inputs) > 12


def test_mfcc_is_n_mfcc_coefficients_per_frame():
    import librosa

    y, sr = real_clip()
    params = FeatureParams(representation="mfcc", n_mels=96, n_mfcc=13, frames=431)
    from benchmark.data.features import compute_spectrogram

    mfcc = compute_spectrogram(y, params)
    mel_db = librosa.power_to_db(librosa.feature.melspectrogram(y=y[: params.n_samples], sr=sr, n_mels=96),
                                 ref=np.max)
    np.testing.assert_allclose(mfcc, librosa.feature.mfcc(S=mel_db, sr=sr, n_mfcc=13), rtol=1e-4, atol=1e-3)
    assert mfcc.shape == (13, 431) and params.shape == (13, 431)


def test_data_features_writes_the_table(tone_tree, tmp_path):
    out = tmp_path / "features.csv"
    result = run_cli("data", "features", str(tone_tree), "--out", str(out), "--no-extras", "--workers", "1",
                     "--no-progress", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    import pandas as pd

    table = pd.read_csv(out)
    assert list(table.columns) == ["filename", "length", *PUBLIC_TABLE, "label"]
    assert len(table) == 12 and set(table["label"]) == {"blues", "jazz", "rock"}
    assert (table["length"] == 22050).all() and table["filename"].iloc[0].endswith(".wav")
    assert_user_error(run_cli("data", "features", str(tmp_path / "none"), "--out", str(out), cwd=tmp_path),
                      "error")


@pytest.mark.parametrize(("text", "message"), [
    ('[features]\nrepresentation = "cqt"\n', "features.representation"),
    ('[model.svm.features]\nrepresentations = "handcrafted"\n', "model.svm.features: unknown key 'representations'"),
    ("[run]\nmodels = ['combined']\n[model.combined.features]\nadd_handcrafted = false\n",
     "model.combined: the combined network needs the handcrafted vector beside the frames: set "
     "[model.combined.features] add_handcrafted = true"),
    ("[model.svm]\nepochs = 3\n", "model.svm: a classical model has no epochs"),
    ('[model.svm.features]\nadd_handcrafted = true\n', "a classical learner takes one input"),
    ('[model.x]\narchitecture = "resnet"\n', "model.x: unknown model 'resnet'"),
])
def test_bad_baseline_settings_are_one_clear_error(tmp_path, text, message):
    path = tmp_path / "exp.toml"
    path.write_text('extends = "smoke"\n' + text)
    with pytest.raises(BenchmarkError, match=re.escape(message)):
        load_experiment(path)
    assert_user_error(run_cli("run", "--all", "--experiment", str(path), cwd=tmp_path), message.split(":")[-1].strip())


def test_a_model_gets_the_inputs_it_declares_wherever_it_is_named():
    from benchmark.batch import unit_settings

    smoke = load_experiment("smoke")
    assert smoke.features_for("combined").add_handcrafted  # named nowhere in smoke.toml
    aliased = load_experiment("smoke", ['model.both.architecture="combined"', "model.both.dropout=0.1"])
    assert aliased.features_for("both").describe == "logmel+handcrafted"
    # Only the model that declares the input gets it: the others' inputs, and so their unit
    # keys, stay as they were.
    for name in ("cnn2d", "svm"):
        assert smoke.features_for(name) is smoke.features
        assert "features.add_handcrafted" in unit_settings(smoke, name)
        assert unit_settings(smoke, name)["features.add_handcrafted"] is False


@pytest.mark.parametrize(("overrides", "message"), [
    (["model.combined.features.add_handcrafted=false"], "set [model.combined.features] add_handcrafted = true"),
    (["features.representation=handcrafted"],
     "model.combined.features: add_handcrafted needs a frame representation (stft, logmel, mfcc, musicnn-mel), not "
     "'handcrafted' (the combined model needs add_handcrafted = true"),
])
def test_a_setting_that_denies_a_model_its_inputs_is_one_line_before_any_unit_trains(tmp_path, overrides, message):
    sets = [arg for override in overrides for arg in ("--set", override)]
    result = run_cli("run", "--model", "svm", "combined", "--experiment", "smoke", *sets, cwd=tmp_path)
    assert_user_error(result, message)
    assert not (tmp_path / "mlruns").exists()  # svm never ran: nothing written


def test_each_feature_setting_is_extracted_once_and_shares_the_split(tmp_path, caplog):
    from benchmark.data.prepare import prepare_models

    path = tmp_path / "exp.toml"
    path.write_text(BASELINES)
    config = load_experiment(path)
    with caplog.at_level(logging.INFO):
        prepared = prepare_models(config, list(config.run.models), progress=False)
    handcrafted = {id(prepared[name]) for name in ("svm", "knn", "random_forest", "logreg")}
    assert len(handcrafted) == 1  # one object: one extraction for the four learners
    extractions = [record.message for record in caplog.records if record.message.startswith("features ")]
    assert len(extractions) == 4  # logmel; handcrafted; combined's logmel and handcrafted (cached)
    assert "inputs handcrafted for svm, knn, random_forest, logreg" in caplog.text
    plans = {name: data.plan for name, data in prepared.items()}
    assert len({id(plan) for plan in plans.values()}) == 1
    tests = {name: data.split().subset("test").track_indices.tolist() for name, data in prepared.items()}
    assert len({tuple(indices) for indices in tests.values()}) == 1
    combined = prepared["combined"].split().subset("train").x
    assert set(combined) == {"frames", "handcrafted"}
    assert len(combined["frames"]) == len(combined["handcrafted"]) == len(prepared["cnn2d"].split().subset("train").y)


def test_classical_pipeline_is_seeded_scores_every_class_and_reloads(tmp_path):
    from benchmark.models import create_estimator, load_estimator

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 8)) + np.repeat(np.arange(3), 20)[:, None]
    y = np.repeat(np.arange(3), 20)
    forests = [create_estimator("random_forest", (8,), 4, n_estimators=20) for _ in range(2)]
    for forest in forests:
        report = forest.fit(x[::2], y[::2], x[1::2], y[1::2], seed=7)
        assert set(report.history) == {"loss", "accuracy", "val_loss", "val_accuracy"} and report.epochs_run == 1
    first, second = (forest.predict_proba(x[1::2]) for forest in forests)
    np.testing.assert_array_equal(first, second)  # same seed, same forest
    assert first.shape == (30, 4) and np.all(first[:, 3] == 0.0)  # class 3 never seen: probability 0
    np.testing.assert_allclose(first.sum(axis=1), 1.0)
    assert forests[0].count_params() > 20
    loaded = load_estimator(forests[0].save(tmp_path))
    np.testing.assert_array_equal(loaded.predict_proba(x[1::2]), first)


@pytest.mark.slow
@pytest.mark.server
def test_classical_and_combined_models_run_report_promote_predict_and_serve(tmp_path):
    experiment = tmp_path / "baselines.toml"
    experiment.write_text(BASELINES)
    trained = run_cli("run", "--all", "--experiment", str(experiment), "--no-progress", cwd=tmp_path, timeout=900)
    assert trained.returncode == 0, trained.stderr
    reported = run_cli("report", cwd=tmp_path)
    assert reported.returncode == 0, reported.stderr
    folder = next((tmp_path / "reports" / "smoke-baselines").iterdir())
    markdown = (folder / "report.md").read_text()
    significance = markdown.split("## Pairwise significance")[1].split("##")[0]
    # Every pair shares its test clips: a McNemar cell, never the paired-t fallback.
    assert "(paired t" not in significance and significance.count("(McNemar exact)") >= 2 * 15
    import pandas as pd

    summary = pd.read_csv(folder / "summary.csv").set_index("model")
    assert summary.loc["svm", "kind"] == "classical" and summary.loc["svm", "input"] == "handcrafted"
    assert summary.loc["combined", "input"] == "logmel+handcrafted"
    # Fewest parameters: logistic regression's 10 x 83 weights and 10 intercepts.
    promoted = run_cli("promote", "--metric", "parameters", cwd=tmp_path)
    assert promoted.returncode == 0, promoted.stderr
    assert "logreg-seed0" in promoted.stdout and summary.loc["logreg", "parameters"] == 10 * 83 + 10
    clip = EXCERPTS / "rock" / "rock.00007.wav"
    if not clip.is_file():
        from tests.helpers import write_clip

        clip = write_clip(tmp_path / "tone.wav", seconds=3.0)
    labelled = run_cli("predict", str(clip), "--format", "json", cwd=tmp_path)
    assert labelled.returncode == 0, labelled.stderr
    assert json.loads(labelled.stdout)[0]["status"] == "ok"

    import requests

    payload = {"dataframe_split": {"columns": ["audio"], "data": [[base64.b64encode(clip.read_bytes()).decode()]]}}
    with served_model("models:/genre-classifier@champion", f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}",
                      tmp_path) as url:
        answer = requests.post(f"{url}/invocations", json=payload, timeout=120)
    assert answer.status_code == 200, answer.text
    prediction = answer.json()["predictions"][0]
    assert prediction["error"] is None and prediction["genre"] in prediction_genres(prediction)


def prediction_genres(prediction: dict) -> set[str]:
    return {key.removeprefix("p_") for key in prediction if key.startswith("p_")}


def test_a_classical_learner_is_tuned_on_validation_like_a_network(tmp_path):
    from benchmark.tune import tune_model

    path = tmp_path / "exp.toml"
    path.write_text(BASELINES)
    config = load_experiment(path)
    outcome = tune_model(config, "svm", trials=3, storage=f"sqlite:///{tmp_path / 'optuna.db'}",
                         tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", export_dir=tmp_path)
    assert (outcome.trials_before, outcome.trials_after) == (0, 3)
    assert outcome.best_trial is not None and 0.0 <= outcome.best_value <= 1.0
    assert set(outcome.best_params) == {"C", "gamma"}  # the learner's space: no epochs, no batch size
    tuned = load_experiment(outcome.tuned_experiment)
    assert tuned.run.models == ("svm",) and tuned.features_for("svm").representation == "handcrafted"
