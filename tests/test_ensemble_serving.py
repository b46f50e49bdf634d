"""An ensemble promoted, then labelling a real excerpt with ``predict`` and over REST through a
real ``mlflow models serve``: the same schema as a single model's, its probabilities the
weighted mean of its members' audio models on the same file."""

from __future__ import annotations

import base64
import json

import numpy as np
import pandas as pd
import pytest
import requests

from benchmark.config import load_experiment
from benchmark.runner import run_experiment
from tests.helpers import EXCERPTS, client_for, run_cli, served_model, store_uri, write_clip

pytestmark = pytest.mark.slow
CHAMPION = "models:/genre-classifier@champion"


def members_mean(client, run, frame: pd.DataFrame) -> np.ndarray:
    """The weighted mean of the members' own audio models' probabilities on ``frame``."""
    import mlflow.pyfunc

    record = json.loads(open(client.download_artifacts(run.info.run_id, "ensemble.json")).read())
    return sum(weight * mlflow.pyfunc.load_model(record["members"][name]["audio_model_uri"]).predict(frame)
               .filter(like="p_").to_numpy(dtype=float) for name, weight in record["weights"].items())


def test_a_promoted_ensemble_predicts_a_real_excerpt_and_serves_it_over_rest(tmp_path):
    config = load_experiment("smoke", ['ensemble.members="auto"', 'ensemble.method="mean"'])
    outcome = run_experiment(config, ["svm", "fcnn"], tracking_uri=store_uri(tmp_path), progress=False)
    promoted = run_cli("promote", "--model", "ensemble", "--tracking-uri", outcome.tracking_uri)
    assert promoted.returncode == 0, promoted.stderr
    assert "ensemble-seed0" in promoted.stdout
    client = client_for(outcome.tracking_uri)
    run = client.search_runs([outcome.experiment_id], filter_string="tags.model = 'ensemble'")[0]
    real = sorted(EXCERPTS.glob("*/*.wav"))
    clip = real[0] if real else write_clip(tmp_path / "clip.wav", seconds=3.0)

    predicted = run_cli("predict", str(clip), "--format", "json", "--tracking-uri", outcome.tracking_uri,
                        "--no-progress")
    assert predicted.returncode == 0, predicted.stderr
    top = json.loads(predicted.stdout)[0]
    expected = members_mean(client, run, pd.DataFrame({"path": [str(clip)]}))[0]
    classes = json.loads(open(client.download_artifacts(run.info.run_id, "labels.json")).read())["classes"]
    ranked = np.argsort(-expected)[:3]  # the top 3 with probabilities, as for a single model
    assert [item["genre"] for item in top["top"]] == [classes[index] for index in ranked]
    assert [item["probability"] for item in top["top"]] == pytest.approx(expected[ranked], abs=1e-5)

    timed = run_cli("latency", "--model-uri", CHAMPION, "--repeats", "2", "--tracking-uri", outcome.tracking_uri)
    assert timed.returncode == 0, timed.stderr
    assert "svm, fcnn" in timed.stdout and "end_to_end_ms" in timed.stdout

    with served_model(CHAMPION, outcome.tracking_uri, tmp_path) as url:
        rows = [[base64.b64encode(clip.read_bytes()).decode()], [base64.b64encode(b"not audio").decode()]]
        response = requests.post(f"{url}/invocations", timeout=300,
                                 json={"dataframe_split": {"columns": ["audio"], "data": rows}})
    assert response.status_code == 200, response.text
    good, bad = json.loads(response.text, parse_constant=lambda name: pytest.fail(f"{name} in JSON"))["predictions"]
    np.testing.assert_allclose([good[f"p_{name}"] for name in classes], expected, atol=1e-5)
    assert good["genre"] == classes[int(expected.argmax())] and good["error"] is None
    assert bad["genre"] is None and bad["error"].startswith("cannot decode the uploaded audio")
