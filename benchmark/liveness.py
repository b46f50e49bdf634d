"""Is the process behind a RUNNING MLflow run still alive? MLflow itself has no heartbeat.

Every training run records who runs it (:func:`owner_tags`): the machine (host name and boot
id), the process id and that process's start time, and a lease, ``lease_until``, that a
background thread renews while the run is open (:class:`Lease`). A RUNNING run is dead when

- it ran on this machine and its process is gone (or the pid now belongs to a newer process), or
- its lease ran out: it ran elsewhere and has not renewed it for :data:`LEASE_SECONDS`.

A run on another machine is never judged by its pid, so a live run there is never marked.
:func:`reap_dead_runs` marks the dead ones KILLED, with the reason as a tag; ``run``, ``run
--resume`` and ``report`` call it before they read a batch.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Mapping
from functools import cache
from pathlib import Path

from benchmark.processes import alive

log = logging.getLogger(__name__)

#: How long a lease lasts, and how often a live run renews it (well inside the lease, so a
#: busy store or a slow epoch never lets a live run's lease lapse).
LEASE_SECONDS = 300
RENEW_SECONDS = 60

HOST_TAG, PID_TAG, PID_START_TAG, LEASE_TAG = "owner.host", "owner.pid", "owner.pid_start", "lease_until"
#: Why a run was marked KILLED after its process died.
KILLED_REASON_TAG = "killed_reason"


@cache
def machine_id() -> str:
    """``<hostname>/<boot id>``: two containers may share a host name, never a boot id."""
    boot = _read(Path("/proc/sys/kernel/random/boot_id")).strip()[:8]
    return f"{socket.gethostname()}/{boot}" if boot else socket.gethostname()


def process_start(pid: int) -> str:
    """The start time of process ``pid`` in clock ticks since boot ('' where unknown), so a
    recycled pid is not mistaken for the process that once had it."""
    stat = _read(Path(f"/proc/{pid}/stat"))
    # The command name (field 2) may hold spaces and parentheses: count from its closing one.
    fields = stat.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else ""


def owner_tags() -> dict[str, str]:
    """The tags that say which process on which machine owns a run, and its first lease."""
    pid = os.getpid()
    return {HOST_TAG: machine_id(), PID_TAG: str(pid), PID_START_TAG: process_start(pid),
            LEASE_TAG: _lease_from_now()}


def death_reason(tags: Mapping[str, str], *, now: float | None = None) -> str | None:
    """Why the RUNNING run with these tags is dead, or None while it may be alive.

    A run without owner tags (logged before they existed, or by another tool) is never judged.
    """
    now = time.time() if now is None else now
    host, pid = tags.get(HOST_TAG), tags.get(PID_TAG)
    if host is None or pid is None:
        return None
    if host == machine_id():
        started = tags.get(PID_START_TAG, "")
        if not alive(int(pid)) or (started and process_start(int(pid)) not in ("", started)):
            return f"process {pid} on {host} is gone"
        return None
    lease = tags.get(LEASE_TAG)
    if lease is not None and float(lease) < now:
        return f"its lease ran out at {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(float(lease)))} " \
               f"(process {pid} on {host})"
    return None


def reap_dead_runs(client, experiment_ids: list[str], filter_string: str) -> list[str]:
    """Mark KILLED every RUNNING run matching ``filter_string`` whose process is dead; their ids."""
    if not experiment_ids:
        return []
    running = client.search_runs(experiment_ids, filter_string=f"{filter_string} and attributes.status = 'RUNNING'",
                                 max_results=1000)
    reaped = []
    for run in running:
        reason = death_reason(run.data.tags)
        if reason is None:
            continue
        mark_killed(client, run, reason)
        reaped.append(run.info.run_id)
    return reaped


def mark_killed(client, run, reason: str) -> None:
    """Mark a RUNNING run whose process is dead KILLED, with why (``reason``) as a tag."""
    client.set_tag(run.info.run_id, KILLED_REASON_TAG, reason)
    client.set_terminated(run.info.run_id, status="KILLED")
    log.warning("run %s (%s) was left RUNNING and %s: marked KILLED", run.info.run_id, run.info.run_name, reason)


class Lease:
    """Renews a run's ``lease_until`` tag every :data:`RENEW_SECONDS` from a daemon thread.

    A failed renewal (a store briefly unreachable) is logged and tried again next time: the
    lease is long enough to survive a few.
    """

    def __init__(self, run_id: str, tracking_uri: str):
        self._run_id, self._uri = run_id, tracking_uri
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name=f"lease-{run_id[:8]}", daemon=True)

    def __enter__(self) -> Lease:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _renew(self) -> None:
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=self._uri)
        while not self._stop.wait(RENEW_SECONDS):
            try:
                client.set_tag(self._run_id, LEASE_TAG, _lease_from_now())
            except Exception as error:  # noqa: BLE001  the next renewal tries again
                log.warning("could not renew the lease of run %s: %s", self._run_id, error)


def _lease_from_now() -> str:
    return f"{time.time() + LEASE_SECONDS:.0f}"


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""
