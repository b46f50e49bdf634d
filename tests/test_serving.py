"""The audio-in model, `promote`, `predict`, `mlflow models serve` and `latency`."""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.errors import BenchmarkError
from tests.helpers import (
    EXCERPTS,
    PLANTED_EXPERIMENT,
    batch_runs,
    logged_network,
    plant_champion,
    plant_run,
    run_cli,
    served_model,
    smoke_params,
    store_uri,
    train_smoke_batch,
    write_clip,
)

CHAMPION = "models:/genre-classifier@champion"


@pytest.fixture(scope="module")
def champion_store(tmp_path_factory):
    """A store whose champion is a planted run's (untrained) audio model: nothing is trained."""
    return plant_champion(tmp_path_factory.mktemp("champion-store"))


@pytest.fixture(scope="module")
def trained_batch(tmp_path_factory, shared_cache):
    """cnn2d and crnn trained on the smoke experiment once for the module, through the runner."""
    return train_smoke_batch(tmp_path_factory.mktemp("trained-batch"), shared_cache)


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def assert_user_error(result, fragment):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and fragment in lines[-1], result.stderr
    assert "Traceback" not in result.stderr


# --- pieces, without MLflow runs ---------------------------------------------------------------

@pytest.mark.parametrize("verb", ["promote", "predict", "latency"])
def test_new_verbs_have_help(verb):
    result = run_cli(verb, "--help", cwd=None)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: python -m benchmark {verb}")


def test_folders_are_searched_recursively_and_named_files_are_always_tried(tmp_path):
    from benchmark.serving.predict import collect_audio_files

    music = tmp_path / "music"
    first = write_clip(music / "a.wav")
    nested = write_clip(music / "deep" / "b.flac", fmt="FLAC")
    (music / "notes.txt").write_text("not audio by name: left out of a folder scan")
    named = tmp_path / "upload.bin"
    named.write_bytes(b"named explicitly: tried whatever its suffix")
    files, missing = collect_audio_files([music, named, tmp_path / "gone.wav"])
    assert files == [first, nested, named]
    assert missing == [tmp_path / "gone.wav"]


