"""Each unit of a batch in a fresh process (:mod:`benchmark.isolation`).

- results: a batch run in fresh processes (the CLI's default) scores exactly as ``--in-process``,
  and its units ran in processes of their own;
- overlap: the next unit starts once a unit has scored its model, while it logs; a failure while
  logging stops the batch and the unit already started (unless ``keep_going``);
- failures: a unit's error crosses the process boundary (as itself where it pickles, else as a
  :class:`UnitProcessError` with its traceback), a unit's process that dies is a failure and its
  run is marked KILLED;
- signals (``batches``): SIGTERM to the batch stops the unit's process and marks its run KILLED,
  ``kill -9`` of the batch leaves no unit process behind.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from benchmark.errors import BenchmarkError
from benchmark.isolation import UnitProcessError, _portable, run_in_fresh_process
from benchmark.liveness import KILLED_REASON_TAG, PID_TAG, owner_tags
from benchmark.runner import BatchContext, UnitFailed
from benchmark.unit import Unit
from tests.helpers import PROJECT_ROOT, client_for, start_run, store_uri, wait_for_line

SMOKE = ["--experiment", "smoke", "--no-progress"]
SMALL_FCNN = ["--set", "model.fcnn.units=32", "--set", "model.fcnn.n_layers=1"]


# --- process helpers -------------------------------------------------------------------------------

def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a live process, None where it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text.rpartition(")")[2].split()
    return fields[0], int(fields[1])


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (children, their children, ...), from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None and stat[0] != "Z":
                parents[int(entry.name)] = stat[1]
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] != "Z"  # a zombie has ended; only its parent has not reaped it


def wait_until_gone(pids: set[int], seconds: float = 60) -> set[int]:
    """Poll until none of ``pids`` runs (or the deadline); those still running."""
    deadline = time.monotonic() + seconds
    while (left := {pid for pid in pids if alive(pid)}) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def training_runs(uri: str) -> list:
    client = client_for(uri)
    return client.search_runs([e.experiment_id for e in client.search_experiments()],
                              filter_string="tags.run_kind = 'train'", max_results=100)


def stop(process: subprocess.Popen) -> None:
    """Leave nothing running after a failed test."""
    below = descendants(process.pid)
    if process.poll() is None:
        process.kill()
        process.wait()
    for pid in below:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


# --- fresh processes give the same batch ----------------------------------------------------------------

@pytest.mark.batches  # two whole batches: in the `batches` env, to keep the default suite near 15 minutes
def test_fresh_processes_score_like_one_process_and_each_unit_runs_in_its_own(tmp_path):
    from benchmark.cli import main

    batch = ["--model", "fcnn", "--seeds", "0", "1", *SMALL_FCNN, *SMOKE]
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    process = subprocess.Popen([sys.executable, "-m", "benchmark", "run", *batch], cwd=fresh,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = process.communicate(timeout=600)
    finally:
        stop(process)
    assert process.returncode == 0, stderr[-3000:]
    assert "fcnn" in stdout  # the summary
    # The same batch in this process (the command line, in-process), into another store.
    same = tmp_path / "in-process"
    assert main(["run", *batch, "--in-process", "--tracking-uri", store_uri(same)]) == 0

    def scores(runs):
        assert len(runs) == 2 and {run.info.status for run in runs} == {"FINISHED"}
        return {run.data.tags["seed"]: {key: run.data.metrics[key]
                                        for key in ("test_accuracy", "test_macro_f1", "final_val_accuracy")}
                for run in runs}

    fresh_runs, same_runs = training_runs(store_uri(fresh)), training_runs(store_uri(same))
    assert scores(fresh_runs) == scores(same_runs)
    assert scores(same_runs)["0"] != scores(same_runs)["1"]  # the seeds differ: the comparison can fail
    # In one process every run names that process; in fresh ones, each its own, not the batch's.
    assert {run.data.tags[PID_TAG] for run in same_runs} == {str(os.getpid())}
    fresh_owners = [run.data.tags[PID_TAG] for run in fresh_runs]
    assert len(set(fresh_owners)) == 2
    assert str(process.pid) not in fresh_owners


# --- failures crossing the process boundary --------------------------------------------------------------

class Unpicklable(Exception):
    """An exception that holds a lock: it cannot be pickled."""

    def __init__(self, message: str):
        super().__init__(message)
        self.lock = threading.Lock()


class NeedsTwoArguments(Exception):
    """Pickles, but cannot be unpickled: its ``args`` do not match its constructor."""

    def __init__(self, first: str, second: str):
        super().__init__(f"{first} and {second}")


def raise_and_catch(error: BaseException) -> BaseException:
    try:
        raise error
    except BaseException as caught:  # noqa: BLE001
        return caught


def test_a_picklable_error_crosses_as_itself():
    error = BenchmarkError("the data set is empty")
    assert _portable(error) is error


@pytest.mark.parametrize("error", [Unpicklable("holds a lock"), NeedsTwoArguments("one", "two")],
                         ids=["unpicklable", "not-unpicklable"])
def test_an_error_that_cannot_cross_becomes_a_unit_process_error_with_its_traceback(error):
    portable = _portable(raise_and_catch(error))
    assert isinstance(portable, UnitProcessError)
    text = str(portable)
    assert text.startswith(f"{type(error).__name__}: {error}")
    assert "Traceback" in text and "raise_and_catch" in text
    assert pickle.loads(pickle.dumps(portable)).args == portable.args  # and it crosses


@dataclass(frozen=True)
class FailingContext(BatchContext):
    """A batch context whose units fail, in the unit's process, as ``how`` says."""

    how: str = "unpicklable"
    #: Where units of the ``log-slowly``/``fail-logging`` kinds write when they start and end.
    journal: str = ""
    #: How long those units' seeds after 0 train.
    later_seconds: float = 3.0

    def gather(self, unit):
        pass  # no data: these units never read any

    def run(self, unit, *, supersedes=None, callbacks=(), scored=None):
        if self.how in ("log-slowly", "fail-logging"):
            return self._score_then_log(unit, scored)
        if self.how == "unpicklable":
            raise UnitFailed(raise_and_catch(Unpicklable(f"{unit.model} broke")), "run-of-the-unit")
        if self.how == "picklable":
            raise UnitFailed(BenchmarkError(f"{unit.model}: the loss became non-finite"), "run-of-the-unit")
        if self.how == "die":  # a run left RUNNING by a process that ends without a word
            from mlflow import MlflowClient

            client = MlflowClient(self.tracking_uri)
            run = client.create_run(self.experiment_id, tags={"run_kind": "train", "batch_id": self.batch_id,
                                                               "model": unit.model, **owner_tags()})
            print(run.info.run_id, file=sys.stderr)
            os.kill(os.getpid(), signal.SIGKILL)
        return f"{unit.model} ran in {os.getpid()}"

    def _score_then_log(self, unit, scored):
        """Seed 0 scores at once, then "logs" for 2 s (or fails doing so); later seeds train for
        ``later_seconds``, unless they are stopped."""
        def note(event: str) -> None:
            with open(self.journal, "a") as journal:
                journal.write(f"{unit.seed} {event} {time.time()} {os.getpid()}\n")

        note("start")
        if unit.seed == 0:
            scored()
            time.sleep(2.0)
            if self.how == "fail-logging":
                raise UnitFailed(BenchmarkError("the store is full"), "run-of-seed-0")
        else:
            time.sleep(self.later_seconds)
            scored()
        note("end")
        return f"{unit.model} seed {unit.seed} ran in {os.getpid()}"


