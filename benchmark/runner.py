"""A batch: every (model, seed, fold) unit of an experiment, each in its own MLflow run.

``run_experiment`` is what ``run --all`` calls: it prepares the data once
(:mod:`benchmark.data.prepare`), prints each model's effective settings, then
:func:`run_unit` fits and scores each unit (:func:`benchmark.unit.fit_and_score`) inside its
MLflow run and logs the result (:func:`benchmark.tracking.log_run`).

A batch can be resumed (:mod:`benchmark.batch`): ``resume=`` re-enters a stored batch and runs
only its unfinished units. ``keep_going`` records a failed unit and goes on to the next; without
it the first failure stops the batch. Either way, and on Ctrl-C or SIGTERM, the command that
resumes the batch is attached to the error (or to the result) for the command line to print.
Units run one after another in this process, or as Ray tasks (:mod:`benchmark.distributed`).
"""

from __future__ import annotations

import logging
import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from benchmark import interrupts
from benchmark.batch import (
    SUPERSEDED_TAG,
    UNIT_KEY_TAG,
    StoredBatch,
    plan_resume,
    plan_units,
    unit_record,
    unit_settings,
    unit_tags,
)
from benchmark.config import ExperimentConfig, check_model_inputs
from benchmark.data.prepare import PreparedData, prepare_models
from benchmark.errors import BenchmarkError
from benchmark.profiling import stage
from benchmark.redaction import redact
from benchmark.unit import (
    ModelSetup,
    Unit,
    UnitFailed,
    fit_and_score,
    model_setup,
    run_label,
    run_name,
    run_params,
    run_tags,
)

if TYPE_CHECKING:
    from benchmark.distributed import RayOptions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunSummary:
    """One finished unit as the summary table shows it."""

    model: str
    seed: int
    fold: int | None
    test_accuracy: float
    macro_f1: float
    parameters: int
    train_seconds: float
    run_id: str
    model_uri: str

    @classmethod
    def of_run(cls, run) -> RunSummary:
        """The row of a unit finished earlier, from its MLflow run (a resumed batch's done units)."""
        tags, metrics = run.data.tags, run.data.metrics
        return cls(
            model=tags["model"], seed=int(tags["seed"]), fold=int(tags["fold"]) if "fold" in tags else None,
            test_accuracy=metrics["test_accuracy"], macro_f1=metrics["test_macro_f1"],
            parameters=int(metrics["parameters"]), train_seconds=metrics["train_seconds"],
            # Runs logged before the network was stored once have a native model (model_uri) too.
            run_id=run.info.run_id, model_uri=tags.get("audio_model_uri", tags.get("model_uri", "")),
        )


@dataclass(frozen=True)
class UnitFailure:
    """A unit that failed under ``keep_going``: which, its run (if it got one) and why."""

    model: str
    seed: int
    split_index: int
    run_id: str | None
    reason: str


@dataclass(frozen=True)
class BatchResult:
    """One ``run`` invocation: its batch id, where it was tracked, and a summary per unit."""

    batch_id: str
    tracking_uri: str
    experiment_id: str
    protocol: str
    runs: list[RunSummary]
    failures: list[UnitFailure] = field(default_factory=list)
    #: Units a resume found finished already (their rows are in ``runs`` too).
    reused: int = 0
    #: The command that re-enters this batch (``run --resume <batch id>``).
    resume_command: str = ""


