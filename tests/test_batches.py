"""Batches that survive: SIGKILL then resume, SIGINT and SIGTERM, --keep-going, two commands on one
SQLite store, and the same batch as Ray tasks against a real mlflow server on PostgreSQL.

Whole batches in subprocesses, as users run them: the tox environment ``batches`` runs these
(``pytest -m batches``), beside the main suite.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from benchmark.cli import main
from tests.helpers import client_for, running_mlflow_server, start_run, store_uri, wait_for_line

pytestmark = pytest.mark.batches

SMOKE = ["--experiment", "smoke", "--no-progress"]
ACCURACY_COLUMNS = ["model", "runs", "finished", "test_accuracy_mean", "test_accuracy_std", "test_macro_f1_std"]


def runs_by_status(uri: str) -> dict[str, list]:
    client = client_for(uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()],
                              filter_string="tags.run_kind = 'train'", max_results=1000)
    grouped: dict[str, list] = {}
    for run in runs:
        grouped.setdefault(run.info.status, []).append(run)
    return grouped


def units_of(runs) -> list[tuple[str, str, str]]:
    return sorted((run.data.tags["model"], run.data.tags["seed"], run.data.tags["split_index"]) for run in runs)


def accuracy_board(uri: str):
    from benchmark.report.collect import load_batch
    from benchmark.report.stats import leaderboard

    batch = load_batch(tracking_uri=uri)
    return leaderboard(batch.runs.assign(**{"kind": "network", "input": "logmel"}))[ACCURACY_COLUMNS]


def test_a_batch_killed_mid_unit_resumes_to_the_same_report_as_an_uninterrupted_one(tmp_path):
    timeline = [("start", time.monotonic())]
    process, log = start_run(tmp_path, "--model", "cnn2d", "fcnn", "--seeds", "0", "1", *SMOKE)
    wait_for_line(process, log, "cnn2d seed 1: training")  # the second unit
    # The first unit logs its run while the second trains: kill once it has finished, so one
    # unit is left unfinished (killed while both ran, both would be, and the resume runs both).
    wait_for_line(process, log, "cnn2d seed 0: test accuracy")
    process.kill()
    process.wait()
    timeline.append(("SIGKILL in unit 2", time.monotonic()))
    uri = store_uri(tmp_path)
    assert [run.data.tags["seed"] for run in runs_by_status(uri)["RUNNING"]] == ["1"]  # left behind

    resumed = subprocess.run([sys.executable, "-m", "benchmark", "run", "--resume", "--latest", "--no-progress"],
                             cwd=tmp_path, capture_output=True, text=True, timeout=600)
    timeline.append(("resume done", time.monotonic()))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "1 units finished before this resume" in resumed.stdout
    assert "marked KILLED" in resumed.stderr

    runs = runs_by_status(uri)
    assert set(runs) == {"FINISHED", "KILLED"}  # nothing RUNNING
    assert units_of(runs["FINISHED"]) == [(m, s, "0") for m in ("cnn2d", "fcnn") for s in ("0", "1")]
    (killed,) = runs["KILLED"]
    assert "is gone" in killed.data.tags["killed_reason"]
    assert killed.data.tags["superseded_by"] in {run.info.run_id for run in runs["FINISHED"]}
    assert len({run.data.tags["batch_id"] for runs_ in runs.values() for run in runs_}) == 1

    other = tmp_path / "uninterrupted"
    other.mkdir()
    straight = subprocess.run([sys.executable, "-m", "benchmark", "run", "--model", "cnn2d", "fcnn",
                               "--seeds", "0", "1", *SMOKE], cwd=other, capture_output=True, text=True, timeout=600)
    assert straight.returncode == 0, straight.stderr[-3000:]
    os.chdir(tmp_path)
    resumed_board = accuracy_board(uri)
    assert resumed_board.equals(accuracy_board(store_uri(other)))
    assert resumed_board["finished"].tolist() == [2, 2]
    start = timeline[0][1]
    print("timeline: " + ", ".join(f"{name} at {at - start:.1f} s" for name, at in timeline))


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_marks_the_current_run_killed_and_names_the_resume_command(tmp_path, sig, status):
    process, log = start_run(tmp_path, "--model", "fcnn", "--seeds", "0", "1", *SMOKE)
    wait_for_line(process, log, "fcnn seed 0: training")
    process.send_signal(sig)
    assert process.wait(timeout=120) == status, log.read_text()[-3000:]
    output = log.read_text()
    assert "Traceback" not in output
    runs = runs_by_status(store_uri(tmp_path))
    assert set(runs) == {"KILLED"}
    batch = runs["KILLED"][0].data.tags["batch_id"]
    assert f"resume the batch: python -m benchmark run --resume {batch}" in output
    if sig == signal.SIGINT:  # the cache is whole: the resume reads it and finishes the batch
        resumed = subprocess.run([sys.executable, "-m", "benchmark", "run", "--resume", batch, "--no-progress"],
                                 cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        assert "extracting" not in resumed.stderr.lower()
        assert units_of(runs_by_status(store_uri(tmp_path))["FINISHED"]) == [("fcnn", "0", "0"), ("fcnn", "1", "0")]


BROKEN = "model.cnn2d.pool_size=100"  # valid in the file, but no 48 x 64 input survives such pooling


def test_keep_going_records_the_failure_goes_on_and_a_fixed_resume_runs_only_that_unit(tmp_path, capsys):
    code = main(["run", "--model", "cnn2d", "fcnn", "--set", BROKEN, "--keep-going", *SMOKE])
    output = capsys.readouterr()
    assert code == 1
    uri = store_uri(tmp_path)
    runs = runs_by_status(uri)
    (failed,) = runs["FAILED"]
    assert failed.data.tags["model"] == "cnn2d"
    assert "cannot be built" in failed.data.tags["failure_reason"]
    artifacts = {item.path for item in client_for(uri).list_artifacts(failed.info.run_id, "failure")}
    assert artifacts == {"failure/traceback.txt"}
    assert units_of(runs["FINISHED"]) == [("fcnn", "0", "0")]
    batch = failed.data.tags["batch_id"]
    assert "1 unit(s) FAILED" in output.out and f"python -m benchmark run --resume {batch}" in output.out

    # Another setting of a finished unit: refused, naming it.
    assert main(["run", "--resume", batch, "--experiment", "smoke", "--set", "train.epochs=2"]) == 2
    assert "fcnn seed 0 finished with train.epochs = 1, now 2" in capsys.readouterr().err
    # The failed unit's setting fixed: only it runs, in the same batch.
    assert main(["run", "--resume", batch, "--experiment", "smoke", "--no-progress"]) == 0
    runs = runs_by_status(uri)
    assert units_of(runs["FINISHED"]) == [("cnn2d", "0", "0"), ("fcnn", "0", "0")]
    assert len(runs["FINISHED"]) + len(runs["FAILED"]) == 3  # one new run
    assert runs["FAILED"][0].data.tags["superseded_by"] in {run.info.run_id for run in runs["FINISHED"]}


def test_without_keep_going_the_first_failure_stops_the_batch_and_names_the_resume_command(tmp_path, capsys):
    assert main(["run", "--model", "cnn2d", "fcnn", "--set", BROKEN, *SMOKE]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-2].startswith("resume the batch: python -m benchmark run --resume ")
    assert err[-1].startswith("error: ") and "cannot be built" in err[-1]
    assert set(runs_by_status(store_uri(tmp_path))) == {"FAILED"}  # fcnn never started


def test_a_resume_given_only_set_applies_it_to_the_batchs_own_experiment(tmp_path, capsys):
    # An entry the default experiment does not know: resumed under `default`, it would not even load.
    experiment = tmp_path / "mini.toml"
    experiment.write_text('extends = "smoke"\nname = "mini"\n[model.mini]\narchitecture = "cnn1d"\n')
    assert main(["run", "--model", "mini", "--experiment", str(experiment), "--set", "model.mini.dropout=2.0",
                 "--no-progress"]) == 2  # a dropout rate above 1: the network cannot be built
    capsys.readouterr()
    assert main(["run", "--resume", "--latest", "--set", "model.mini.dropout=0.1", "--no-progress"]) == 0, \
        capsys.readouterr().err[-3000:]
    runs = runs_by_status(store_uri(tmp_path))
    (finished,) = runs["FINISHED"]
    assert finished.data.tags["batch_id"] == runs["FAILED"][0].data.tags["batch_id"]
    assert finished.data.tags["experiment"] == "mini"
    params = finished.data.params
    assert (params["hp.dropout"], params["data.synth_clips_per_genre"], params["train.epochs"]) == ("0.1", "8", "1")


def test_two_concurrent_resumes_of_one_interrupted_batch_train_each_unit_once(tmp_path):
    process, log = start_run(tmp_path, "--model", "cnn2d", "fcnn", "--seeds", "0", "1", *SMOKE)
    wait_for_line(process, log, "cnn2d seed 0: training")
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=120) == 130, log.read_text()[-3000:]
    uri = store_uri(tmp_path)
    assert "FINISHED" not in runs_by_status(uri)

    resumes = [start_run(tmp_path, "--resume", "--latest", "--no-progress") for _ in range(2)]
    for resume, output in resumes:
        assert resume.wait(timeout=900) == 0, output.read_text()[-3000:]
    runs = runs_by_status(uri)
    assert set(runs) == {"FINISHED", "KILLED"}  # nothing RUNNING, nothing FAILED
    units = [(m, s, "0") for m in ("cnn2d", "fcnn") for s in ("0", "1")]
    assert units_of(runs["FINISHED"]) == units  # each unit once
    logs = "".join(output.read_text() for _, output in resumes)
    assert "of another command" in logs  # they met, and one left a unit to the other
    os.chdir(tmp_path)
    assert accuracy_board(uri)["finished"].tolist() == [2, 2]


def test_two_concurrent_runs_on_one_sqlite_store_both_finish(tmp_path):
    started = [start_run(tmp_path, "--model", "fcnn", "--seeds", str(seed), str(seed + 10), *SMOKE) for seed in (0, 1)]
    for process, log in started:
        assert process.wait(timeout=600) == 0, log.read_text()[-3000:]
        assert "database is locked" not in log.read_text()
    runs = runs_by_status(store_uri(tmp_path))
    assert set(runs) == {"FINISHED"}
    assert sorted(run.data.tags["seed"] for run in runs["FINISHED"]) == ["0", "1", "10", "11"]


# --- Ray ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def local_ray():
    """A local Ray cluster of 2 CPUs for this module's tests."""
    ray = pytest.importorskip("ray", reason="Ray is the optional extra `ray` (tox env batches installs it)")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_a_ray_batch_on_a_real_mlflow_server_equals_the_local_one_and_survives_a_killed_worker(
        tmp_path, local_ray, postgres, monkeypatch):
    from benchmark.config import load_experiment
    from benchmark.distributed import FAULT_MARKER_VARIABLE, FAULT_UNIT_VARIABLE, RayOptions
    from benchmark.runner import run_experiment

    config = load_experiment("smoke", seeds=[0, 1])
    models = ["cnn2d", "fcnn"]
    local = run_experiment(config, models, tracking_uri=store_uri(tmp_path), progress=False)
    marker = tmp_path / "worker-killed"
    monkeypatch.setenv(FAULT_UNIT_VARIABLE, "fcnn:seed=0:split=0")
    monkeypatch.setenv(FAULT_MARKER_VARIABLE, str(marker))
    with running_mlflow_server(tmp_path / "server", postgres("mlflow")) as server:
        distributed = run_experiment(config, models, tracking_uri=server, progress=False, ray=RayOptions())
        runs = runs_by_status(server)
    assert marker.exists()  # a worker died mid-unit ...
    (killed,) = runs["KILLED"]  # ... its run was marked, and the retry replaced it
    assert killed.data.tags["model"] == "fcnn" and killed.data.tags["superseded_by"]
    assert set(runs) == {"FINISHED", "KILLED"}
    assert units_of(runs["FINISHED"]) == [(m, s, "0") for m in ("cnn2d", "fcnn") for s in ("0", "1")]
    pids = {run.data.tags["owner.pid"] for run in runs["FINISHED"]}
    assert str(os.getpid()) not in pids  # run by Ray's workers, not here

    def scores(outcome):
        return sorted((row.model, row.seed, row.test_accuracy, row.macro_f1) for row in outcome.runs)

    assert scores(distributed) == scores(local)


