"""Optuna tuning: storage, nested MLflow runs, pruning, failures, resume, parallel workers,
export, and a real PostgreSQL storage."""

from __future__ import annotations

import os

import pytest

from benchmark.config import load_experiment
from benchmark.errors import BenchmarkError
from benchmark.tune.study import open_storage

pytestmark = pytest.mark.slow

BASE = ["model.cnn2d.epochs=2", "tuning.pruner=none"]


def tune(tmp_path, overrides=(), **kwargs):
    from benchmark.tune import tune_model

    config = load_experiment("smoke", [*BASE, *overrides])
    kwargs.setdefault("storage", str(tmp_path / "journal.log"))
    kwargs.setdefault("tracking_uri", f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    return config, tune_model(config, "cnn2d", **kwargs)


def trial_runs(outcome, uri):
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("smoke-tuning")
    runs = client.search_runs([experiment.experiment_id])
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == outcome.parent_run_id]
    return client, runs, children


def states(storage, study_name):
    import optuna

    from benchmark.tune.study import open_storage

    study = optuna.load_study(study_name=study_name, storage=open_storage(storage))
    return [trial.state.name for trial in study.trials], study


def test_tiny_study_lands_in_storage_and_as_nested_runs(tmp_path):
    config, outcome = tune(tmp_path, trials=2)
    found, study = states(outcome.storage, "smoke-cnn2d")
    assert found == ["COMPLETE", "COMPLETE"] and outcome.trials_after == 2
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    client, runs, children = trial_runs(outcome, uri)
    parent = client.get_run(outcome.parent_run_id)
    assert parent.data.tags["run_kind"] == "tune" and parent.info.status == "FINISHED"
    assert sorted(r.data.params["trial_number"] for r in children) == ["0", "1"]
    for child in children:
        assert child.data.tags["trial_state"] == "complete"
        assert len(client.get_metric_history(child.info.run_id, "val_accuracy")) == 2
        number = int(child.data.params["trial_number"])
        assert child.data.metrics["objective"] == pytest.approx(study.trials[number].value)
    artifacts = {item.path for item in client.list_artifacts(outcome.parent_run_id)}
    assert {"best_params.json", "search_space.json", "trials.csv", "optimization_history.png"} <= artifacts
    assert parent.data.metrics["best_val_accuracy"] == pytest.approx(study.best_value)

    # The exported experiment is one `run` accepts, with the winner's values.
    tuned = load_experiment(outcome.tuned_experiment)
    assert tuned.name == "tuned-cnn2d" and tuned.run.models == ("cnn2d",)
    best = outcome.best_params
    assert tuned.training_for("cnn2d").batch_size == best["batch_size"]
    assert tuned.model_settings("cnn2d").hyperparameters["filters"] == tuple(best["filters"])
    assert tuned.features == config.features and tuned.data == config.data

    # Resuming adds trials to the same study: --trials counts added trials.
    _, again = tune(tmp_path, trials=1)
    assert (again.trials_before, again.trials_after) == (2, 3)
    assert [t.number for t in states(outcome.storage, "smoke-cnn2d")[1].trials] == [0, 1, 2]


def test_tune_command_twice_in_one_folder_resumes_the_default_journal(tmp_path, capsys):
    """The command line as a user runs it: no --storage, so the study lives in mlruns/."""
    import optuna

    from benchmark.cli import main

    command = ["tune", "--model", "cnn2d", "--experiment", "smoke", "--trials", "1",
               "--set", "model.cnn2d.epochs=1", "--set", "tuning.pruner=none"]
    journal = tmp_path / "mlruns" / "optuna-journal.log"
    counts = []
    for _ in range(2):
        assert main(command) == 0
        out = capsys.readouterr().out
        counts += [line for line in out.splitlines() if line.startswith("study ")]
        assert "retrain and test it: python -m benchmark run --model cnn2d --experiment " in out
    assert counts == [f"study 'smoke-cnn2d' ({journal}): 1 trials, 1 added",
                      f"study 'smoke-cnn2d' ({journal}): 2 trials, 1 added"]
    study = optuna.load_study(study_name="smoke-cnn2d", storage=open_storage(str(journal)))
    assert [trial.state.name for trial in study.trials] == ["COMPLETE", "COMPLETE"]
    assert (tmp_path / "experiments" / "tuned-cnn2d.toml").is_file()