def run_unit(config: ExperimentConfig, prepared: PreparedData, unit: Unit, *, experiment_id: str,
             batch_id: str, tracking_uri: str, models: Sequence[str] = (), setup: ModelSetup | None = None,
             supersedes: Sequence[str] = (), callbacks: Sequence = (),
             scored: Callable[[], None] | None = None, claims_run: str | None = None) -> RunSummary:
    """Fit and score one unit inside its own MLflow run; returns its summary row.

    ``setup`` is the model entry's resolved settings, where the caller has them already;
    ``models`` the batch's model list (recorded for ``--resume``); ``supersedes`` the ids of
    the unit's earlier attempts, tagged as replaced by this run; ``callbacks`` go to the fit
    beside the epoch logger; ``scored`` is called once the model is fitted and scored, before
    the run's artifacts and model are logged. A failure is re-raised as
    :class:`UnitFailed` after the run records its reason and traceback.

    With ``claims_run`` (the batch's: :mod:`benchmark.claims`) the unit is claimed in the store
    before anything is logged; where another command holds it, the new run is deleted and the
    :class:`UnitFailed` carries :class:`~benchmark.claims.ClaimedElsewhere` (no run).
    """
    from mlflow import MlflowClient

    from benchmark import tracking
    from benchmark.claims import ClaimedElsewhere, claim, withdraw
    from benchmark.liveness import Lease, owner_tags
    from benchmark.provenance import provenance_tags

    run_id = None
    try:
        data = prepared.split(unit.split_index)
        setup = setup or model_setup(config, unit.model)
        settings = unit_settings(config, unit.model)
        tags = {"run_kind": tracking.TRAINING_RUN, **run_tags(config, prepared, unit, data), "batch_id": batch_id,
                **unit_tags(unit, settings), **owner_tags(), **provenance_tags()}
        with tracking.tracked_run(experiment_id, run_name(unit, data), tags) as run_id, \
                Lease(run_id, tracking_uri):
            if claims_run is not None:
                claim(MlflowClient(), claims_run, tags[UNIT_KEY_TAG], run_id)
            try:
                with stage("logging", unit.model):
                    _supersede(supersedes, run_id)
                    tracking.log_params(run_params(config, prepared, data, setup))
                    tracking.log_data_inputs(prepared.source.name, prepared.source.uri,
                                             prepared.features.fingerprint)
                    tracking.log_dict(unit_record(config, models or [unit.model], settings), "unit.json")
                fitting = f"training {setup.training.epochs} epochs" if "epochs" in setup.training_keys \
                    else "fitting"
                log.info("%s: %s on %d inputs of %d clips (run %s)", run_label(unit, data), fitting,
                         len(data.subset("train").y), len(data.split.train), run_id)
                result = fit_and_score(config, prepared, unit, setup=setup, callbacks=[tracking.epoch_logger(), *callbacks])
                interrupts.check()
                if scored is not None:
                    scored()
                with stage("logging", unit.model):
                    uris = tracking.log_run(result, config)
            except Exception as error:
                tracking.record_failure(error)
                raise
    except ClaimedElsewhere as claimed:
        withdraw(MlflowClient(), run_id)
        raise UnitFailed(claimed, None) from None
    except Exception as error:
        raise UnitFailed(error, run_id) from error
    metrics = result.evaluation.metrics
    log.info("%s: test accuracy %.4f, macro F1 %.4f", run_label(unit, data), metrics["accuracy"],
             metrics["macro_f1"])
    return RunSummary(
        model=unit.model, seed=unit.seed, fold=data.fold, test_accuracy=metrics["accuracy"],
        macro_f1=metrics["macro_f1"], parameters=result.estimator.count_params(),
        train_seconds=result.fit.seconds, run_id=run_id, model_uri=uris["audio_model_uri"],
    )


def _supersede(run_ids: Sequence[str], by: str) -> None:
    """Tag a unit's earlier attempts as replaced by run ``by`` (reports skip them)."""
    from mlflow import MlflowClient

    client = MlflowClient()
    for run_id in run_ids:
        client.set_tag(run_id, SUPERSEDED_TAG, by)


def open_batch(batch_id: str | None, tracking_uri: str | None = None) -> StoredBatch:
    """The stored batch ``batch_id`` (None: the latest) to resume, after marking its dead runs KILLED."""
    from mlflow import MlflowClient

    from benchmark import tracking
    from benchmark.batch import load_stored_batch
    from benchmark.liveness import reap_dead_runs

    if batch_id is not None:
        tracking.check_batch_id(batch_id)  # before the store: a typo is named as such
    uri = tracking.resolve_tracking_uri(tracking_uri)
    tracking.open_existing_store(uri)
    found = tracking.find_batch(None, batch_id)
    client = MlflowClient()
    reap_dead_runs(client, [found.experiment_id], tracking.batch_runs_filter(found.batch_id))
    return load_stored_batch(client, found.experiment_id, found.batch_id)


def resume_command(batch_id: str, tracking_uri: str) -> str:
    """The command line that re-enters batch ``batch_id`` (its store named where not the default)."""
    from benchmark import tracking

    command = f"python -m benchmark run --resume {batch_id}"
    if tracking_uri != tracking.resolve_tracking_uri():
        command += f" --tracking-uri {shlex.quote(redact(tracking_uri))}"
    return command


