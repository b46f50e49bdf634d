"""Units of a batch, and tuning workers, as Ray tasks: the same batch across several machines.

``run --executor ray`` hands each unit still to run to a Ray task (:func:`run_on_ray`). The
driver prepares the data once and puts it in Ray's object store; each task reads it from there
(a node with the shared cache folder has it on disk as well, so a driver on it never extracts
twice) and logs its own MLflow run to the batch's tracking URI, which every node must reach:
``mlflow server`` with a PostgreSQL backend store for a cluster of several machines
(:func:`check_store_for_ray` refuses a local store there).

Ray retries a task whose worker died (``max_retries``). A retry is safe because a task first
looks the unit up in MLflow by its key (:mod:`benchmark.batch`): a FINISHED run of it is
returned as it is, and earlier attempts of a dead worker are marked KILLED and superseded.
So no unit ends with two FINISHED runs.

Ray is an optional extra (``pip install -e ".[ray]"``); it is imported only here.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from benchmark.errors import BenchmarkError
from benchmark.redaction import redact

if TYPE_CHECKING:
    from benchmark.runner import BatchContext
    from benchmark.unit import Unit

log = logging.getLogger(__name__)

#: Retries of a unit whose worker process died (a killed node, out of memory).
UNIT_RETRIES = 3
#: Test hook: a unit label (``cnn2d:seed=0:split=0``) whose first attempt kills its worker
#: after its first epoch, and a file that records that it did (so only once across retries).
FAULT_UNIT_VARIABLE, FAULT_MARKER_VARIABLE = "GENRE_BENCHMARK_FAULT_KILL_UNIT", "GENRE_BENCHMARK_FAULT_MARKER"
#: What a task's process needs from the driver's environment.
_FORWARDED = ("KERAS_BACKEND", "GENRE_BENCHMARK_CACHE", FAULT_UNIT_VARIABLE, FAULT_MARKER_VARIABLE)
#: The user's own GPU memory settings, forwarded instead of the backend's policy where set.
_MEMORY_VARIABLES = ("XLA_PYTHON_CLIENT_PREALLOCATE", "XLA_PYTHON_CLIENT_MEM_FRACTION", "XLA_PYTHON_CLIENT_ALLOCATOR",
                     "TF_FORCE_GPU_ALLOW_GROWTH", "PYTORCH_CUDA_ALLOC_CONF")


@dataclass(frozen=True)
class RayOptions:
    """``run --executor ray``'s settings."""

    #: The cluster to join (``ray start --head`` prints it); None: $RAY_ADDRESS, else a local Ray.
    address: str | None = None
    cpus_per_unit: float = 1
    gpus_per_unit: float = 0
    #: Units running at once; None: as many as the cluster's resources allow.
    max_concurrent: int | None = None


def start_ray(options: RayOptions) -> Any:
    """Join (or start) the Ray cluster; returns the ``ray`` module. Already connected: kept as it is."""
    try:
        import ray
    except ImportError:
        raise BenchmarkError("--executor ray needs Ray: pip install -e '.[ray]' (on every machine of the "
                             "cluster)") from None
    if not ray.is_initialized():
        address = options.address or os.environ.get("RAY_ADDRESS")
        if address and address != "auto":
            _check_reachable(address)
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=True)
        except ConnectionError as error:
            raise BenchmarkError(f"cannot join the Ray cluster at {address}: {error}") from None
    return ray


