"""Each unit of a batch in a fresh process, so that memory stays flat however many units run.

Why: TensorFlow keeps every graph it has traced for every network a process trains. Its C++
runtime holds them, and neither ``keras.utils.clear_session`` nor the garbage collector
releases them: about 130 MB per ``cnn2d`` run at the default input, so the 60 units of the
k-fold experiment grew one process to 4.7 GB. A process of its own per unit hands all of it
back when the unit ends.

Fresh processes are forked from a server process that has imported TensorFlow, Keras, MLflow
and the harness once (multiprocessing's ``forkserver``, preloaded), so a unit's process starts
in well under a second rather than the 5-7 s those imports take. The server forks before it
has run any TensorFlow operation, so no thread pool is copied half-way.

What each unit's process does is :meth:`benchmark.runner.BatchContext.run` (its MLflow run,
lease, logging and failure record are the same as in one process). It tells the batch once it
has fitted and scored its model (:meth:`UnitProcess.wait_scored`), and the batch starts the next
unit while this one logs its run: writing artifacts, plots and the audio model takes 1-3 s per
network, which no longer holds up training. Signals stay the batch's:
Ctrl-C and SIGTERM reach the batch's process, which asks the unit's process to stop (SIGTERM:
it marks its run KILLED and exits), and a unit's process dies with the batch's process, even
after ``kill -9``.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import signal
import threading
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from benchmark.backend import current_backend, device_in_use, quiet_backend_logs, with_memory_policy
from benchmark.errors import BenchmarkError
from benchmark.processes import wait_for_exit

if TYPE_CHECKING:
    from benchmark.runner import BatchContext, RunSummary
    from benchmark.unit import Unit

log = logging.getLogger(__name__)

#: Imported once by the server every unit's process is forked from: what every unit uses, so
#: that no unit imports it again. MLflow's SQL store and GitPython are imported on first use,
#: not with ``mlflow``; left to each unit they cost about a second per unit.
PRELOADED = ("benchmark.runner", "benchmark.tracking", "benchmark.models", "benchmark.evaluate",
             "benchmark.audio_model", "benchmark.liveness", "benchmark.provenance", "benchmark.plots",
             "benchmark.artifacts", "keras", "mlflow", "mlflow.pyfunc", "mlflow.keras",
             "mlflow.store.tracking.sqlalchemy_store", "git")
#: Seconds a unit's process gets to mark its run KILLED after SIGTERM, before SIGKILL.
STOP_GRACE_SECONDS = 30.0
_PENDING = object()  # no outcome received yet
#: The batches (by id) whose first unit's process has been told to name the device.
_ANNOUNCED_BATCHES: set[str] = set()


@dataclass(frozen=True)
class _Interrupted:
    """The unit's process was stopped by a signal (its run is marked KILLED)."""

    signum: int


@dataclass(frozen=True)
class _Failed:
    """A unit's failure as its process reports it (the exception itself, where it pickles)."""

    run_id: str | None
    error: BaseException


class UnitProcessError(Exception):
    """A unit's exception that could not cross the process boundary: its type, text and traceback."""


@dataclass(frozen=True)
class _Scored:
    """The unit has fitted and scored its model; it goes on logging the run."""


class UnitProcess:
    """One unit running in a fresh process, from its start to its summary row or its failure.

    :meth:`wait_scored` returns once the unit has fitted and scored its model, while the unit's
    process goes on logging the run (artifacts, plots, the audio model): the batch starts the
    next unit meanwhile, so logging does not hold up training. :meth:`result` waits for the end.
    """

    def __init__(self, context: BatchContext, unit: Unit):
        server = _server_context()
        self._context, self.unit = context, unit
        self._receiver, sender = server.Pipe(duplex=False)
        # The first unit of a batch names the device it trains on: its process initialises the
        # backend anyway, and the batch's own process never does.
        announce = context.batch_id not in _ANNOUNCED_BATCHES
        _ANNOUNCED_BATCHES.add(context.batch_id)
        environment = with_memory_policy(dict(os.environ))  # two units' processes may share a GPU
        self._process = server.Process(
            target=_unit_process, name=f"unit {unit.model} seed {unit.seed}",
            args=(sender, context, unit, os.getpid(), environment, logging.getLogger().level, announce))
        self._process.start()
        sender.close()  # ours: the pipe reads EOF once the unit's process has gone
        self._outcome: object = _PENDING

    def wait_scored(self) -> bool:
        """Wait until the unit has scored its model: True while it still logs, False if it has ended
        (finished, failed or died); :meth:`result` then says which."""
        if self._outcome is _PENDING:
            message = self._receive()
            if isinstance(message, _Scored):
                return True
            self._outcome = message
        return False

    def result(self) -> RunSummary:
        """The unit's summary row, once its process has ended; its failure re-raised.

        Raises :class:`benchmark.unit.UnitFailed` as ``context.run`` does, and
        :class:`benchmark.interrupts.Interrupted` where the unit's process itself was signalled.
        """
        from benchmark.unit import UnitFailed

        while self._outcome is _PENDING or isinstance(self._outcome, _Scored):
            self._outcome = self._receive()
        self._receiver.close()
        self._process.join()
        outcome = self._outcome
        if outcome is None:
            reason = _exit_reason(self._process.exitcode)
            _reap_unit_runs(self._context)
            raise UnitFailed(BenchmarkError(f"the unit's process died ({reason})"), None)
        if isinstance(outcome, _Interrupted):  # someone signalled the unit's process itself
            from benchmark.interrupts import Interrupted

            raise Interrupted(outcome.signum)
        if isinstance(outcome, _Failed):
            raise UnitFailed(outcome.error, outcome.run_id)
        return outcome

    def _receive(self) -> object:
        try:
            return self._receiver.recv()
        except EOFError:  # the process ended without a word: killed, or it crashed
            return None