def test_nothing_to_label_is_a_user_error(tmp_path):
    from benchmark.serving.predict import collect_audio_files

    with pytest.raises(BenchmarkError, match="no such file or directory"):
        collect_audio_files([tmp_path / "gone.wav"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(BenchmarkError, match="no audio files"):
        collect_audio_files([tmp_path / "empty"])


def test_failed_rows_are_null_so_the_rest_answer_is_valid_json():
    from benchmark.audio_model import result_frame

    outputs = result_frame(np.array([[0.2, 0.8], [np.nan, np.nan]]), [None, "bad row"], ["jazz", "rock"])
    records = json.loads(json.dumps(outputs.to_dict("records"), allow_nan=False))
    assert records == [
        {"genre": "rock", "probability": 0.8, "p_jazz": 0.2, "p_rock": 0.8, "error": None},
        {"genre": None, "probability": None, "p_jazz": None, "p_rock": None, "error": "bad row"},
    ]


def test_top_k_rows_rank_each_file_and_keep_the_errors():
    from benchmark.audio_model import result_frame
    from benchmark.serving.predict import render, top_k_table

    outputs = result_frame(np.array([[0.1, 0.6, 0.3], [np.nan] * 3]), [None, "empty file: b.wav"],
                           ["blues", "jazz", "rock"])
    outputs.insert(0, "path", ["a.wav", "b.wav"])
    table = top_k_table(outputs, [Path("c.wav")], k=2)
    assert table.to_dict("records")[0] == {
        "path": "a.wav", "status": "ok", "genre_1": "jazz", "probability_1": 0.6,
        "genre_2": "rock", "probability_2": 0.3, "error": "",
    }
    assert list(table["status"]) == ["ok", "error", "error"]
    assert table["error"][1] == "empty file: b.wav" and "c.wav" in table["error"][2]
    assert top_k_table(outputs, [], k=10).filter(like="genre_").shape[1] == 3  # k capped at the classes

    records = json.loads(render(table, "json"))
    assert records[0]["top"] == [{"genre": "jazz", "probability": 0.6}, {"genre": "rock", "probability": 0.3}]
    assert records[1] == {"path": "b.wav", "status": "error", "error": "empty file: b.wav"}
    rows = list(csv.DictReader(io.StringIO(render(table, "csv"))))
    assert rows[0]["genre_1"] == "jazz" and float(rows[0]["probability_1"]) == 0.6
    assert rows[1]["genre_1"] == "" and rows[1]["error"] == "empty file: b.wav"
    text = render(table, "table")
    assert "0.600" in text and "empty file: b.wav" in text
    assert "None" not in text and "nan" not in text.lower()


def test_preprocessing_config_round_trips_and_refuses_what_it_cannot_apply():
    from benchmark.data.preprocessing import Preprocessing, preprocessing_config

    def feature_params_from(config):
        return Preprocessing.from_config(config).params

    params = smoke_params()
    config = json.loads(json.dumps(preprocessing_config(params)))
    assert feature_params_from(config) == params
    with pytest.raises(BenchmarkError, match="segmenting"):
        feature_params_from(config | {"segmenting": {"mode": "vote"}})
    with pytest.raises(BenchmarkError, match="normalisation"):
        feature_params_from(config | {"normalisation": {"mode": "whiten"}})
    old_format = {"format": 1, "features": config["features"], "normalisation": {"mode": "per_clip"},
                  "segmenting": {"mode": "none"}}
    assert feature_params_from(old_format) == params  # models logged before segments still load
    with pytest.raises(BenchmarkError, match="format"):
        feature_params_from(config | {"format": 99})


@pytest.mark.parametrize(("metric", "lower"), [
    ("test_accuracy", False), ("test_macro_f1", False), ("val_loss", True), ("loss", True),
    ("test_inference_ms_per_clip", True), ("train_seconds", True), ("parameters", True),
])
def test_metric_direction(metric, lower):
    from benchmark.serving.promote import lower_is_better

    assert lower_is_better(metric) is lower


# --- promote: planted runs with real (untrained) audio models ----------------------------------

def champion_of(uri):
    from mlflow import MlflowClient

    version = MlflowClient(tracking_uri=uri).get_model_version_by_alias("genre-classifier", "champion")
    return version.run_id, str(version.version), version.source


def test_promote_moves_the_champion_alias_to_the_better_run(tmp_path):
    from mlflow import MlflowClient

    from benchmark import tracking
    from benchmark.serving.promote import promote

    uri = store_uri(tmp_path)
    older = plant_run(uri, batch_id="batch-old",
                      metrics={"test_accuracy": 0.95, "test_inference_ms_per_clip": 1.0})
    worse = plant_run(uri, batch_id="batch-new", seed=1,
                      metrics={"test_accuracy": 0.50, "test_inference_ms_per_clip": 2.0})
    better = plant_run(uri, batch_id="batch-new", seed=2,
                       metrics={"test_accuracy": 0.75, "test_inference_ms_per_clip": 4.0})
    # Later runs that are not training runs (a tuning trial, a report) do not make a batch.
    experiment_id = tracking.ensure_experiment(PLANTED_EXPERIMENT, uri)
    for tags in ({"model": "cnn2d", "run_kind": "tune_trial", "batch_id": "tuning"},
                 {"run_kind": "report", "batch_id": "reported"}):
        with tracking.tracked_run(experiment_id, tags["run_kind"], tags):
            pass

    # Default: the latest batch, by test accuracy.
    result = run_cli("promote", "--experiment", PLANTED_EXPERIMENT, "--tracking-uri", uri, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run_id, version, source = champion_of(uri)
    assert (run_id, version) == (better, "1")
    assert source == MlflowClient(tracking_uri=uri).get_run(better).data.tags["audio_model_uri"]
    assert "batch batch-new" in result.stdout and better in result.stdout
    assert "test_accuracy = 0.7500 (higher is better)" in result.stdout
    assert "version 1" in result.stdout

    # A lower-is-better metric picks the other run of that batch; the alias moves to version 2.
    moved = promote(PLANTED_EXPERIMENT, metric="test_inference_ms_per_clip", tracking_uri=uri)
    assert (moved.run_id, moved.version, moved.lower_is_better) == (worse, "2", True)
    assert champion_of(uri)[:2] == (worse, "2")

    # An explicit batch.
    assert promote(PLANTED_EXPERIMENT, batch_id="batch-old", tracking_uri=uri).run_id == older
    assert champion_of(uri)[:2] == (older, "3")


def test_promote_mistakes_are_one_clear_error(tmp_path):
    from benchmark.serving.promote import promote

    assert_user_error(run_cli("promote", cwd=tmp_path), "no tracking store")
    assert not (tmp_path / "mlruns").exists()  # a reading command leaves no empty store behind
    uri = store_uri(tmp_path)
    plant_run(uri, batch_id="b1", metrics={"test_accuracy": 0.5})
    with pytest.raises(BenchmarkError, match="no MLflow experiment 'nope'"):
        promote("nope", tracking_uri=uri)
    with pytest.raises(BenchmarkError, match="metric 'val_f2'"):
        promote(PLANTED_EXPERIMENT, metric="val_f2", tracking_uri=uri)
    with pytest.raises(BenchmarkError, match="no runs of batch 'b404'.*recent batches: b1"):
        promote(PLANTED_EXPERIMENT, batch_id="b404", tracking_uri=uri)


# --- predict -----------------------------------------------------------------------------------

@pytest.fixture
def mixed_folder(tmp_path):
    """Good clips (one nested, shorter and longer than training), an empty file, a text file."""
    folder = tmp_path / "uploads"
    good = [
        write_clip(folder / "short.wav", seconds=0.5, frequency=330.0),
        write_clip(folder / "deep" / "long.flac", seconds=4.0, sample_rate=44100, channels=2,
                   fmt="FLAC", frequency=880.0),
    ]
    (folder / "empty.wav").write_bytes(b"")
    (folder / "lyrics.mp3").write_text("la la la: text with an audio suffix\n")
    (folder / "readme.txt").write_text("not audio by name: not scanned")
    return folder, good


def test_predict_labels_the_good_files_and_reports_the_bad_ones(champion_store, mixed_folder, tmp_path):
    from benchmark.data.gtzan import GTZAN_GENRES
    from benchmark.serving.predict import load_audio_model

    folder, good = mixed_folder
    env = {**os.environ, "MLFLOW_TRACKING_URI": champion_store["uri"]}
    result = run_cli("predict", str(folder), "--format", "json", "--top-k", "3", cwd=tmp_path, env=env)
    assert result.returncode == 1, result.stderr  # some files could not be labelled
    assert "2 of 4 files could not be labelled" in result.stderr
    records = {Path(record["path"]).name: record for record in json.loads(result.stdout)}
    assert set(records) == {"short.wav", "long.flac", "empty.wav", "lyrics.mp3"}
    assert records["empty.wav"] == {"path": str(folder / "empty.wav"), "status": "error",
                                    "error": f"empty file: {folder / 'empty.wav'}"}
    assert records["lyrics.mp3"]["status"] == "error"
    assert "cannot decode" in records["lyrics.mp3"]["error"]

    # The good files' top 3 are the champion's own, as its pyfunc computes them here.
    model = load_audio_model(CHAMPION, champion_store["uri"])
    expected = model.predict(pd.DataFrame({"path": [str(path) for path in good]}))
    for path, row in zip(good, expected.to_dict("records")):
        ranked = sorted(GTZAN_GENRES, key=lambda genre: row[f"p_{genre}"], reverse=True)[:3]
        top = records[path.name]["top"]
        assert [entry["genre"] for entry in top] == ranked
        expected_top = [row[f"p_{genre}"] for genre in ranked]
        assert [entry["probability"] for entry in top] == pytest.approx(expected_top, abs=1e-6)

    only_good = run_cli("predict", *map(str, good), "--format", "csv", "--top-k", "1", cwd=tmp_path, env=env)
    assert only_good.returncode == 0, only_good.stderr
    rows = list(csv.DictReader(io.StringIO(only_good.stdout)))
    assert [row["status"] for row in rows] == ["ok", "ok"]
    assert set(rows[0]) == {"path", "status", "genre_1", "probability_1", "error"}


def test_predict_without_a_usable_model_is_one_clear_error(champion_store, mixed_folder, tmp_path):
    folder, _ = mixed_folder
    assert_user_error(run_cli("predict", str(folder), cwd=tmp_path), "no tracking store")
    env = {**os.environ, "MLFLOW_TRACKING_URI": champion_store["uri"]}
    assert_user_error(run_cli("predict", str(folder), "--model-uri", "models:/genre-classifier@nope",
                              cwd=tmp_path, env=env), "cannot load model models:/genre-classifier@nope")
    assert_user_error(run_cli("predict", str(tmp_path / "gone.wav"), cwd=tmp_path, env=env),
                      "no such file or directory")


# --- the REST scoring app `mlflow models serve` runs, called in process -------------------------

def asgi_post(app, path: str, payload: dict) -> tuple[int, str]:
    """POST ``payload`` as JSON to an ASGI ``app``, as uvicorn would; its status and body."""
    import asyncio

    body = json.dumps(payload).encode()
    sent = []

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
             "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80)}
    asyncio.run(app(scope, receive, send))
    status = next(message["status"] for message in sent if message["type"] == "http.response.start")
    return status, b"".join(message.get("body", b"") for message in sent
                            if message["type"] == "http.response.body").decode()


def test_rest_request_with_neither_path_nor_audio_is_http_400(champion_store, monkeypatch):
    """The README's promise: a request without either input column fails whole, as a client error;
    a request whose rows cannot be read still answers 200, with an error per row."""
    import mlflow.pyfunc
    from mlflow.pyfunc import scoring_server

    monkeypatch.setenv("MLFLOW_TRACKING_URI", champion_store["uri"])
    monkeypatch.setenv("_MLFLOW_IS_IN_SERVING_ENVIRONMENT", "false")  # init sets it: restored after
    app = scoring_server.init(mlflow.pyfunc.load_model(CHAMPION))
    status, body = asgi_post(app, "/invocations", {"dataframe_split": {"columns": ["other"], "data": [["x"]]}})
    assert status == 400, body
    assert "'path' column" in json.loads(body)["message"]
    status, body = asgi_post(app, "/invocations", {"dataframe_split": {"columns": ["audio"],
                                                                       "data": [["not base64!"]]}})
    assert status == 200, body
    (row,) = json.loads(body)["predictions"]
    assert row["error"] == "the audio value is not valid base64" and row["genre"] is None


# --- trained models: the runner's hook, a fresh process, a real server -------------------------

def class_names_of(client, run) -> list[str]:
    return json.loads(Path(client.download_artifacts(run.info.run_id, "labels.json")).read_text())["classes"]


def keras_probabilities(run, paths) -> np.ndarray:
    """The run's logged Keras network on the training preprocessing of ``paths``."""
    from benchmark.data.features import compute_features
    from benchmark.data.tracks import load_audio

    params = smoke_params()
    network = logged_network(run.data.tags["audio_model_uri"])
    features = np.stack([compute_features(load_audio(path, params.sample_rate), params) for path in paths])
    return network.predict(features, verbose=0)


def assert_predicts_like(outputs: list[dict], expected: np.ndarray, class_names: list[str]) -> None:
    got = np.array([[row[f"p_{name}"] for name in class_names] for row in outputs])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    for row, probabilities in zip(outputs, expected):
        assert row["error"] is None
        assert row["probability"] == pytest.approx(probabilities.max(), abs=1e-5)
        # The named genre is the most probable one (up to float noise between two near-equal ones).
        assert probabilities[class_names.index(row["genre"])] == pytest.approx(probabilities.max(), abs=1e-5)


ROUND_TRIP = """
import json, sys
import mlflow.pyfunc, pandas as pd
model = mlflow.pyfunc.load_model(sys.argv[1])
import benchmark  # already imported by the model: from where?
outputs = model.predict(pd.DataFrame(json.loads(open(sys.argv[2]).read())))
open(sys.argv[3], "w").write(json.dumps(outputs.to_dict("records")))
print(benchmark.__file__)
"""


def round_trip(model_uri: str, tracking_uri: str, rows: list[dict], tmp_path: Path) -> tuple[list[dict], str]:
    """``rows`` through the pyfunc in a fresh process, away from the project and its data cache."""
    inputs, outputs = tmp_path / "inputs.json", tmp_path / "outputs.json"
    inputs.write_text(json.dumps(rows))
    (tmp_path / "no-cache").mkdir()
    (tmp_path / "elsewhere").mkdir()
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri,
           "GENRE_BENCHMARK_CACHE": str(tmp_path / "no-cache")}
    result = subprocess.run([sys.executable, "-c", ROUND_TRIP, model_uri, str(inputs), str(outputs)],
                            capture_output=True, text=True, cwd=tmp_path / "elsewhere", env=env, timeout=300,
                            check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(outputs.read_text()), result.stdout.strip().splitlines()[-1]


@pytest.mark.slow
def test_every_training_run_logs_an_audio_model_bundle(trained_batch):
    import mlflow

    from benchmark.data.preprocessing import Preprocessing

    outcome, _ = trained_batch
    client, runs = batch_runs(outcome)
    assert set(runs) == {"cnn2d", "crnn"}
    mlflow.set_tracking_uri(outcome.tracking_uri)
    for run in runs.values():
        bundle = Path(mlflow.artifacts.download_artifacts(run.data.tags["audio_model_uri"]))
        config = json.loads((bundle / "artifacts" / "preprocessing.json").read_text())
        assert Preprocessing.from_config(config).params == smoke_params()
        labels = json.loads((bundle / "artifacts" / "labels.json").read_text())["classes"]
        assert labels == class_names_of(client, run)
        assert (bundle / "code" / "benchmark" / "data" / "features.py").is_file()


@pytest.mark.slow
def test_pyfunc_in_a_fresh_process_predicts_like_the_keras_network_on_real_music(
    trained_batch, excerpts_dir, tmp_path
):
    outcome, _ = trained_batch
    client, runs = batch_runs(outcome)
    run = runs["cnn2d"]
    # One clip a genre, 15 to 20 s: far longer than the 1.5 s the network was trained on.
    paths = sorted(excerpts_dir.glob("*/*.00007.wav"))
    assert len(paths) == 10
    outputs, package = round_trip(run.data.tags["audio_model_uri"], outcome.tracking_uri,
                                  [{"path": str(path)} for path in paths], tmp_path)
    assert f"code{os.sep}benchmark" in package  # the model's own copy of the code, not the checkout
    assert_predicts_like(outputs, keras_probabilities(run, paths), class_names_of(client, run))


@pytest.mark.slow
def test_pyfunc_pads_short_clips_trims_long_ones_reads_base64_and_reports_bad_rows(trained_batch, tmp_path):
    outcome, _ = trained_batch
    client, runs = batch_runs(outcome)
    run = runs["crnn"]
    params = smoke_params()
    short = write_clip(tmp_path / "short.wav", seconds=0.4, frequency=330.0)
    long = write_clip(tmp_path / "long.flac", seconds=6.0, sample_rate=44100, channels=2, fmt="FLAC",
                      frequency=550.0)
    assert 0.4 * params.sample_rate < params.n_samples < 6.0 * params.sample_rate
    (tmp_path / "empty.wav").write_bytes(b"")
    rows = [{"path": str(short)}, {"path": str(long)}, {"audio": b64(short)},
            {"path": str(tmp_path / "empty.wav")}, {"audio": "not base64!"},
            {"path": str(tmp_path / "gone.wav")}]
    outputs, _ = round_trip(run.data.tags["audio_model_uri"], outcome.tracking_uri, rows, tmp_path)
    expected = keras_probabilities(run, [short, long, short])
    assert_predicts_like(outputs[:3], expected, class_names_of(client, run))
    errors = outputs[3:]
    assert all(row["genre"] is None and row["probability"] is None for row in errors)
    assert [row["error"] for row in errors] == [
        f"empty file: {tmp_path / 'empty.wav'}", "the audio value is not valid base64",
        f"no such file: {tmp_path / 'gone.wav'}",
    ]


@pytest.mark.slow
@pytest.mark.server
def test_mlflow_models_serve_labels_base64_audio(trained_batch, tmp_path):
    import requests

    from benchmark.serving.promote import promote

    outcome, _ = trained_batch
    client, runs = batch_runs(outcome)
    promotion = promote("smoke", tracking_uri=outcome.tracking_uri)
    run = next(run for run in runs.values() if run.info.run_id == promotion.run_id)
    real = sorted(EXCERPTS.glob("*/*.wav"))
    clip = real[0] if real else write_clip(tmp_path / "clip.wav", seconds=3.0)
    with served_model(CHAMPION, outcome.tracking_uri, tmp_path) as url:
        rows = [[b64(clip)], [base64.b64encode(b"not audio").decode()]]
        payload = {"dataframe_split": {"columns": ["audio"], "data": rows}}
        response = requests.post(f"{url}/invocations", json=payload, timeout=120)
        neither = requests.post(f"{url}/invocations", timeout=120,
                                json={"dataframe_split": {"columns": ["other"], "data": [["x"]]}})
    assert neither.status_code == 400, neither.text  # the README's promise for a request without inputs
    assert response.status_code == 200, response.text
    # Strict JSON: a NaN or Infinity in the answer fails the test here.
    answer = json.loads(response.text, parse_constant=lambda name: pytest.fail(f"{name} in JSON"))
    good, bad = answer["predictions"]
    class_names = class_names_of(client, run)
    assert good["genre"] in class_names
    assert_predicts_like([good], keras_probabilities(run, [clip]), class_names)
    assert bad["genre"] is None and bad["error"].startswith("cannot decode the uploaded audio")


# --- latency -----------------------------------------------------------------------------------

def test_latency_times_each_network_at_the_experiment_shape():
    from benchmark.models import create_model
    from benchmark.serving.latency import measure_latency, render_latency

    table = measure_latency(["smoke"], ["cnn2d", "crnn"], repeats=2, batch_size=4)
    assert list(table["network"]) == ["cnn2d", "crnn"] and set(table["input"]) == {"48x64"}
    for row in table.to_dict("records"):
        assert row["parameters"] == create_model(row["network"], (48, 64), 10).count_params()
        keys = ("decode_ms", "features_ms", "network_ms", "clips_per_s_batch4", "end_to_end_ms")
        timings = [row[key] for key in keys]
        assert all(np.isfinite(timings)) and min(timings) > 0
    assert "cnn2d" in render_latency(table)


@pytest.mark.parametrize("vote", ["mean", "majority"])
def test_audio_model_cuts_segments_standardises_and_votes_as_training_did(tmp_path, vote):
    """A segment model with train-fitted statistics labels a file exactly as the test set was scored."""
    import keras
    import mlflow.pyfunc

    from benchmark.audio_model import audio_model_arguments
    from benchmark.data.gtzan import GTZAN_GENRES
    from benchmark.data.normalize import Standardizer
    from benchmark.data.preprocessing import Preprocessing, preprocessing_config
    from benchmark.data.segments import Segmenting
    from benchmark.data.tracks import load_audio
    from benchmark.evaluate import aggregate_clips
    from benchmark.models import create_estimator
    from benchmark.tracking import quiet_mlflow

    params = smoke_params()
    segmenting = Segmenting(frames=16, hop_frames=8, last="pad")
    rng = np.random.default_rng(0)
    standardizer = Standardizer(mean=rng.uniform(-60, -20, params.bins), std=rng.uniform(5, 15, params.bins))
    keras.utils.set_random_seed(0)
    network = create_estimator("cnn2d", (params.bins, segmenting.frames), len(GTZAN_GENRES))
    config = preprocessing_config(params, segmenting=segmenting, normalisation=standardizer.to_dict(), vote=vote)
    clips = [write_clip(tmp_path / f"clip{index}.wav", seconds=seconds, frequency=300.0 + 200 * index)
             for index, seconds in enumerate((0.3, 1.0, 2.5))]
    with quiet_mlflow():
        bundle = tmp_path / "bundle"
        bundle.mkdir()
        mlflow.pyfunc.save_model(str(tmp_path / "model"),
                                 **audio_model_arguments(bundle, network, config, list(GTZAN_GENRES)))
        model = mlflow.pyfunc.load_model(str(tmp_path / "model"))
    outputs = model.predict(pd.DataFrame({"path": [str(path) for path in clips]}))

    preprocessing = Preprocessing.from_config(json.loads(json.dumps(config)))
    for row, path in enumerate(clips):
        audio = load_audio(path, params.sample_rate)
        inputs = preprocessing.inputs(audio)
        assert len(inputs) == len(segmenting.starts(min(1 + audio.size // params.hop_length, params.frames)))
        spectrogram_db = inputs * standardizer.std[:, None] + standardizer.mean[:, None]
        assert spectrogram_db.max() <= 1e-3  # standardised dB (ref = the clip's peak), not [0, 1]
        probabilities = network.native.predict(inputs, verbose=0).astype(np.float64)
        scores, label = aggregate_clips(probabilities, np.zeros(len(inputs), dtype=int), 1, vote)
        got = outputs.loc[row, [f"p_{name}" for name in GTZAN_GENRES]].to_numpy(dtype=np.float64)
        np.testing.assert_allclose(got, scores[0], atol=1e-5)
        assert outputs.loc[row, "genre"] == GTZAN_GENRES[label[0]]
    assert outputs["error"].isna().all()
