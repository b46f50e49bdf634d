"""Verbs that train: run, tune, list. Heavy imports stay inside the handlers."""

from __future__ import annotations

from benchmark.backend import select_backend
from benchmark.cli.options import (
    DEFAULT_EXPERIMENT,
    add_executor_options,
    add_experiment_options,
    experiment_overrides,
    load_experiment_for,
    ray_options,
)


def add_run(verbs) -> None:
    run = verbs.add_parser(
        "run",
        help="train and test models of an experiment, logging every run to MLflow",
        description="Train and test networks on the experiment's data; one MLflow run per "
        "(model, seed, fold), then a summary table. A batch stopped by a failure, Ctrl-C or a "
        "dead machine is completed with --resume.",
    )
    which = run.add_mutually_exclusive_group()
    which.add_argument("--all", action="store_true", help="every model the experiment lists")
    which.add_argument("--model", nargs="+", metavar="NAME", help="these models (see `list models`)")
    add_experiment_options(run, experiment_default=None)
    run.add_argument("--resume", nargs="?", const=LATEST, metavar="BATCH",
                     help="complete batch BATCH (no value, or --latest: the latest batch): run only its units "
                     "without a finished run, with the batch's own experiment, settings and models")
    run.add_argument("--latest", action="store_true", help="with --resume: the latest batch")
    run.add_argument("--keep-going", action="store_true",
                     help="record a failed unit (FAILED, with its reason) and go on; exit status 1 at the end")
    add_executor_options(run, "unit")
    run.add_argument("--in-process", action="store_true",
                     help="run every unit in this process rather than each in a fresh one (debugging; memory then "
                     "grows with each network TensorFlow trains)")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.set_defaults(handler=_run)


#: ``--resume`` with no batch id: the latest batch.
LATEST = "latest"


def _run(args) -> int:
    from benchmark.errors import BenchmarkError

    if args.latest and not args.resume:
        raise BenchmarkError("--latest goes with --resume (report, promote and ui take --latest on their own)")
    if args.latest and args.resume != LATEST:
        raise BenchmarkError(f"--resume {args.resume} or --latest: one batch, not both")
    if not (args.all or args.model or args.resume):
        raise BenchmarkError("say which models: --all, --model NAME ..., or --resume a batch")
    stored = None
    if args.resume:
        from benchmark.runner import open_batch

        select_backend(args.backend)  # reading the batch imports Keras: its backend is chosen first
        stored = open_batch(None if args.resume == LATEST else args.resume, args.tracking_uri)
    if stored is None or args.experiment is not None:
        config = load_experiment_for(args, args.experiment or DEFAULT_EXPERIMENT)
    else:
        config = _batch_experiment(args, stored)
    models = list(config.run.models) if args.all else args.model or (stored.models if stored else [])
    from benchmark.models import get_model_spec

    for name in models:
        get_model_spec(config.architecture_of(name))  # Unknown names fail here, before any data is touched.
    from benchmark.runner import run_experiment
    from benchmark.summary import print_summary

    outcome = run_experiment(config, models, tracking_uri=args.tracking_uri, progress=not args.no_progress,
                             keep_going=args.keep_going, resume=stored, ray=ray_options(args),
                             fresh_processes=not args.in_process)
    print_summary(outcome, experiment_name=config.name)
    return 1 if outcome.failures else 0


def _batch_experiment(args, stored):
    """A resumed batch's own experiment (rebuilt from its ``unit.json``), with this command's
    ``--set`` values and flags applied to it: never to the default experiment."""
    from benchmark.config import adjust_experiment

    overrides = experiment_overrides(args)
    config = stored.config
    if overrides or args.seeds or args.data_dir or args.split_dir:
        config = adjust_experiment(config.model_dump(mode="json"), overrides,
                                   origin=f"batch {stored.batch_id}'s experiment {config.name!r}",
                                   data_dir=args.data_dir, split_dir=args.split_dir, seeds=args.seeds)
    select_backend(config.run.backend)  # the batch's own: an error if Keras runs on another already
    return config


def add_tune(verbs) -> None:
    tune = verbs.add_parser(
        "tune",
        help="tune one model's hyperparameters with Optuna on validation data",
        description="Add trials to an Optuna study of one model (created on first use, resumed "
        "after), optimising a validation metric; write the best as experiments/tuned-<model>.toml.",
    )
    tune.add_argument("--model", required=True, metavar="NAME", help="the model to tune")
    add_experiment_options(tune)
    tune.add_argument("--trials", type=int, default=20, metavar="N",
                      help="trials to ADD to the study in this invocation (default: %(default)s)")
    tune.add_argument("--timeout", type=float, metavar="SECONDS", help="stop starting trials after this")
    tune.add_argument("--study", metavar="NAME", help="study name (default: <experiment>-<model>)")
    tune.add_argument("--storage", metavar="URL",
                      help="Optuna storage: SQLAlchemy URL (sqlite:///..., postgresql://...) or a journal "
                      "file path (default: mlruns/optuna-journal.log)")
    tune.add_argument("--jobs", type=int, default=1, metavar="N",
                      help="workers on the study: processes, or Ray tasks with --executor ray (default: 1)")
    tune.add_argument("--metric", choices=("val_accuracy", "val_loss"),
                      help="objective (default: the experiment's tuning.metric, val_accuracy)")
    add_executor_options(tune, "worker")
    tune.set_defaults(handler=_tune)


def _tune(args) -> int:

    config = load_experiment_for(args, args.experiment, *([f"tuning.metric={args.metric}"] if args.metric else []))
    from benchmark.tune import tune_model

    outcome = tune_model(
        config, args.model, trials=args.trials, timeout=args.timeout, study_name=args.study,
        storage=args.storage, jobs=args.jobs, tracking_uri=args.tracking_uri, ray=ray_options(args),
    )
    print()
    print(f"study {outcome.study_name!r} ({outcome.storage}): {outcome.trials_after} trials, "
          f"{outcome.trials_after - outcome.trials_before} added")
    if outcome.summary.empty:  # pandas would print its "Empty DataFrame" repr
        print("no trials in the study yet")
    else:
        print(outcome.summary.to_string(index=False, float_format="{:.4g}".format))
    if outcome.best_trial is None:
        print("no trial completed: nothing to export")
        return 0
    print(f"best: trial {outcome.best_trial}, {config.tuning.metric} {outcome.best_value:.4f}, "
          f"{outcome.best_params}")
    print(f"retrain and test it: python -m benchmark run --model {args.model} "
          f"--experiment {outcome.tuned_experiment}")
    print(f"inspect the study: optuna-dashboard {outcome.storage}")
    return 0


def add_list(verbs) -> None:
    listing = verbs.add_parser("list", help="list registered models and bundled experiments",
                               description="List registered models and bundled experiments.")
    listing.add_argument("what", nargs="?", choices=("models", "experiments"),
                         help="only this list (default: both)")
    listing.set_defaults(handler=_list)


def _list(args) -> int:
    if args.what in (None, "models"):
        from benchmark.models import get_model_spec, list_models

        print("models:")
        names = list_models()
        width = max(map(len, names), default=0)
        for name in names:
            spec = get_model_spec(name)
            print(f"  {name:{width}}  {spec.kind:9}  {spec.summary}")
    if args.what in (None, "experiments"):
        from benchmark.config import list_experiments

        print("experiments:")
        experiments = list_experiments()
        width = max(map(len, experiments), default=0)
        for name, description in experiments.items():
            print(f"  {name:{width}} {description}")
    return 0
