"""A batch's units: their keys, what changes them, how a resume splits a batch, and when a
RUNNING run counts as dead. Fast: no training (the whole batches are in test_batches.py)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from benchmark.batch import (
    SPLIT_INDEX_TAG,
    UNIT_KEY_TAG,
    StoredBatch,
    config_hash,
    plan_resume,
    plan_units,
    unit_key,
    unit_settings,
)
from benchmark.config import list_experiments, load_experiment, validate_experiment
from benchmark.liveness import (
    HOST_TAG,
    LEASE_TAG,
    PID_START_TAG,
    PID_TAG,
    death_reason,
    machine_id,
    owner_tags,
)
from benchmark.unit import Unit


def hash_of(overrides=(), model="cnn2d", **kwargs):
    return config_hash(unit_settings(load_experiment("smoke", list(overrides), **kwargs), model))


def test_a_units_key_changes_with_its_own_settings_only():
    base = hash_of()
    assert hash_of() == base  # stable across loads
    assert hash_of(["train.epochs=2"]) != base
    assert hash_of(["model.cnn2d.dropout=0.1"]) != base
    assert hash_of(["features.n_mels=32"]) != base
    # Another model's settings, the seeds list and the tuning section are not this unit's.
    assert hash_of(["model.crnn.dropout=0.1"]) == base
    assert hash_of(seeds=[0, 1, 2]) == base
    assert hash_of(["tuning.pruner=none"]) == base


def test_the_backend_is_part_of_a_units_settings(monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    tensorflow = hash_of()
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    assert hash_of() != tensorflow


def test_unit_keys_name_model_seed_and_split():
    assert unit_key(Unit("cnn2d", 3, 1), "abc") == "abc:cnn2d:seed=3:split=1"
    config = load_experiment("smoke", ["split.protocol=kfold", "split.folds=2"], seeds=[0, 1])
    units = plan_units(config, ["cnn2d", "crnn"], 2)
    assert len(units) == len(set(units)) == 8
    assert [unit.split_index for unit in units[:4]] == [0, 0, 0, 0]  # folds outermost


@pytest.mark.parametrize("name", sorted(list_experiments()))
def test_every_bundled_experiment_survives_the_round_trip_resume_relies_on(name):
    config = load_experiment(name)
    assert validate_experiment(config.model_dump(mode="json")) == config


def _run(unit: Unit, status: str, key: str, run_id: str, **tags):
    tags = {"model": unit.model, "seed": str(unit.seed), SPLIT_INDEX_TAG: str(unit.split_index),
            UNIT_KEY_TAG: key, **tags}
    return SimpleNamespace(info=SimpleNamespace(status=status, run_id=run_id), data=SimpleNamespace(tags=tags))


def test_a_resume_keeps_finished_units_and_reruns_the_rest():
    config = load_experiment("smoke", seeds=[0, 1, 2])
    units = plan_units(config, ["cnn2d"], 1)
    key = {unit: unit_key(unit, hash_of()) for unit in units}
    runs = [_run(units[0], "FINISHED", key[units[0]], "a"),
            _run(units[1], "KILLED", key[units[1]], "b"), _run(units[1], "FAILED", key[units[1]], "c")]
    plan = plan_resume(StoredBatch("1", "b1", config, ["cnn2d"], runs), config, units)
    assert list(plan.done) == [units[0]]
    assert plan.todo == {units[1]: ["b", "c"], units[2]: []}


def test_a_resume_leaves_a_unit_that_still_runs_in_a_live_process_to_it():
    config = load_experiment("smoke")
    unit = Unit("cnn2d", 0)
    runs = [_run(unit, "RUNNING", unit_key(unit, hash_of()), "a", **owner_tags())]
    plan = plan_resume(StoredBatch("1", "b1", config, ["cnn2d"], runs), config, [unit])
    assert plan.elsewhere == {unit: "a"} and not plan.todo and not plan.done


def test_own_process_is_alive_and_a_finished_one_is_dead():
    assert death_reason(owner_tags()) is None
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    gone = {**owner_tags(), PID_TAG: str(child.pid)}
    assert death_reason(gone) == f"process {child.pid} on {machine_id()} is gone"


def test_a_recycled_pid_is_not_mistaken_for_the_process_that_had_it():
    assert death_reason({**owner_tags(), PID_START_TAG: "1"}) is not None


def test_a_run_on_another_machine_is_judged_by_its_lease_alone():
    elsewhere = {HOST_TAG: "other-host/0000", PID_TAG: "1", PID_START_TAG: "1"}
    assert death_reason({**elsewhere, LEASE_TAG: f"{time.time() + 60:.0f}"}) is None
    assert "lease ran out" in death_reason({**elsewhere, LEASE_TAG: f"{time.time() - 1:.0f}"})
    # No pid check across machines: pid 1 on that host says nothing about this one.
    assert death_reason({**elsewhere, PID_TAG: str(2 ** 22 + 1)}) is None


def test_runs_without_owner_tags_are_never_judged():
    assert death_reason({"model": "cnn2d"}) is None


def test_machine_id_is_this_host():
    assert machine_id().split("/")[0] == socket.gethostname()


@pytest.mark.parametrize(("text", "problem"), [
    ('{"settings": {broken', "cannot be read (Expecting property name"),
    ("[]", "is not a record of this harness (a JSON list, not an object)"),
    ("{}", "is not a record of this harness (no 'settings', 'experiment', 'models')"),
])
def test_a_malformed_unit_record_is_one_line_naming_the_run_and_the_file(tmp_path, capsys, text, problem):
    from benchmark.cli import main
    from tests.helpers import Planter

    planter = Planter(tmp_path)
    batch = "20260101-120000-ab12cd"
    run_id = planter.run(batch, "cnn2d", 0, status="FAILED", test_metrics=False, artifacts=False)
    planter.client.log_text(run_id, text, "unit.json")
    assert main(["run", "--resume", batch, "--tracking-uri", planter.uri]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "Traceback" not in "\n".join(err)
    assert err[-1].startswith(f"error: run {run_id}'s unit.json ") and problem in err[-1], err