def journal_of(path: Path) -> dict[tuple[int, str], tuple[float, int]]:
    """{(seed, "start"/"end"): (time, pid)} from a journal the units wrote."""
    entries = (line.split() for line in path.read_text().splitlines())
    return {(int(seed), event): (float(when), int(pid)) for seed, event, when, pid in entries}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One store for the failure tests (each its own batch id): (uri, experiment id)."""
    from benchmark import tracking

    uri = store_uri(tmp_path_factory.mktemp("isolation-store"))
    tracking.connect(uri)
    return uri, tracking.ensure_experiment("isolation", uri)


@pytest.fixture
def failing_context(store):
    from benchmark import tracking
    from benchmark.config import load_experiment

    uri, experiment_id = store
    tracking.connect(uri)  # the global store, where the batch's process reaps its units' runs

    def context(how: str, journal: Path | None = None, later_seconds: float = 3.0) -> FailingContext:
        return FailingContext(load_experiment("smoke"), {}, {}, experiment_id, f"batch-{how}", uri, ["fcnn"], {},
                              how=how, journal=str(journal or ""), later_seconds=later_seconds)

    return context


def test_a_unit_runs_in_another_process_and_its_result_comes_back(failing_context):
    result = run_in_fresh_process(failing_context("succeed"), Unit("fcnn", 0, 0))
    model, _, pid = result.partition(" ran in ")
    assert model == "fcnn" and int(pid) != os.getpid()


def test_a_units_unpicklable_error_is_a_clean_failure(failing_context):
    with pytest.raises(UnitFailed) as failed:
        run_in_fresh_process(failing_context("unpicklable"), Unit("fcnn", 0, 0))
    assert failed.value.run_id == "run-of-the-unit"
    assert isinstance(failed.value.error, UnitProcessError)
    assert str(failed.value.error).startswith("Unpicklable: fcnn broke")
    assert "Traceback" in str(failed.value.error)


def test_a_units_picklable_error_comes_back_as_itself(failing_context):
    with pytest.raises(UnitFailed) as failed:
        run_in_fresh_process(failing_context("picklable"), Unit("fcnn", 0, 0))
    assert type(failed.value.error) is BenchmarkError
    assert str(failed.value.error) == "fcnn: the loss became non-finite"
    assert failed.value.run_id == "run-of-the-unit"


def test_a_unit_process_that_dies_is_a_failure_and_its_run_is_marked_killed(failing_context):
    context = failing_context("die")
    with pytest.raises(UnitFailed) as failed:
        run_in_fresh_process(context, Unit("fcnn", 0, 0))
    assert "the unit's process died (killed by SIGKILL)" in str(failed.value.error)
    assert failed.value.run_id is None
    (run,) = client_for(context.tracking_uri).search_runs(
        [context.experiment_id], filter_string=f"tags.batch_id = '{context.batch_id}'")
    assert run.info.status == "KILLED"
    assert "is gone" in run.data.tags[KILLED_REASON_TAG]


def run_batch_in_fresh_processes(context, seeds, keep_going=False):
    from benchmark.runner import _run_here

    return _run_here(context, [Unit("fcnn", seed, 0) for seed in seeds], keep_going, fresh_processes=True)


def test_the_next_unit_trains_while_the_previous_one_logs(failing_context, tmp_path):
    journal = tmp_path / "journal"
    runs, failures = run_batch_in_fresh_processes(failing_context("log-slowly", journal), [0, 1])
    assert failures == []
    assert [run.partition(" ran in ")[0] for run in runs] == ["fcnn seed 0", "fcnn seed 1"]
    events = journal_of(journal)
    # Seed 1 started once seed 0 had scored, before seed 0 had finished logging.
    assert events[(1, "start")][0] < events[(0, "end")][0]
    assert events[(1, "start")][1] != events[(0, "start")][1]


def test_a_failure_while_logging_stops_the_batch_and_the_unit_it_started(failing_context, tmp_path):
    journal = tmp_path / "journal"
    started = time.monotonic()
    with pytest.raises(UnitFailed) as failed:
        run_batch_in_fresh_processes(failing_context("fail-logging", journal, later_seconds=120.0), [0, 1])
    assert str(failed.value.error) == "the store is full" and failed.value.run_id == "run-of-seed-0"
    assert time.monotonic() - started < 60  # seed 1 (two minutes long) was stopped, not waited for
    events = journal_of(journal)
    assert (1, "start") in events and (1, "end") not in events
    assert _stat(events[(1, "start")][1]) is None, "the unit started next still runs"


def test_under_keep_going_a_failure_while_logging_is_recorded_and_the_batch_goes_on(failing_context, tmp_path):
    journal = tmp_path / "journal"
    context = failing_context("fail-logging", journal, later_seconds=1.0)
    runs, failures = run_batch_in_fresh_processes(context, [0, 1], keep_going=True)
    assert [run.partition(" ran in ")[0] for run in runs] == ["fcnn seed 1"]
    assert [(failure.seed, failure.run_id, failure.reason) for failure in failures] == [
        (0, "run-of-seed-0", "the store is full")]


# --- what a unit's process receives: the GPU memory policy, one device line per batch -------------------

#: The variables of every backend's GPU memory policy, and the backend they follow.
MEMORY_VARIABLES = ("KERAS_BACKEND", "XLA_PYTHON_CLIENT_PREALLOCATE", "XLA_PYTHON_CLIENT_MEM_FRACTION",
                    "TF_FORCE_GPU_ALLOW_GROWTH", "PYTORCH_CUDA_ALLOC_CONF")


@dataclass(frozen=True)
class EnvironmentContext(BatchContext):
    """A batch context whose units report the memory variables their own process sees."""

    def gather(self, unit):
        pass

    def run(self, unit, *, supersedes=None, callbacks=(), scored=None):
        return {name: os.environ.get(name) for name in MEMORY_VARIABLES}


@pytest.mark.parametrize(("users", "expected"), [
    ({"KERAS_BACKEND": "jax"}, {"XLA_PYTHON_CLIENT_PREALLOCATE": "false"}),
    ({"KERAS_BACKEND": "tensorflow"}, {"TF_FORCE_GPU_ALLOW_GROWTH": "true"}),
    ({"KERAS_BACKEND": "torch"}, {}),  # PyTorch's allocator is lazy already
    # The user's own values win; any JAX memory variable is a policy of the user's own.
    ({"KERAS_BACKEND": "jax", "XLA_PYTHON_CLIENT_MEM_FRACTION": "0.3"}, {}),
    ({"KERAS_BACKEND": "jax", "XLA_PYTHON_CLIENT_PREALLOCATE": "true"}, {}),
    ({"KERAS_BACKEND": "tensorflow", "TF_FORCE_GPU_ALLOW_GROWTH": "false"}, {}),
    ({"KERAS_BACKEND": "torch", "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True"}, {}),
], ids=["jax", "tensorflow", "torch", "jax-fraction", "jax-preallocate", "tensorflow-no-growth", "torch-conf"])
def test_a_units_process_receives_its_backends_memory_policy_unless_the_user_set_one(store, monkeypatch, users,
                                                                                      expected):
    uri, experiment_id = store
    for name in MEMORY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in users.items():
        monkeypatch.setenv(name, value)
    from benchmark.config import load_experiment

    context = EnvironmentContext(load_experiment("smoke"), {}, {}, experiment_id, "batch-environment", uri,
                                 ["fcnn"], {})
    seen = run_in_fresh_process(context, Unit("fcnn", 0, 0))  # read in the unit's own process
    assert seen == {name: None for name in MEMORY_VARIABLES} | users | expected


@pytest.mark.slow  # a process that imports the harness under JAX, and its server importing it again
@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="needs JAX")
def test_a_batch_names_its_device_once_and_no_unit_logs_backend_probes(tmp_path):
    """Two units under JAX on this CPU: the first unit's process names the device; neither logs
    JAX's probe of a TPU ("Unable to initialize backend 'tpu'")."""
    script = (
        "import json, logging, sys\n"
        "logging.basicConfig(level=logging.INFO, format='%(message)s')\n"
        "from benchmark import tracking\n"
        "from benchmark.config import load_experiment\n"
        "from benchmark.runner import _run_here\n"
        "from benchmark.unit import Unit\n"
        "from tests.test_isolation import EnvironmentContext\n"
        "uri = sys.argv[1]\n"
        "tracking.connect(uri)\n"
        "context = EnvironmentContext(load_experiment('smoke'), {}, {}, tracking.ensure_experiment('d', uri),\n"
        "                             'batch-device', uri, ['fcnn'], {})\n"
        "runs, failures = _run_here(context, [Unit('fcnn', 0, 0), Unit('fcnn', 1, 0)], False, fresh_processes=True)\n"
        "print(json.dumps(runs))\n"
    )
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(PROJECT_ROOT)}
    done = subprocess.run([sys.executable, "-c", script, store_uri(tmp_path)], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    devices = [line.partition(" ")[2] for line in done.stderr.splitlines() if " device: " in line]  # after the time
    assert devices == ["device: cpu (Keras backend jax)"], done.stderr[-3000:]
    assert "Unable to initialize backend" not in done.stderr
    runs = json.loads(done.stdout.strip().splitlines()[-1])
    assert [run["XLA_PYTHON_CLIENT_PREALLOCATE"] for run in runs] == ["false", "false"]


# --- signals to the batch's process ------------------------------------------------------------------

LONG_UNIT = ["--model", "fcnn", *SMALL_FCNN, "--set", "train.epochs=2000", *SMOKE]


def wait_for_the_unit(process: subprocess.Popen, log: Path, folder: Path) -> tuple[set[int], int]:
    """Once the batch's one unit trains: (the processes below the batch, the unit's pid)."""
    wait_for_line(process, log, "epoch 2/")
    below = descendants(process.pid)
    (running,) = training_runs(store_uri(folder))
    unit_pid = int(running.data.tags[PID_TAG])
    assert unit_pid != process.pid and unit_pid in below  # the unit trains in a process of the batch's
    return below, unit_pid


@pytest.mark.batches
def test_sigterm_to_the_batch_stops_the_units_process_and_marks_its_run_killed(tmp_path):
    process, log = start_run(tmp_path, *LONG_UNIT)
    try:
        below, _ = wait_for_the_unit(process, log, tmp_path)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=120) == 143, log.read_text()[-3000:]
        output = log.read_text()
        assert "Traceback" not in output
        assert "interrupted (SIGTERM)" in output
        (run,) = training_runs(store_uri(tmp_path))
        assert run.info.status == "KILLED"
        assert wait_until_gone(below) == set(), "processes of the batch still run after it ended"
    finally:
        stop(process)


@pytest.mark.batches
def test_kill_9_of_the_batch_leaves_no_unit_process_behind(tmp_path):
    process, log = start_run(tmp_path, *LONG_UNIT)
    try:
        below, unit_pid = wait_for_the_unit(process, log, tmp_path)
        process.kill()
        process.wait()
        assert wait_until_gone({unit_pid}) == set(), "the unit's process outlived its batch"
        assert wait_until_gone(below) == set(), "processes of the batch still run after it was killed"
        # As after a kill -9 of a batch in one process: the run is left RUNNING, for the next run to reap.
        (run,) = training_runs(store_uri(tmp_path))
        assert run.info.status == "RUNNING"
    finally:
        stop(process)
