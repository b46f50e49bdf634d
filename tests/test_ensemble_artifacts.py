"""Every run logs its validation predictions (``validation_predictions.csv``), what ensembles are
chosen on: one row per validation clip, the columns of ``predictions.csv``."""

from __future__ import annotations

import json

import pandas as pd

from benchmark.config import load_experiment
from benchmark.runner import run_experiment
from tests.helpers import batch_runs, store_uri


def test_a_run_logs_its_validation_predictions_beside_its_test_predictions(tmp_path):
    outcome = run_experiment(load_experiment("smoke"), ["cnn2d"], tracking_uri=store_uri(tmp_path), progress=False)
    client, runs = batch_runs(outcome)
    run_id = runs["cnn2d"].info.run_id
    test = pd.read_csv(client.download_artifacts(run_id, "predictions.csv", str(tmp_path)))
    valid = pd.read_csv(client.download_artifacts(run_id, "validation_predictions.csv", str(tmp_path)))
    split = client.download_artifacts(run_id, "split.json", str(tmp_path))
    members = json.loads(open(split).read())["members"]
    assert list(valid.columns) == list(test.columns)
    assert sorted(valid["track_id"]) == sorted(members["valid"])  # every validation clip, once
    assert not set(valid["track_id"]) & set(test["track_id"])
    probabilities = valid.filter(like="p_").to_numpy()
    assert abs(probabilities.sum(axis=1) - 1).max() < 1e-4
    # Its accuracy is the fit's own last validation accuracy (one epoch, no early stopping).
    accuracy = valid["correct"].mean()
    assert abs(accuracy - runs["cnn2d"].data.metrics["final_val_accuracy"]) < 1e-6