def stop_units(units: Sequence[UnitProcess]) -> None:
    """Stop the units' processes (Ctrl-C, SIGTERM, or the batch stopping on a failure): SIGTERM to
    each at once, a grace period for each to record its run KILLED, then SIGKILL."""
    processes = [unit._process for unit in units if unit._process.is_alive()]
    for process in processes:
        process.terminate()
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()


def run_in_fresh_process(context: BatchContext, unit: Unit) -> RunSummary:
    """``context.run(unit)`` in a process of its own; its summary row, or its failure re-raised.

    Raises :class:`benchmark.runner.UnitFailed` as ``context.run`` does, and the
    :class:`KeyboardInterrupt` of a Ctrl-C or SIGTERM once the unit's process has stopped.
    """
    process = UnitProcess(context, unit)
    try:
        return process.result()
    except BaseException:  # Ctrl-C or SIGTERM: let the unit mark its run KILLED, then go
        stop_units([process])
        raise


def _server_context():
    context = multiprocessing.get_context("forkserver")
    # Only read when the server starts (once per batch process); the same list every time.
    context.set_forkserver_preload(list(PRELOADED))
    return context


def _exit_reason(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        return f"killed by {signal.Signals(-exitcode).name}"
    return f"exit status {exitcode}"


def _reap_unit_runs(context: BatchContext) -> None:
    """A unit's process killed outright left its run RUNNING: mark the batch's dead runs KILLED now."""
    from mlflow import MlflowClient

    from benchmark import tracking
    from benchmark.liveness import reap_dead_runs

    reap_dead_runs(MlflowClient(), [context.experiment_id], tracking.batch_runs_filter(context.batch_id))


# --- in the unit's process -----------------------------------------------------------------------

def _unit_process(sender, context: BatchContext, unit: Unit, batch_pid: int, environment: dict[str, str],
                  log_level: int, announce_device: bool = False) -> None:
    """The unit's process: the batch's environment and logging, signals as the batch wants, one unit.

    ``environment`` holds the backend's memory policy (:func:`benchmark.backend.memory_policy`);
    with ``announce_device`` (the batch's first unit) it logs the device it trains on.
    """
    from benchmark import interrupts, tracking
    from benchmark.redaction import install_log_redaction
    from benchmark.unit import UnitFailed

    os.environ.clear()
    os.environ.update(environment)  # the server started earlier: it may hold an older environment
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the batch's to handle: it sends SIGTERM
    _die_with(batch_pid)
    logging.basicConfig(level=log_level, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", force=True)
    quiet_backend_logs()
    install_log_redaction()
    tracking.use_store(context.tracking_uri)
    if announce_device:
        _log_device()
    with interrupts.handled():
        try:
            outcome = context.run(unit, scored=lambda: sender.send(_Scored()))
        except UnitFailed as failed:
            outcome = _Failed(failed.run_id, _portable(failed.error))
        except KeyboardInterrupt as stopped:
            outcome = _Interrupted(getattr(stopped, "signum", signal.SIGINT))
    try:
        sender.send(outcome)
    except BrokenPipeError:  # the batch's process is gone; so is the one who would read this
        pass
    sender.close()


def _log_device() -> None:
    """One line naming the device the batch trains on; a failing query is a line too, not a failure."""
    try:
        device = device_in_use()
    except Exception as error:  # noqa: BLE001  the unit itself will fail, or not, with its own words
        device = f"unknown ({type(error).__name__}: {error})"
    log.info("device: %s (Keras backend %s)", device, current_backend())


def _die_with(batch_pid: int) -> None:
    """End this process at once (SIGKILL) when the batch's process ends, however it ends.

    As if the unit still ran inside the batch's process: after a ``kill -9`` of the batch its
    run is left RUNNING, and the next ``run`` or ``--resume`` marks it KILLED ("is gone"). The
    server this process was forked from is not its batch's process, so the kernel's
    parent-death signal would not do.
    """
    def watch() -> None:
        wait_for_exit(batch_pid)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="batch watchdog", daemon=True).start()


def _portable(error: BaseException) -> BaseException:
    """``error`` if it survives pickling, else a :class:`UnitProcessError` with its traceback."""
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:  # noqa: BLE001  any exception type may refuse pickling, in many ways
        text = "".join(traceback.format_exception(error)).rstrip()
        return UnitProcessError(f"{type(error).__name__}: {error}\n{text}")