def run_experiment(
    config: ExperimentConfig,
    model_names: Sequence[str],
    *,
    tracking_uri: str | None = None,
    progress: bool = True,
    keep_going: bool = False,
    resume: StoredBatch | None = None,
    ray: RayOptions | None = None,
    fresh_processes: bool = False,
) -> BatchResult:
    """Run every (model, seed, fold) unit of an experiment as one batch (or what is left of one).

    ``resume`` is a stored batch (:func:`open_batch`) to complete; ``ray`` runs the units as
    Ray tasks instead of one after another here. ``fresh_processes`` runs each unit here in a
    process of its own (:mod:`benchmark.isolation`), so memory does not grow with the units. Folds are the outer loop, so each fold's inputs
    are gathered (and normalised) once.
    """
    from mlflow import MlflowClient

    from benchmark import tracking
    from benchmark.claims import create_claims_run, find_claims_run
    from benchmark.liveness import reap_dead_runs

    # Each model gets the inputs it needs (the combined network's second one), or one line says
    # which setting forbids them: before the store, the data or any unit is touched.
    check_model_inputs(config, model_names, f"experiment {config.name!r}")
    uri = tracking.resolve_tracking_uri(tracking_uri)
    tracking.connect(uri)  # Before the slow part: a bad tracking URI fails in a second.
    if ray is not None:
        from benchmark.distributed import check_store_for_ray

        check_store_for_ray(uri, ray)
    setups = {name: model_setup(config, name) for name in model_names}
    if resume is None:
        experiment_id, batch_id = tracking.ensure_experiment(config.name, uri), tracking.new_batch_id()
        reap_dead_runs(MlflowClient(), [experiment_id], tracking.TRAINING_RUNS_FILTER)
        claims_run = create_claims_run(MlflowClient(), experiment_id, batch_id)  # before any unit claims
    else:
        experiment_id, batch_id = resume.experiment_id, resume.batch_id
        claims_run = find_claims_run(MlflowClient(), experiment_id, batch_id)
    command = resume_command(batch_id, uri)
    splits = config.split.folds if config.split.protocol == "kfold" else 1
    units = plan_units(config, model_names, splits)
    plan = plan_resume(resume, config, units) if resume else None
    todo = units if plan is None else list(plan.todo)
    done = [] if plan is None else [RunSummary.of_run(run) for run in plan.done.values()]
    log.info("batch %s: %s x seeds %s%s -> %s", batch_id, ", ".join(model_names), list(config.run.seeds),
             f" x {splits} folds" if splits > 1 else "", redact(uri))
    if plan is not None:
        log.info("resuming: %d of %d units finished already, %d to run", len(done), len(units), len(todo))
    for name, setup in setups.items():
        log.info("  %s: %s", name, setup.describe())
    from benchmark.ensemble.unit import check_before_training

    check_before_training(config, model_names, [] if plan is None else list(plan.done.values()))
    needed = list(dict.fromkeys(unit.model for unit in todo))
    prepared = prepare_models(config, needed, progress=progress) if needed else {}
    check_before_training(config, model_names, prepared=prepared)
    protocol = next(iter(prepared.values())).plan.protocol if prepared else config.split.protocol
    context = BatchContext(config, prepared, setups, experiment_id, batch_id, uri, list(model_names),
                            {} if plan is None else plan.todo, claims_run)
    try:
        runs, failures = _run_units(context, todo, keep_going, fresh_processes, ray,
                                    held=[] if plan is None else list(plan.elsewhere.items()))
    except UnitFailed as failed:
        failed.error.add_note(f"resume the batch: {command}")
        raise failed.error from None
    except (KeyboardInterrupt, BenchmarkError) as stopped:  # Ctrl-C; a unit's failure on Ray
        stopped.add_note(f"resume the batch: {command}")
        raise
    try:
        ensembles, ensemble_failures = _form_ensembles(context)
    except (KeyboardInterrupt, BenchmarkError) as stopped:
        stopped.add_note(f"resume the batch: {command}")
        raise
    order = {unit: index for index, unit in enumerate(units)}
    runs = sorted(done + runs + ensembles, key=lambda row: order.get(_unit_of(row), len(order)))
    failures = failures + ensemble_failures
    return BatchResult(batch_id, uri, experiment_id, protocol, runs, failures, len(done), command)