def test_ray_refuses_a_local_store_for_a_cluster_of_several_machines(local_ray, monkeypatch):
    from benchmark.distributed import RayOptions, check_store_for_ray
    from benchmark.errors import BenchmarkError

    monkeypatch.setattr(local_ray, "nodes", lambda: [{"Alive": True}, {"Alive": True}])
    with pytest.raises(BenchmarkError, match="start `mlflow server --backend-store-uri postgresql"):
        check_store_for_ray("sqlite:///mlruns/mlflow.db", RayOptions())
    check_store_for_ray("http://127.0.0.1:5000", RayOptions())  # a server is fine


def test_ray_tune_with_two_workers_gives_each_trial_number_once(tmp_path, local_ray, postgres):
    import optuna

    from benchmark.config import load_experiment
    from benchmark.distributed import RayOptions
    from benchmark.tune import tune_model

    storage = postgres("optuna")
    config = load_experiment("smoke", ["model.cnn2d.epochs=1", "tuning.pruner=none"])
    tune_model(config, "cnn2d", trials=4, jobs=2, storage=storage, tracking_uri=store_uri(tmp_path),
               export_dir=tmp_path, ray=RayOptions())
    study = optuna.load_study(study_name="smoke-cnn2d", storage=storage)
    assert sorted(trial.number for trial in study.trials) == [0, 1, 2, 3]
    assert {trial.state.name for trial in study.trials} == {"COMPLETE"}
    workers = [trial.user_attrs["worker_pid"] for trial in study.trials]
    assert len(set(workers)) == 2 and os.getpid() not in workers


