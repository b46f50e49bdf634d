"""A batch with an ensemble killed (SIGKILL) mid-way, then resumed: exactly one FINISHED ensemble
run per (seed, split), nothing left RUNNING. A whole batch in a subprocess, as users run it."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import pytest

from tests.helpers import client_for, start_run, store_uri, wait_for_line

pytestmark = pytest.mark.batches

ARGS = ["--model", "svm", "logreg", "--seeds", "0", "1", "--experiment", "smoke", "--no-progress",
        "--set", 'ensemble.members="auto"', "--set", "split.protocol='kfold'", "--set", "split.folds=2",
        "--set", "split.valid_fraction=0.5"]


def runs_of(uri):
    client = client_for(uri)
    return client.search_runs([e.experiment_id for e in client.search_experiments()],
                              filter_string="tags.run_kind = 'train'", max_results=1000)


@pytest.mark.parametrize("kill_after", ["logreg seed 0 fold 0: fitting", ": members "])
def test_a_batch_killed_mid_way_resumes_to_one_finished_ensemble_per_seed_and_split(tmp_path, kill_after):
    process, log = start_run(tmp_path, *ARGS)
    wait_for_line(process, log, kill_after, seconds=900)  # among the members, or once the first ensemble is formed
    process.kill()
    process.wait()
    resumed = subprocess.run([sys.executable, "-m", "benchmark", "run", "--resume", "--latest", "--no-progress"],
                             cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    runs = runs_of(store_uri(tmp_path))
    assert not [run for run in runs if run.info.status == "RUNNING"]
    finished = Counter((run.data.tags["seed"], run.data.tags["split_index"]) for run in runs
                       if run.data.tags["model"] == "ensemble" and run.info.status == "FINISHED")
    assert finished == {(seed, split): 1 for seed in ("0", "1") for split in ("0", "1")}
    members = Counter((run.data.tags["model"], run.data.tags["seed"], run.data.tags["split_index"]) for run in runs
                      if run.data.tags["model"] != "ensemble" and run.info.status == "FINISHED")
    assert set(members.values()) == {1} and len(members) == 8