@dataclass(frozen=True)
class BatchContext:
    """What every unit of a batch needs besides itself: settings, data and where to log."""

    config: ExperimentConfig
    prepared: dict[str, PreparedData]
    setups: dict[str, ModelSetup]
    experiment_id: str
    batch_id: str
    tracking_uri: str
    models: list[str]
    earlier_attempts: dict[Unit, list[str]]
    #: The batch's claims run (:mod:`benchmark.claims`); None: units are not claimed (``profile``).
    claims_run: str | None = None

    def run(self, unit: Unit, *, supersedes: Sequence[str] | None = None, callbacks: Sequence = (),
            scored: Callable[[], None] | None = None) -> RunSummary:
        """Run one unit (raises :class:`UnitFailed`); ``scored`` as :func:`run_unit` says."""
        return run_unit(self.config, self.prepared[unit.model], unit, experiment_id=self.experiment_id,
                        batch_id=self.batch_id, tracking_uri=self.tracking_uri, models=self.models,
                        setup=self.setups[unit.model], callbacks=callbacks, scored=scored, claims_run=self.claims_run,
                        supersedes=self.earlier_attempts.get(unit, ()) if supersedes is None else supersedes)

    def finished_elsewhere(self, unit: Unit, holder_run_id: str) -> RunSummary | None:
        """Wait for the run of another command that holds ``unit``: its row once it FINISHED, None
        where it ended otherwise (or died), so the unit is free to run again."""
        from mlflow import MlflowClient

        from benchmark.claims import wait_for

        run = wait_for(MlflowClient(), holder_run_id, f"{unit.model} seed {unit.seed} split {unit.split_index}")
        return RunSummary.of_run(run) if run is not None and run.info.status == "FINISHED" else None

    def gather(self, unit: Unit) -> None:
        """Gather the inputs of ``unit``'s split now (a no-op once they are), in this process."""
        self.prepared[unit.model].split(unit.split_index)

    def failure(self, unit: Unit, reason: str) -> UnitFailure:
        """A unit failed outside any run of its own (its worker lost, say)."""
        return UnitFailure(unit.model, unit.seed, unit.split_index, None, reason)

    def run_once(self, unit: Unit, *, callbacks: Sequence = ()) -> tuple[bool, RunSummary | UnitFailure]:
        """Run one unit unless it has a FINISHED run already: (True, its row) or (False, the failure).

        For a task that may be a retry (a Ray worker died mid-unit): a FINISHED run with the
        unit's key is returned as it is; earlier attempts of processes now dead are marked
        KILLED and superseded by this one.
        """
        from mlflow import MlflowClient

        from benchmark import tracking
        from benchmark.batch import UNIT_KEY_TAG, config_hash, unit_key
        from benchmark.liveness import reap_dead_runs

        client = MlflowClient()
        key = unit_key(unit, config_hash(unit_settings(self.config, unit.model)))
        unit_filter = f"{tracking.batch_runs_filter(self.batch_id)} and tags.{UNIT_KEY_TAG} = '{key}'"
        reap_dead_runs(client, [self.experiment_id], unit_filter)
        attempts = client.search_runs([self.experiment_id], filter_string=unit_filter, max_results=100)
        finished = [run for run in attempts if run.info.status == "FINISHED"]
        if finished:
            return True, RunSummary.of_run(finished[0])
        earlier = {*self.earlier_attempts.get(unit, ()),
                   *(run.info.run_id for run in attempts if SUPERSEDED_TAG not in run.data.tags)}
        from benchmark.claims import ClaimedElsewhere

        while True:
            try:
                return True, self.run(unit, supersedes=sorted(earlier), callbacks=callbacks)
            except UnitFailed as failed:
                if not isinstance(failed.error, ClaimedElsewhere):
                    return False, failure_of(unit, failed)
                # Another command holds it: a Ray task waits for that run (it holds no data
                # another unit needs), and runs the unit after all where that run did not finish.
                if (row := self.finished_elsewhere(unit, failed.error.holder_run_id)) is not None:
                    return True, row


def _run_units(context: BatchContext, units: Sequence[Unit], keep_going: bool, fresh_processes: bool,
               ray: RayOptions | None, held: Sequence[tuple[Unit, str]] = ()):
    """Run ``units`` with the chosen executor: (summaries, failures).

    Units another command holds (:mod:`benchmark.claims`; ``held``, with the holder's run id, are
    known so before) are left to it while the rest run, then waited for: a holder's FINISHED run
    is the unit's row, and a unit whose holder ended without finishing runs here after all.
    (Ray tasks wait inside their task.)
    """
    runs, failures, claimed = [], [], list(held)
    for unit, holder in held:
        log.info("%s seed %d: run %s of another command is training it; left to it", unit.model, unit.seed,
                 holder)
    while units or claimed:
        if units:
            if ray is None:
                done, failed = _run_here(context, units, keep_going, fresh_processes, claimed=claimed)
            else:
                from benchmark.distributed import run_on_ray

                done, failed = run_on_ray(context, units, keep_going, ray)
            runs, failures = runs + done, failures + failed
        units = []
        for unit, holder in claimed:
            row = context.finished_elsewhere(unit, holder)
            if row is None:
                units.append(unit)
            else:
                runs.append(row)
        claimed = []
    return runs, failures