def _check_reachable(address: str, seconds: float = 10) -> None:
    """One line at once where nothing listens at ``address`` (``[ray://]host:port``): Ray itself
    retries an unreachable cluster for minutes."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise BenchmarkError(f"--address {address}: expected HOST:PORT (the address `ray start --head` printed)")
    try:
        socket.create_connection((host, int(port)), timeout=seconds).close()
    except OSError as error:
        raise BenchmarkError(f"cannot reach the Ray cluster at {address}: {error.strerror or error} (is `ray start "
                             "--head` running there?)") from None


def check_store_for_ray(tracking_uri: str, options: RayOptions) -> None:
    """Refuse a tracking store that only this machine can write when the cluster has several."""
    ray = start_ray(options)
    nodes = [node for node in ray.nodes() if node.get("Alive")]
    scheme = urlparse(tracking_uri).scheme
    if len(nodes) > 1 and scheme in ("", "file", "sqlite"):
        raise BenchmarkError(
            f"the Ray cluster has {len(nodes)} machines, and the tracking store {redact(tracking_uri)} is local to "
            "this one: "
            "start `mlflow server --backend-store-uri postgresql://... --artifacts-destination ...` (a PostgreSQL "
            "backend store takes many writers) and pass --tracking-uri http://<host>:5000")


def run_on_ray(context: BatchContext, units: Sequence[Unit], keep_going: bool, options: RayOptions):
    """Run ``units`` as Ray tasks: (summaries, failures), as :func:`benchmark.runner._run_here`.

    Without ``keep_going`` the first failure cancels the units not yet finished and is raised
    as one :class:`BenchmarkError`; Ctrl-C cancels them all (each marks its run KILLED).
    """
    ray = start_ray(options)
    shared = ray.put(context)  # the prepared data, once in the object store for every task
    task = ray.remote(_run_unit_task).options(
        num_cpus=options.cpus_per_unit, num_gpus=options.gpus_per_unit, max_retries=UNIT_RETRIES,
        retry_exceptions=False, runtime_env=_runtime_env(),
    )
    limit = options.max_concurrent or len(units)
    waiting, running, runs, failures = list(units), {}, [], []
    try:
        while waiting or running:
            while waiting and len(running) < limit:
                unit = waiting.pop(0)
                running[task.remote(shared, unit)] = unit
            ready, _ = ray.wait(list(running), num_returns=1)
            unit = running.pop(ready[0])
            try:
                finished, outcome = ray.get(ready[0])
            except ray.exceptions.RayError as error:  # its worker died UNIT_RETRIES + 1 times
                finished, outcome = False, context.failure(unit, _lost(error))
            if not finished:
                if not keep_going:
                    raise BenchmarkError(f"{unit.model} seed {unit.seed} split {unit.split_index}: {outcome.reason}")
                failures.append(outcome)
                log.error("%s seed %d: FAILED (%s); going on", unit.model, unit.seed, outcome.reason)
            else:
                runs.append(outcome)
    except BaseException:
        for reference in running:  # a KeyboardInterrupt in each task: its run is marked KILLED
            ray.cancel(reference, force=False)
        if running:
            ray.wait(list(running), num_returns=len(running), timeout=30)
        raise
    return runs, failures


def _lost(error: Exception) -> str:
    """Why a unit failed whose every attempt lost its worker (Ray gives up after the retries)."""
    return f"its worker died {UNIT_RETRIES + 1} times ({type(error).__name__}: {str(error).splitlines()[0]})"


def _run_unit_task(context: BatchContext, unit: Unit):
    """One unit in a Ray worker (idempotent: see :meth:`BatchContext.run_once`)."""
    from benchmark import tracking

    _configure_worker_logging()
    tracking.use_store(context.tracking_uri)
    return context.run_once(unit, callbacks=_injected_faults(unit))


def run_tuning_workers(run_worker, tasks: Sequence[Any], prepared, options: RayOptions) -> None:
    """Run each tuning worker's task (its share of the study's trials) as a Ray task.

    The workers share one Optuna study through its storage, which every node must reach: a
    PostgreSQL (or other RDB) URL, or a journal file on a shared filesystem.
    """
    ray = start_ray(options)
    nodes = [node for node in ray.nodes() if node.get("Alive")]
    storage = tasks[0].storage_url
    if len(nodes) > 1 and urlparse(storage).scheme == "sqlite":
        raise BenchmarkError(f"the Ray cluster has {len(nodes)} machines and the study's storage {redact(storage)} is a "
                             "local SQLite file: pass --storage postgresql://... (or a journal file on a shared "
                             "filesystem)")
    shared = ray.put(prepared)
    worker = ray.remote(_tuning_task).options(num_cpus=options.cpus_per_unit, num_gpus=options.gpus_per_unit,
                                              runtime_env=_runtime_env())
    references = [worker.remote(run_worker, task, shared) for task in tasks]
    try:
        ray.get(references)
    except BaseException:
        for reference in references:
            ray.cancel(reference, force=False)
        raise


def _tuning_task(run_worker, task, prepared) -> int:
    _configure_worker_logging()
    return run_worker(task, prepared)


def _configure_worker_logging() -> None:
    from benchmark.backend import quiet_backend_logs

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    quiet_backend_logs()  # as the command line does


def _injected_faults(unit: Unit) -> list:
    """The test hook (:data:`FAULT_UNIT_VARIABLE`): a callback that kills this worker once."""
    label = f"{unit.model}:seed={unit.seed}:split={unit.split_index}"
    marker = os.environ.get(FAULT_MARKER_VARIABLE)
    if os.environ.get(FAULT_UNIT_VARIABLE) != label or not marker or os.path.exists(marker):
        return []
    import keras

    class KillWorker(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            with open(marker, "w") as handle:
                handle.write(f"{os.getpid()}\n")
            os._exit(137)  # as the kernel's OOM killer or a lost node would: no cleanup at all

    return [KillWorker()]


def _runtime_env() -> dict:
    """The driver's settings that a task's process needs, on whichever node it runs."""
    import benchmark
    from benchmark.backend import with_memory_policy

    forwarded = {name: os.environ[name] for name in _FORWARDED if name in os.environ}
    # The user's GPU memory settings, else the backend's policy: a node's tasks may share a GPU.
    own = {name: os.environ[name] for name in _MEMORY_VARIABLES if name in os.environ}
    forwarded.update(with_memory_policy(own, os.environ.get("KERAS_BACKEND")))
    if benchmark.USER_TF_LOG_LEVEL is not None:  # else each node picks its own (GPU or not: see benchmark/__init__)
        forwarded["TF_CPP_MIN_LOG_LEVEL"] = benchmark.USER_TF_LOG_LEVEL
    return {"env_vars": forwarded}