def test_sigterm_to_ui_stops_the_whole_server(tmp_path):
    import socket

    from tests.helpers import free_port, wait_for_http

    port = free_port()
    log = tmp_path / "ui.log"
    with log.open("w") as sink:
        process = subprocess.Popen([sys.executable, "-m", "benchmark", "ui", "--port", str(port)], cwd=tmp_path,
                                   stdout=sink, stderr=subprocess.STDOUT)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/health", process, what="benchmark ui", output=log.read_text)
    except BaseException:
        process.kill()
        raise
    process.terminate()  # this process only, as a service manager would
    assert process.wait(timeout=60) == 143, log.read_text()[-3000:]
    deadline = time.monotonic() + 10
    while True:  # nothing of the server (uvicorn and its workers) still holds the port
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
                break
            except OSError:
                assert time.monotonic() < deadline, "the UI's server still listens after SIGTERM"
                time.sleep(0.2)


def test_an_unreachable_ray_cluster_is_one_line_at_once_and_nothing_is_written(tmp_path):
    pytest.importorskip("ray", reason="Ray is the optional extra `ray` (tox env batches installs it)")
    from tests.helpers import assert_user_error, free_port, run_cli

    result = run_cli("run", "--model", "fcnn", *SMOKE, "--executor", "ray", "--address", f"127.0.0.1:{free_port()}",
                     cwd=tmp_path, timeout=120)  # Ray itself would retry for minutes
    assert_user_error(result, "cannot reach the Ray cluster at 127.0.0.1:")
    assert not runs_by_status(store_uri(tmp_path))