def _form_ensembles(context: BatchContext) -> tuple[list[RunSummary], list[UnitFailure]]:
    """Once the batch's units ran: its ensembles, one per (seed, split) (:mod:`benchmark.ensemble`)."""
    from benchmark.ensemble.unit import form_batch_ensembles

    started = time.perf_counter()
    with stage("ensemble", "ensemble"):
        runs, failed = form_batch_ensembles(context.config, context.models, experiment_id=context.experiment_id,
                                            batch_id=context.batch_id)
    if runs or failed:
        log.info("ensembles: %d finished, %d not formed, in %.1f s", len(runs), len(failed),
                 time.perf_counter() - started)
    return ([RunSummary.of_run(run) for run in runs],
            [UnitFailure(unit.model, unit.seed, unit.split_index, None, reason) for unit, reason in failed])


@dataclass
class _Outcomes:
    """What an executor made of its units: rows, failures (``keep_going``), and the units another
    command holds, each with its holder's run id."""

    runs: list[RunSummary] = field(default_factory=list)
    failures: list[UnitFailure] = field(default_factory=list)
    #: None: a unit held elsewhere is a failure like any other (a caller that cannot wait for it).
    claimed: list[tuple[Unit, str]] | None = None

    def failed(self, unit: Unit, failed: UnitFailed, keep_going: bool) -> None:
        """A unit that failed or was claimed elsewhere: re-raised, or under ``keep_going`` recorded and logged."""
        from benchmark.claims import ClaimedElsewhere

        if isinstance(failed.error, ClaimedElsewhere) and self.claimed is not None:
            log.info("%s seed %d: %s; left to it", unit.model, unit.seed, failed.error)
            self.claimed.append((unit, failed.error.holder_run_id))
            return
        if not keep_going:
            raise failed
        self.failures.append(failure_of(unit, failed))
        log.error("%s seed %d: FAILED (%s); going on", unit.model, unit.seed, self.failures[-1].reason)


def _run_here(context: BatchContext, units: Sequence[Unit], keep_going: bool, fresh_processes: bool = False,
              claimed: list[tuple[Unit, str]] | None = None):
    """Run ``units`` one after another, in this process or each in a fresh one: (summaries, failures).

    Units another command holds go to ``claimed``, with the holder's run id, where it is given.
    """
    outcomes = _Outcomes(claimed=claimed)
    if fresh_processes:
        _run_in_fresh_processes(context, units, keep_going, outcomes)
        return outcomes.runs, outcomes.failures
    for unit in units:
        interrupts.check()
        try:
            outcomes.runs.append(context.run(unit))
        except UnitFailed as failed:
            outcomes.failed(unit, failed, keep_going)
    return outcomes.runs, outcomes.failures


def _run_in_fresh_processes(context: BatchContext, units: Sequence[Unit], keep_going: bool, outcomes: _Outcomes):
    """Each unit in a process of its own (:mod:`benchmark.isolation`), one training at a time.

    Once a unit has scored its model, the next unit starts while the first logs its run, so
    logging overlaps training instead of holding it up: at most two units' processes live at
    once. A failure stops the batch (the next unit, already started, is stopped and its run
    marked KILLED, for ``--resume``) unless ``keep_going``.
    """
    from benchmark.isolation import UnitProcess, stop_units

    logging_unit = current = None  # the previous unit, still logging its run; the one training

    def collect(process: UnitProcess) -> None:
        try:
            outcomes.runs.append(process.result())
        except UnitFailed as failed:
            outcomes.failed(process.unit, failed, keep_going)

    try:
        for unit in units:
            interrupts.check()
            try:  # here, once per split: every unit's process maps the same gathered files
                context.gather(unit)
            except Exception as error:
                outcomes.failed(unit, UnitFailed(error, None), keep_going)
                continue
            current = UnitProcess(context, unit)
            if logging_unit is not None:
                collect(logging_unit)
                logging_unit = None
            if current.wait_scored():
                logging_unit = current
            else:  # it ended before scoring (it failed, lost its claim, or its process died): nothing to overlap
                collect(current)
        if logging_unit is not None:
            collect(logging_unit)
    except BaseException:  # Ctrl-C, SIGTERM or a failure: the live units mark their runs KILLED
        stop_units([process for process in (logging_unit, current) if process is not None])
        raise


def failure_of(unit: Unit, failed: UnitFailed) -> UnitFailure:
    """The summary line of a failed unit."""
    from benchmark.tracking import failure_reason

    return UnitFailure(unit.model, unit.seed, unit.split_index, failed.run_id, failure_reason(failed.error))


def _unit_of(row: RunSummary) -> Unit:
    return Unit(row.model, row.seed, row.fold or 0)
