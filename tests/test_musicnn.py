"""musicnn: weights fetched once and checked, the Keras 3 port, embeddings as features, the models on them.

The wheel (29 MB) is downloaded once per test session with ``pip download`` (or taken from
``$GENRE_BENCHMARK_MUSICNN_WHEEL``); the session's cache gets the weights from it. Tests that need
a fresh cache point pip at that wheel (``PIP_FIND_LINKS``, ``PIP_NO_INDEX``), so they run the real
fetch with no second download. Parity with the original TF1 network is tox's
``musicnn-reference`` environment (``tests/test_musicnn_reference.py``).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmark.errors import BenchmarkError
from tests.helpers import EXCERPTS, assert_user_error, run_cli, served_model, write_clip

WHEEL_ENV = "GENRE_BENCHMARK_MUSICNN_WHEEL"


@pytest.fixture(scope="session")
def musicnn_wheel(tmp_path_factory) -> Path:
    """The musicnn 0.1.0 wheel, fetched once per session (a skip saying why where it cannot be)."""
    from benchmark.pretrained import weights

    if given := os.environ.get(WHEEL_ENV):
        return Path(given)
    folder = tmp_path_factory.mktemp("musicnn-wheel")
    result = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                             "--dest", str(folder), f"musicnn=={weights.VERSION}"],
                            capture_output=True, text=True, check=False)
    found = sorted(folder.glob("musicnn-*.whl"))
    if result.returncode != 0 or not found:
        pytest.skip(f"cannot download the musicnn wheel (set {WHEEL_ENV}): {result.stderr.strip()[-300:]}")
    return found[0]


@pytest.fixture(scope="session")
def fetched(musicnn_wheel, shared_cache) -> Path:
    """The session cache, holding the musicnn weights (from the session's wheel)."""
    from benchmark.pretrained import weights

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GENRE_BENCHMARK_CACHE", str(shared_cache))
        weights.fetch(musicnn_wheel)
    return shared_cache


def pip_from(folder: Path) -> dict[str, str]:
    """Settings under which ``pip download`` looks in ``folder`` only (no index)."""
    return {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(folder)}


# --- weights: fetched once, checked, every variable placed ---------------------------------------

def test_fetch_rejects_a_missing_or_different_wheel_in_one_line(tmp_path):
    assert_user_error(run_cli("weights", "fetch", "musicnn", "--from", str(tmp_path / "gone.whl")), "no such wheel")
    other = tmp_path / "musicnn-0.1.0-py3-none-any.whl"
    other.write_bytes(b"not the wheel")
    assert_user_error(run_cli("weights", "fetch", "musicnn", "--from", str(other)), "expected f38a4890c6")
    # Nothing to download from: pip's failure, and what to do about it.
    (tmp_path / "empty").mkdir()
    env = {**os.environ, **pip_from(tmp_path / "empty"), "GENRE_BENCHMARK_CACHE": str(tmp_path / "cache")}
    assert_user_error(run_cli("weights", "fetch", "musicnn", env=env), "--from FILE")
    assert not list((tmp_path / "cache").rglob("*.npz"))


def test_fetch_from_the_index_once_then_nothing(musicnn_wheel, tmp_path):
    env = {**os.environ, **pip_from(musicnn_wheel.parent), "GENRE_BENCHMARK_CACHE": str(tmp_path / "cache")}
    first = run_cli("weights", "fetch", "musicnn", env=env)
    assert first.returncode == 0, first.stderr
    assert "pip download" in first.stderr
    folder = tmp_path / "cache" / "pretrained" / "musicnn-0.1.0"
    assert sorted(path.name for path in folder.glob("*.npz")) == ["MSD_musicnn.npz", "MTT_musicnn.npz"]
    assert (folder / "MSD_musicnn" / ".index").is_file() and not list(folder.rglob("*.whl"))
    (tmp_path / "empty").mkdir()
    again = run_cli("weights", "fetch", "musicnn", env={**env, **pip_from(tmp_path / "empty")})
    assert again.returncode == 0 and "nothing fetched" in again.stdout, again.stderr


@pytest.mark.parametrize("model", ["MSD_musicnn", "MTT_musicnn"])
def test_every_checkpoint_variable_finds_its_layer(fetched, model):
    from benchmark.pretrained import musicnn, weights

    arrays = weights.load_weights(weights.weights_file(model))
    network = musicnn.build_musicnn()
    musicnn.assign_checkpoint(network, arrays)  # raises on a leftover variable or a shape that differs
    assert sum(value.size for value in arrays.values()) == network.count_params()
    assert not any("Adam" in name or "power" in name for name in arrays)
    kernel = network.get_layer("conv2d_5").kernel  # a TF1 2D kernel (7, 561, 1, 64) as a Conv1D's
    np.testing.assert_array_equal(np.asarray(kernel), arrays["conv2d_5/kernel"].reshape(7, 561, 64))
    with pytest.raises(ValueError, match="no layer: extra/kernel"):
        musicnn.assign_checkpoint(network, {**arrays, "extra/kernel": np.zeros(3)})
    with pytest.raises(ValueError, match="dense/bias has shape"):
        musicnn.assign_checkpoint(network, {**arrays, "dense/bias": np.zeros(3)})


def test_tags_of_real_excerpts_follow_their_genres(fetched):
    # The pretrained MSD tagger, through the port, hears metal as rock more than it hears classical
    # music so, and jazz as jazz more than metal: the weights are in the right places.
    if not EXCERPTS.is_dir():
        pytest.skip(f"real GTZAN excerpts not found at {EXCERPTS}")
    from benchmark.pretrained import weights
    from benchmark.pretrained.embed import embedder

    tags = ["rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s",
            "alternative rock", "jazz"]  # the first of MSD_musicnn's 50 tags, in its order
    network = embedder(str(weights.weights_file("MSD_musicnn")), ("taggram",))
    mean = {}
    for genre in ("metal", "classical", "jazz"):
        clips = sorted((EXCERPTS / genre).glob("*.wav"))
        from benchmark.data.tracks import load_audio

        mean[genre] = network.embed([load_audio(clip, 22050)[: 22050 * 3] for clip in clips], 22050).mean(axis=0)
    assert mean["metal"][tags.index("rock")] > mean["classical"][tags.index("rock")]
    assert mean["jazz"][tags.index("jazz")] > mean["metal"][tags.index("jazz")]


# --- the representation: configuration, extraction, cache ---------------------------------------

def test_musicnn_settings_are_checked_by_name(tmp_path):
    from benchmark.config import load_experiment

    with pytest.raises(BenchmarkError, match="musicnn_model"):
        load_experiment("embeddings", ['model.svm.features.musicnn_model="VGG"'])
    with pytest.raises(BenchmarkError, match="musicnn_layers"):
        load_experiment("embeddings", ['features.musicnn_layers=["mean_pool", "mean_pool"]'])
    with pytest.raises(BenchmarkError, match="musicnn-finetune takes musicnn's own log-mel"):
        load_experiment("smoke", ["run.models=['musicnn-finetune']"])
    with pytest.raises(BenchmarkError, match="n_fft = 512, hop_length = 256"):
        load_experiment("smoke", ['features.representation="musicnn-mel"'])
    assert_user_error(run_cli("run", "--all", "--experiment", "embeddings", "--set", 'features.musicnn_model="MSD_vgg"'),
                      "musicnn_model")
    # Settings of the musicnn representation leave every other model's configuration as it was.
    assert "musicnn_model" not in load_experiment("default").features.model_dump()


def test_embeddings_are_extracted_per_segment_and_cached(fetched, tone_tree):
    from benchmark.config import FeaturesConfig
    from benchmark.data.features import FeatureParams, clip_inputs, extract_features
    from benchmark.data.segments import Segmenting
    from benchmark.data.tracks import discover_tracks, load_audio

    tracks = discover_tracks(tone_tree)
    features = FeaturesConfig(representation="musicnn", frames=86, musicnn_layers=("penultimate", "taggram"))
    params = FeatureParams.from_features(features, 22050)
    assert params.shape == (250,) and params.is_vector
    assert len(params.musicnn_checkpoint) == 64
    cut = Segmenting(frames=22, hop_frames=22)  # 0.5 s segments of 1 s tones: two per clip
    first = extract_features(tracks, params, fetched, segmenting=cut, progress=False)
    assert first.inputs.shape == (2 * len(tracks), 250) and first.inputs.dtype == np.float32
    assert first.from_cache == 0 and np.all(np.isfinite(first.inputs))
    taggram = first.inputs[:, 200:]
    assert np.all((taggram >= 0) & (taggram <= 1))
    again = extract_features(tracks, params, fetched, segmenting=cut, progress=False)
    assert again.from_cache == len(tracks)
    np.testing.assert_array_equal(again.inputs, first.inputs)
    # What the audio model computes for one file is what extraction cached for it.
    audio = load_audio(tracks[0].path, 22050)
    np.testing.assert_allclose(clip_inputs(audio, params, segmenting=cut), first.inputs[:2], atol=1e-5)
    other = FeatureParams.from_features(features.model_copy(update={"musicnn_model": "MTT_musicnn"}), 22050)
    assert other.key(cut) != params.key(cut) and other.musicnn_checkpoint != params.musicnn_checkpoint


def test_the_audio_model_carries_the_weights_it_embeds_with(fetched, tmp_path, monkeypatch):
    from benchmark.data.features import FeatureParams
    from benchmark.data.preprocessing import (
        MUSICNN_WEIGHTS,
        Preprocessing,
        bundled_files,
        preprocessing_config,
    )

    params = FeatureParams(representation="musicnn", frames=86, musicnn_model="MSD_musicnn",
                           musicnn_layers=("mean_pool",), musicnn_checkpoint="x")
    config = json.loads(json.dumps(preprocessing_config(params)))  # as preprocessing.json holds it
    files = bundled_files(config)
    assert Path(files[MUSICNN_WEIGHTS]).name == "MSD_musicnn.npz"
    bundle = tmp_path / "artifacts"
    bundle.mkdir()
    (bundle / "weights.npz").write_bytes(Path(files[MUSICNN_WEIGHTS]).read_bytes())
    monkeypatch.setenv("GENRE_BENCHMARK_CACHE", str(tmp_path / "empty-cache"))  # nothing to fetch from
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    loaded = Preprocessing.from_config(config, files={MUSICNN_WEIGHTS: str(bundle / "weights.npz")})
    vectors = loaded.inputs(np.random.default_rng(0).standard_normal(22050).astype(np.float32) * 0.1)
    assert vectors.shape == (1, 753) and np.all(np.isfinite(vectors))
    assert not (tmp_path / "empty-cache" / "pretrained").exists()
    assert bundled_files(preprocessing_config(FeatureParams(representation="logmel"))) == {}


# --- the models ---------------------------------------------------------------------------------

def test_finetune_starts_from_the_checkpoint_and_trains_only_what_is_not_frozen(fetched):
    import keras

    from benchmark.models import create_model, get_model_spec
    from benchmark.pretrained import weights

    assert get_model_spec("musicnn-finetune").kind == "pretrained"
    keras.utils.set_random_seed(0)
    model = create_model("musicnn-finetune", (96, 120), 4)
    arrays = weights.load_weights(weights.weights_file("MSD_musicnn"))
    frozen = model.get_layer("conv2d").kernel
    np.testing.assert_array_equal(np.asarray(frozen), arrays["conv2d/kernel"])
    assert not model.get_layer("conv2d").trainable and model.get_layer("conv2d_5").trainable
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    model.train_on_batch(rng.random((4, 96, 120), dtype=np.float32) * 3, np.arange(4))
    np.testing.assert_array_equal(np.asarray(model.get_layer("conv2d").kernel), arrays["conv2d/kernel"])
    assert not np.array_equal(np.asarray(model.get_layer("conv2d_5").kernel),
                              arrays["conv2d_5/kernel"].reshape(7, 561, 64))
    unfrozen = create_model("musicnn-finetune", (96, 120), 4, freeze="none", pretrained="none")
    assert all(layer.trainable for layer in unfrozen.layers)


def test_the_probe_scales_its_input_with_training_statistics_only():
    from benchmark.models import create_estimator

    estimator = create_estimator("musicnn-probe", (6,), 3)
    model = estimator.build()
    train = np.zeros((8, 6), dtype=np.float32)
    train[:, 0] = np.arange(8)  # one live feature; five silent (a ReLU never firing on training clips)
    estimator.adapt(model, train)
    scale = model.get_layer("embedding_scale")
    np.testing.assert_allclose(np.asarray(scale.mean).ravel(), train.mean(axis=0), atol=1e-6)
    assert np.min(np.asarray(scale.variance)) >= 1e-2  # a silent feature never divides by ~0


# --- end to end: run from an empty cache, then report, promote, predict and serve ---------------

TINY = ["--seeds", "0", "--set", "data.synth_clips_per_genre=5", "--set", "data.synth_seconds=4",
        "--set", "split.folds=2", "--set", "split.valid_fraction=0.4", "--set", "features.frames=172",
        "--set", "model.musicnn-probe.epochs=5", "--no-progress"]


@pytest.mark.slow
@pytest.mark.server
def test_embeddings_run_from_an_empty_cache_fetches_once_then_serves_without_fetching(musicnn_wheel, tmp_path):
    import requests

    cache = tmp_path / "fresh-cache"
    env = {**os.environ, **pip_from(musicnn_wheel.parent), "GENRE_BENCHMARK_CACHE": str(cache)}
    first = run_cli("run", "--experiment", "embeddings", "--model", "logreg", "musicnn-probe", *TINY,
                    cwd=tmp_path, env=env, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    assert first.stderr.count("fetching the musicnn") == 1
    (tmp_path / "empty").mkdir()
    offline = {**env, **pip_from(tmp_path / "empty")}  # a second fetch would fail
    second = run_cli("run", "--experiment", "embeddings", "--model", "logreg", "musicnn-probe", *TINY,
                     cwd=tmp_path, env=offline, timeout=900)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "fetching the musicnn" not in second.stderr
    assert "features musicnn (1506,): 50 from cache, 0 computed" in second.stderr

    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("embeddings").experiment_id],
                              filter_string="tags.model = 'musicnn-probe'")
    params = runs[0].data.params
    assert params["effective.features.musicnn_model"] == "MSD_musicnn"
    assert params["effective.features.musicnn_checkpoint"].startswith("8579734ee638")
    assert runs[0].data.tags["representation"] == "musicnn"

    # The audio models carry the weights: nothing below may fetch (empty cache, no index).
    served_env = {**offline, "GENRE_BENCHMARK_CACHE": str(tmp_path / "another-empty-cache")}
    reported = run_cli("report", cwd=tmp_path, env=served_env)
    assert reported.returncode == 0, reported.stderr[-2000:]
    assert "musicnn-probe" in next((tmp_path / "reports").rglob("report.md")).read_text()
    promoted = run_cli("promote", "--metric", "parameters", cwd=tmp_path, env=served_env)  # the fewest: logreg
    assert promoted.returncode == 0, promoted.stderr[-2000:]
    assert "logreg-seed0" in promoted.stdout
    clip = next(iter(sorted(EXCERPTS.glob("*/*.wav"))), None) if EXCERPTS.is_dir() else None
    clip = clip or write_clip(tmp_path / "tone.wav", seconds=4.0)
    labelled = run_cli("predict", str(clip), "--format", "csv", cwd=tmp_path, env=served_env)
    assert labelled.returncode == 0, labelled.stderr[-2000:]
    assert ",ok," in labelled.stdout.splitlines()[1]
    with pytest.MonkeyPatch.context() as patch:
        for key, value in served_env.items():
            patch.setenv(key, value)
        with served_model("models:/genre-classifier@champion", uri, tmp_path) as url:
            payload = {"dataframe_split": {"columns": ["audio"],
                                           "data": [[base64.b64encode(clip.read_bytes()).decode()]]}}
            response = requests.post(f"{url}/invocations", json=payload, timeout=300)
    assert response.status_code == 200, response.text
    (row,) = response.json()["predictions"]
    assert row["error"] is None and row["genre"] is not None and 0.0 <= row["probability"] <= 1.0
    assert not (tmp_path / "another-empty-cache" / "pretrained").exists()