def test_exported_experiment_retrains_the_winner_and_scores_test(tmp_path):
    from benchmark.runner import run_experiment

    _, outcome = tune(tmp_path, trials=1)
    tuned = load_experiment(outcome.tuned_experiment)
    result = run_experiment(tuned, ["cnn2d"], tracking_uri=f"sqlite:///{tmp_path / 'run.db'}",
                            progress=False)
    from mlflow import MlflowClient

    run = MlflowClient(result.tracking_uri).get_run(result.runs[0].run_id)
    assert run.info.status == "FINISHED" and "test_accuracy" in run.data.metrics
    assert run.data.params["hp.kernel_size"] == str(outcome.best_params["kernel_size"])


def test_threshold_pruner_prunes_and_the_state_is_recorded(tmp_path):
    overrides = ["tuning.pruner=threshold", "tuning.prune_below=1.1", "tuning.pruner_warmup_epochs=0"]
    _, outcome = tune(tmp_path, overrides, trials=2)
    found, _ = states(outcome.storage, "smoke-cnn2d")
    assert found == ["PRUNED", "PRUNED"]
    _, _, children = trial_runs(outcome, f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    assert {r.data.tags["trial_state"] for r in children} == {"pruned"}
    assert outcome.best_trial is None and outcome.tuned_experiment is None


def test_failing_trial_is_recorded_and_the_study_goes_on(tmp_path):
    from benchmark.tune.study import load_study

    # kernel 41 cannot fit the smoke input (48 x 64): that trial must fail, the next succeed.
    overrides = ['tuning.cnn2d.kernel_size={type = "categorical", choices = [5, 41]}']
    config = load_experiment("smoke", [*BASE, *overrides])
    storage = str(tmp_path / "journal.log")
    study = load_study(config, "smoke-cnn2d", storage)
    study.enqueue_trial({"kernel_size": 41})
    study.enqueue_trial({"kernel_size": 5})
    _, outcome = tune(tmp_path, overrides, trials=2, storage=storage)
    found, study = states(storage, "smoke-cnn2d")
    assert found == ["FAIL", "COMPLETE"]
    assert "cannot be built" in study.trials[0].user_attrs["fail_reason"]
    _, _, children = trial_runs(outcome, f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    failed = [r for r in children if r.data.tags["trial_state"] == "failed"]
    assert len(failed) == 1 and "cannot be built" in failed[0].data.tags["trial_reason"]
    assert outcome.best_trial == 1


def test_unknown_hyperparameter_in_the_space_fails_before_any_trial():
    with pytest.raises(BenchmarkError, match="tuning.cnn2d: unknown hyperparameter 'filterz'"):
        load_experiment("smoke", ['tuning.cnn2d.filterz={type = "int", low = 1, high = 4}'])


@pytest.mark.batches  # concurrency: in the `batches` env, to keep the default suite near 15 minutes
def test_two_parallel_workers_lose_and_duplicate_no_trial(tmp_path):
    _, outcome = tune(tmp_path, trials=4, jobs=2)
    found, study = states(outcome.storage, "smoke-cnn2d")
    assert found == ["COMPLETE"] * 4
    assert sorted(t.number for t in study.trials) == [0, 1, 2, 3]
    _, _, children = trial_runs(outcome, f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    assert sorted(int(r.data.params["trial_number"]) for r in children) == [0, 1, 2, 3]
    # Two worker processes, neither of them this one, ran two trials each.
    pids = [trial.user_attrs["worker_pid"] for trial in study.trials]
    assert len(set(pids)) == 2 and os.getpid() not in pids
    assert sorted(pids.count(pid) for pid in set(pids)) == [2, 2]


@pytest.mark.server
def test_study_on_a_real_postgresql_server(tmp_path, postgres_url):
    _, outcome = tune(tmp_path, trials=2, storage=postgres_url)
    found, _ = states(postgres_url, "smoke-cnn2d")
    assert found == ["COMPLETE", "COMPLETE"]
    _, again = tune(tmp_path, trials=1, storage=postgres_url)
    assert again.trials_after == 3


def test_resuming_a_study_with_the_other_metric_direction_is_one_clear_error(tmp_path):
    from benchmark.tune.study import load_study

    storage = str(tmp_path / "journal.log")
    load_study(load_experiment("smoke"), "s", storage)  # created to maximise val_accuracy
    with pytest.raises(BenchmarkError, match="optimises in the other direction.*maximize, not minimize"):
        load_study(load_experiment("smoke", ["tuning.metric=val_loss"]), "s", storage)


# --- parallel workers: distinct proposals, and they stop with the command -----------------------

def test_each_worker_gets_its_share_and_a_sampler_seed_of_its_own():
    from benchmark.tune.study import WorkerTask, worker_tasks

    task = WorkerTask(load_experiment("smoke"), "cnn2d", "s", "journal.log", "sqlite://", "1", "run", trials=5,
                      timeout=None, sampler_seed=2**32 - 1)
    tasks = worker_tasks(task, 3)
    assert [t.trials for t in tasks] == [2, 2, 1]
    assert [t.sampler_seed for t in tasks] == [2**32 - 1, 0, 1]  # NumPy takes seeds up to 2**32 - 1
    assert worker_tasks(task, 1) == [task]  # one worker: the experiment's seed, as before


@pytest.mark.batches  # two worker processes, 8 trials
def test_two_workers_never_propose_the_same_parameters(tmp_path):
    # Before: both workers' samplers had the experiment's seed; trials 0 and 1 were the same, 2 and 3 too.
    _, outcome = tune(tmp_path, ["model.cnn2d.epochs=1"], trials=8, jobs=2)
    found, study = states(outcome.storage, "smoke-cnn2d")
    assert found == ["COMPLETE"] * 8
    proposals = {tuple(sorted(trial.params.items())) for trial in study.trials}
    assert len(proposals) == 8


def test_a_resumed_study_does_not_propose_its_first_trials_again(tmp_path):
    from benchmark.tune.study import load_study

    _, first = tune(tmp_path, ["model.cnn2d.epochs=1"], trials=1)
    _, again = tune(tmp_path, ["model.cnn2d.epochs=1"], trials=1)
    trials = load_study(load_experiment("smoke"), "smoke-cnn2d", first.storage).trials
    assert len(trials) == 2 and trials[0].params != trials[1].params


def start_tune(folder, jobs: int):
    """``tune`` of cnn2d for 6 long trials in the background, in a process group of its own (a terminal's)."""
    import subprocess
    import sys

    from tests.helpers import sigint_as_in_a_terminal

    log = folder / "tune.log"
    with log.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "benchmark", "tune", "--model", "cnn2d", "--experiment", "smoke", "--trials", "6",
             "--jobs", str(jobs), "--set", "model.cnn2d.epochs=40", "--set", "tuning.pruner=none",
             "--storage", str(folder / "journal.log")],
            cwd=folder, stdout=sink, stderr=subprocess.STDOUT, text=True, start_new_session=True,
            preexec_fn=sigint_as_in_a_terminal)
    return process, log


@pytest.mark.batches  # whole tune commands, signalled
@pytest.mark.parametrize(("jobs", "ctrl_c"), [(2, False), (2, True), (1, True)],
                         ids=["sigterm-2-workers", "ctrl-c-2-workers", "ctrl-c-in-process"])
def test_a_stopped_tune_stops_its_trials_at_once_in_one_line(tmp_path, jobs, ctrl_c):
    import signal

    from tests.helpers import wait_for_line

    process, log = start_tune(tmp_path, jobs)
    try:
        for trial in range(jobs):  # every worker is training
            wait_for_line(process, log, f"cnn2d trial {trial} epoch 2/40")
        if ctrl_c:
            os.killpg(process.pid, signal.SIGINT)  # a terminal's Ctrl-C: the whole process group
        else:
            process.terminate()  # the command alone, as a service manager or `kill` would
        process.wait(timeout=120)
    finally:
        process.kill()
    output = log.read_text()
    # Before: SIGTERM left the workers running trials 2-5 (exit 143 24 s later); Ctrl-C printed a
    # 199-line Optuna traceback before its exit 130.
    assert process.returncode == (130 if ctrl_c else 143), output[-3000:]
    assert output.strip().splitlines()[-1] == f"interrupted ({'SIGINT' if ctrl_c else 'SIGTERM'})"
    assert "Traceback" not in output, output[-3000:]
    found, _ = states(str(tmp_path / "journal.log"), "smoke-cnn2d")
    assert found == ["FAIL"] * jobs  # the trials in flight, stopped; none started after
