"""Claims on a batch's units (:mod:`benchmark.claims`) in a real SQLite tracking store: one
claimant wins each unit, however many race for it at once, and a unit comes free again when
its holder ends without finishing or dies. Fast: no training (whole batches: test_batches.py)."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys

import pytest

from benchmark.claims import ClaimedElsewhere, claim, create_claims_run, find_claims_run, wait_for
from benchmark.liveness import PID_TAG, owner_tags
from tests.helpers import Planter

KEY = "abc:cnn2d:seed=0:split=0"
BATCH = "20260101-120000-ab12cd"


@pytest.fixture
def store(tmp_path):
    planter = Planter(tmp_path)
    return planter, create_claims_run(planter.client, planter.experiment_id, BATCH)


def unit_run(planter, **tags) -> str:
    """A unit's RUNNING run, owned by this process unless ``tags`` say otherwise."""
    return planter.client.create_run(planter.experiment_id, tags={
        "run_kind": "train", "batch_id": BATCH, "unit_key": KEY, **owner_tags(), **tags}).info.run_id


def test_the_first_claim_wins_and_the_unit_is_free_again_once_its_holder_ends_unfinished(store):
    planter, claims = store
    first, second = unit_run(planter), unit_run(planter)
    claim(planter.client, claims, KEY, first)
    claim(planter.client, claims, KEY, first)  # a holder claiming again keeps it
    with pytest.raises(ClaimedElsewhere) as lost:
        claim(planter.client, claims, KEY, second)
    assert lost.value.holder_run_id == first
    planter.client.set_terminated(first, status="FAILED")
    claim(planter.client, claims, KEY, second)  # the next slot
    assert wait_for(planter.client, first, "cnn2d seed 0").info.status == "FAILED"
    planter.client.set_terminated(second, status="FINISHED")
    with pytest.raises(ClaimedElsewhere):  # finished: the unit is done
        claim(planter.client, claims, KEY, unit_run(planter))


def test_a_dead_holder_is_marked_killed_and_its_unit_taken(store):
    planter, claims = store
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    dead = unit_run(planter, **{PID_TAG: str(child.pid)})
    claim(planter.client, claims, KEY, dead)
    claim(planter.client, claims, KEY, unit_run(planter))
    assert planter.client.get_run(dead).info.status == "KILLED"
    assert "is gone" in planter.client.get_run(dead).data.tags["killed_reason"]


def test_a_batch_older_than_claims_keeps_them_on_its_oldest_run(tmp_path):
    planter = Planter(tmp_path)
    oldest = planter.run(BATCH, "cnn2d", 0)
    planter.run(BATCH, "cnn2d", 1)
    assert find_claims_run(planter.client, planter.experiment_id, BATCH) == oldest
    own = create_claims_run(planter.client, planter.experiment_id, BATCH)
    assert find_claims_run(planter.client, planter.experiment_id, BATCH) == own


def _race(uri: str, experiment_id: str, claims: str, start, results) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    run_id = client.create_run(experiment_id, tags={"unit_key": KEY, **owner_tags()}).info.run_id
    start.wait()
    try:
        claim(client, claims, KEY, run_id)
        results.put(("won", run_id))
    except ClaimedElsewhere as lost:
        results.put(("lost", lost.holder_run_id))


@pytest.mark.slow  # each process imports MLflow
def test_of_many_processes_claiming_one_unit_at_once_exactly_one_wins(store):
    planter, claims = store
    context = multiprocessing.get_context("spawn")
    start, results = context.Event(), context.Queue()
    racers = [context.Process(target=_race, args=(planter.uri, planter.experiment_id, claims, start, results))
              for _ in range(4)]
    for racer in racers:
        racer.start()
    start.set()
    outcomes = [results.get(timeout=120) for _ in racers]
    for racer in racers:
        racer.join(timeout=60)
    winners = [run_id for verdict, run_id in outcomes if verdict == "won"]
    assert len(winners) == 1
    assert {run_id for verdict, run_id in outcomes if verdict == "lost"} == set(winners)
