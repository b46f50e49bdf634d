"""A batch's ensembles as runs of their own: one per (seed, split), formed at the batch's end and
kept by a resume, its accuracy recomputed from its members' logged test probabilities; and the
bad inputs refused before any training. Classical members on the smoke data: seconds a unit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.config import load_experiment
from benchmark.runner import open_batch, run_experiment
from tests.helpers import assert_user_error, client_for, run_cli, store_uri

MEMBERS = ["svm", "logreg", "knn"]
ENSEMBLE = ["--set", 'ensemble.members="auto"']


def ensemble_runs(client, outcome, status=None):
    status = f" and attributes.status = '{status}'" if status else ""
    return client.search_runs([outcome.experiment_id], filter_string=(
        f"tags.batch_id = '{outcome.batch_id}' and tags.model = 'ensemble'{status}"))


def artifact(client, run_id, name, folder):
    return Path(client.download_artifacts(run_id, name, str(folder)))


@pytest.fixture
def batch(tmp_path):
    config = load_experiment("smoke", ['ensemble.members="auto"', "ensemble.size=4"], seeds=[0, 1])
    return run_experiment(config, MEMBERS, tracking_uri=store_uri(tmp_path), progress=False)


@pytest.mark.slow
def test_each_seed_gets_one_ensemble_run_whose_accuracy_follows_from_its_members_test_probabilities(batch, tmp_path):
    client = client_for(batch.tracking_uri)
    runs = ensemble_runs(client, batch)
    assert sorted(run.data.tags["seed"] for run in runs) == ["0", "1"]
    assert [row.model for row in batch.runs][-2:] == ["ensemble", "ensemble"]  # after its members
    for run in runs:
        tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
        assert run.info.status == "FINISHED" and tags["model_kind"] == "ensemble" and tags["run_kind"] == "train"
        record = json.loads(artifact(client, run.info.run_id, "ensemble.json", tmp_path / run.info.run_id).read_text())
        weights = record["weights"]
        assert set(weights) <= set(MEMBERS) and sum(weights.values()) == pytest.approx(1.0)
        assert params["ensemble.members"] == ",".join(weights) and params["ensemble.method"] == "greedy"
        assert all(float(params[f"weight.{name}"]) == pytest.approx(weight) for name, weight in weights.items())
        # Recomputed from the members' own predictions.csv: the weighted mean of their probabilities.
        tables = {name: pd.read_csv(artifact(client, member["run_id"], "predictions.csv",
                                             tmp_path / member["run_id"]), dtype={"track_id": str})
                  .sort_values("track_id").reset_index(drop=True)
                  for name, member in record["members"].items()}
        columns = [column for column in tables["svm"] if column.startswith("p_")]
        mean = sum(weight * tables[name][columns].to_numpy() for name, weight in weights.items())
        truth = tables["svm"]["true"].map({column[2:]: index for index, column in enumerate(columns)}).to_numpy()
        assert metrics["test_accuracy"] == pytest.approx(float((mean.argmax(axis=1) == truth).mean()))
        logged = pd.read_csv(artifact(client, run.info.run_id, "predictions.csv", tmp_path / run.info.run_id))
        assert len(logged) == len(truth) and metrics["test_accuracy"] == pytest.approx(logged["correct"].mean())
        unit = json.loads(artifact(client, run.info.run_id, "unit.json", tmp_path / run.info.run_id).read_text())
        assert sorted(unit["settings"]["members"]) == sorted(MEMBERS)
        assert unit["models"] == MEMBERS and tags["unit_key"].endswith(f":ensemble:seed={tags['seed']}:split=0")


@pytest.mark.slow
def test_a_resume_keeps_finished_ensembles_and_forms_a_missing_one_again(batch):
    client = client_for(batch.tracking_uri)
    first = {run.data.tags["seed"]: run.info.run_id for run in ensemble_runs(client, batch)}
    client.set_terminated(first["1"], status="FAILED")  # as if it had failed while logging
    again = run_experiment(open_batch(batch.batch_id, batch.tracking_uri).config, MEMBERS,
                           tracking_uri=batch.tracking_uri, progress=False,
                           resume=open_batch(batch.batch_id, batch.tracking_uri))
    assert again.reused == 2 * len(MEMBERS)  # no member trained again
    finished = {run.data.tags["seed"]: run.info.run_id for run in ensemble_runs(client, batch, "FINISHED")}
    assert finished["0"] == first["0"] and finished["1"] != first["1"]
    assert client.get_run(first["1"]).data.tags["superseded_by"] == finished["1"]


def test_an_ensemble_naming_a_model_not_in_the_run_or_of_one_model_is_refused_before_training(tmp_path):
    base = ["run", "--model", "svm", "logreg", "--experiment", "smoke", "--no-progress", "--in-process"]
    assert_user_error(run_cli(*base, "--set", "ensemble.members=['svm','knn']"),
                      "ensemble.members: knn not in this run's models (svm, logreg)")
    assert_user_error(run_cli(*base, "--set", "ensemble.members=['svm']"), "an ensemble needs two models or more")
    assert_user_error(run_cli("run", "--model", "svm", "--experiment", "smoke", *ENSEMBLE, "--set",
                              "model.ensemble.architecture='svm'", "--in-process"), "names the ensemble's runs")
    assert not list(tmp_path.glob("mlruns/artifacts/**/predictions.csv"))  # nothing trained


@pytest.mark.slow
def test_a_resume_whose_member_runs_lack_validation_predictions_says_to_rerun_them(tmp_path):
    outcome = run_experiment(load_experiment("smoke"), ["svm", "logreg"], tracking_uri=store_uri(tmp_path),
                             progress=False)
    client = client_for(outcome.tracking_uri)
    run = client.search_runs([outcome.experiment_id], filter_string="tags.model = 'logreg'")[0]
    old = Path(run.info.artifact_uri.removeprefix("file://")) / "validation_predictions.csv"
    old.unlink()  # a run logged before validation predictions existed
    result = run_cli("run", "--resume", outcome.batch_id, "--experiment", "smoke", *ENSEMBLE, "--in-process")
    assert_user_error(result, "re-run those units")
    assert f"logreg seed 0 split 0 (run {run.info.run_id})" in result.stderr
    assert not ensemble_runs(client, outcome)
    assert np.isin([r.info.status for r in client.search_runs([outcome.experiment_id])], ["FINISHED"]).all()
