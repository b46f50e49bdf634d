"""Atomic claims on a batch's units, held in the MLflow store itself: no unit trains twice.

Two commands may work on one batch at once (two ``run --resume`` of it, a Ray retry beside an
attempt thought lost). Before a unit trains, the process that runs it claims it (:func:`claim`),
whatever the executor (this process, a fresh one per unit, a Ray worker):

1. it has created the unit's run (RUNNING, with its ``unit_key`` tag and its owner's tags, by
   which :mod:`benchmark.liveness` tells whether its process still lives);
2. it logs, on the batch's *claims run*, the param ``claim.<unit hash>.<slot>`` = its run id,
   for the first slot whose holder has ended without finishing, or died. MLflow never changes a
   logged param: the store's key (run, param) makes a second, different value fail, so exactly
   one process gets each slot however many try at once (SQLite, PostgreSQL, or a tracking server
   in front of them);
3. where a slot holds a run that FINISHED or still lives, the unit is that run's: the process
   backs off (:class:`ClaimedElsewhere`, its own run deleted), and the batch takes that run's
   result once it has ended, or runs the unit again if it ended without finishing
   (:func:`wait_for`). A dead holder's run is marked KILLED and the next slot is taken.

The claims run is one per batch (``run_kind = "claims"``, FINISHED at once, its params the
claims), created by the command that starts the batch before any unit. A batch started before
claims existed keeps its claims on its oldest training run.
"""

from __future__ import annotations

import hashlib
import logging
import time

from benchmark.errors import BenchmarkError

log = logging.getLogger(__name__)

CLAIMS_RUN_KIND = "claims"
#: Seconds between looks at a unit that another command holds.
POLL_SECONDS = 2.0


class ClaimedElsewhere(Exception):
    """The unit is held by another run (of another command): FINISHED, or training now."""

    def __init__(self, holder_run_id: str):
        super().__init__(holder_run_id)  # the one argument: it pickles to a unit's parent process
        self.holder_run_id = holder_run_id

    def __str__(self) -> str:
        return f"run {self.holder_run_id} of another command holds this unit"


def create_claims_run(client, experiment_id: str, batch_id: str) -> str:
    """The claims run of a new batch (before any of its units starts); its id."""
    run = client.create_run(experiment_id, run_name=f"claims-{batch_id}", tags={
        "run_kind": CLAIMS_RUN_KIND, "batch_id": batch_id,
        "mlflow.note.content": "The claims on this batch's units (one param each), so that two commands "
                               "never train one unit twice. Not a training run.",
    })
    client.set_terminated(run.info.run_id, status="FINISHED")
    return run.info.run_id


def find_claims_run(client, experiment_id: str, batch_id: str) -> str:
    """The claims run of an existing batch: its own, else (a batch older than claims) its oldest run."""
    from benchmark.tracking import batch_runs_filter

    for filter_string in (f"tags.run_kind = '{CLAIMS_RUN_KIND}' and tags.batch_id = '{batch_id}'",
                          batch_runs_filter(batch_id)):
        runs = client.search_runs([experiment_id], filter_string=filter_string,
                                  order_by=["attributes.start_time ASC"], max_results=1)
        if runs:
            return runs[0].info.run_id
    raise BenchmarkError(f"batch {batch_id} has no runs to resume")


def claim(client, claims_run_id: str, key: str, run_id: str) -> None:
    """Claim the unit of ``key`` for run ``run_id``, or raise :class:`ClaimedElsewhere`."""
    from mlflow.exceptions import MlflowException

    prefix = f"claim.{hashlib.sha256(key.encode()).hexdigest()[:16]}."
    slot = 0
    while True:
        name = f"{prefix}{slot}"
        holder_id = client.get_run(claims_run_id).data.params.get(name)
        if holder_id is None:
            try:
                client.log_param(claims_run_id, name, run_id)
                return
            except MlflowException as error:
                if error.error_code != "INVALID_PARAMETER_VALUE":
                    raise
                continue  # another process logged this slot first: look at its holder
        if holder_id == run_id:
            return
        holder = _ended_or_live(client, holder_id)
        if holder is not None and holder.info.status in ("FINISHED", "RUNNING"):
            raise ClaimedElsewhere(holder_id)
        slot += 1  # its holder failed, was killed, died or was deleted: the unit is free again


def withdraw(client, run_id: str) -> None:
    """A run that lost its unit's claim never trained: it is deleted (no report or resume sees it)."""
    client.set_terminated(run_id, status="KILLED")
    client.delete_run(run_id)


def wait_for(client, holder_run_id: str, label: str):
    """The holder's run once it has ended; None where it died (now marked KILLED) or was deleted."""
    said = False
    while True:
        run = _ended_or_live(client, holder_run_id)
        if run is None or run.info.status != "RUNNING":
            return run
        if not said:
            tags = run.data.tags
            log.info("%s: run %s of another command (process %s on %s) is training it; waiting for it", label,
                     holder_run_id, tags.get("owner.pid", "?"), tags.get("owner.host", "?"))
            said = True
        time.sleep(POLL_SECONDS)


def _ended_or_live(client, run_id: str):
    """The run, after marking it KILLED if it is RUNNING in a dead process; None if deleted."""
    from mlflow.exceptions import MlflowException

    from benchmark.liveness import death_reason, mark_killed

    try:
        run = client.get_run(run_id)
    except MlflowException:  # removed for good (mlflow gc)
        return None
    if run.info.lifecycle_stage != "active":
        return None
    if run.info.status == "RUNNING" and (reason := death_reason(run.data.tags)) is not None:
        mark_killed(client, run, reason)
        return None
    return run
