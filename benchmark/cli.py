"""The command line: a thin layer over the pipeline's functions.

Only the standard library is imported at start-up, so ``--help`` answers at once; each verb
imports what it needs when it runs. A :class:`BenchmarkError` becomes one line on stderr and
exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from benchmark.errors import BenchmarkError

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
DEFAULT_EXPERIMENT = "default"


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, run the chosen verb, and return the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr
    )
    # Each new network is traced afresh by design; TensorFlow's retracing advice is noise here.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    try:
        return args.handler(args) or 0
    except BenchmarkError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every verb."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmark",
        description="Train and compare music genre classifiers on spectrograms, tracked in MLflow.",
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    _add_run(verbs)
    _add_list(verbs)
    _add_data(verbs)
    _add_ui(verbs)
    _add_report(verbs)
    _add_tune(verbs)
    _add_promote(verbs)
    _add_predict(verbs)
    _add_latency(verbs)
    return parser


def _add_run(verbs) -> None:
    run = verbs.add_parser(
        "run",
        help="train and test models of an experiment, logging every run to MLflow",
        description="Train and test networks on the experiment's data; one MLflow run per "
        "(model, seed), then a summary table.",
    )
    which = run.add_mutually_exclusive_group(required=True)
    which.add_argument("--all", action="store_true", help="every model the experiment lists")
    which.add_argument("--model", nargs="+", metavar="NAME", help="these models (see `list models`)")
    _add_experiment_options(run)
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.set_defaults(handler=_run)


def _add_experiment_options(parser) -> None:
    """The options that choose and adjust an experiment, shared by `run` and `tune`."""
    parser.add_argument("--experiment", default=DEFAULT_EXPERIMENT, metavar="FILE",
                        help="experiment TOML file or bundled name (default: %(default)s)")
    parser.add_argument("--data-dir", metavar="DIR", help="folder-per-genre audio tree (e.g. GTZAN's genres/)")
    parser.add_argument("--seeds", nargs="+", type=int, metavar="N", help="seeds (overrides run.seeds)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config value, e.g. --set train.epochs=5 (repeatable)")
    _add_tracking_option(parser)


def _add_tracking_option(parser) -> None:
    parser.add_argument("--tracking-uri", metavar="URI",
                        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite in ./mlruns)")


def _add_batch_options(parser) -> None:
    """Which batch of training runs a verb reads: by experiment and batch id, or the latest."""
    parser.add_argument("--experiment", default=DEFAULT_EXPERIMENT, metavar="NAME",
                        help="MLflow experiment: the experiment file's name (default: %(default)s)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--batch", metavar="ID", help="the batch_id of one `run` invocation")
    which.add_argument("--latest", action="store_true",
                       help="the batch of the most recently started training run (the default)")


def _add_tune(verbs) -> None:
    tune = verbs.add_parser(
        "tune",
        help="tune one model's hyperparameters with Optuna on validation data",
        description="Add trials to an Optuna study of one model (created on first use, resumed "
        "after), optimising a validation metric; write the best as experiments/tuned-<model>.toml.",
    )
    tune.add_argument("--model", required=True, metavar="NAME", help="the model to tune")
    _add_experiment_options(tune)
    tune.add_argument("--trials", type=int, default=20, metavar="N",
                      help="trials to ADD to the study in this invocation (default: %(default)s)")
    tune.add_argument("--timeout", type=float, metavar="SECONDS", help="stop starting trials after this")
    tune.add_argument("--study", metavar="NAME", help="study name (default: <experiment>-<model>)")
    tune.add_argument("--storage", metavar="URL",
                      help="Optuna storage: SQLAlchemy URL (sqlite:///..., postgresql://...) or a journal "
                      "file path (default: mlruns/optuna-journal.log)")
    tune.add_argument("--jobs", type=int, default=1, metavar="N", help="worker processes (default: 1)")
    tune.add_argument("--metric", choices=("val_accuracy", "val_loss"),
                      help="objective (default: the experiment's tuning.metric, val_accuracy)")
    tune.set_defaults(handler=_tune)


def _add_list(verbs) -> None:
    listing = verbs.add_parser("list", help="list registered models and bundled experiments",
                               description="List registered models and bundled experiments.")
    listing.add_argument("what", nargs="?", choices=("models", "experiments"),
                         help="only this list (default: both)")
    listing.set_defaults(handler=_list)


def _add_data(verbs) -> None:
    data = verbs.add_parser("data", help="data set tools", description="Data set tools.")
    tools = data.add_subparsers(dest="tool", required=True, metavar="TOOL")
    synth = tools.add_parser(
        "synth",
        help="write the synthetic GTZAN-shaped data set",
        description="Write a deterministic synthetic data set shaped like GTZAN: "
        "DIR/<genre>/<genre>.NNNNN.wav, 22050 Hz mono 16-bit.",
    )
    synth.add_argument("--out", required=True, metavar="DIR", help="output folder")
    synth.add_argument("--clips-per-genre", type=int, default=100, metavar="N", help="(default: %(default)s)")
    synth.add_argument("--seconds", type=float, default=30.0, metavar="S", help="clip length (default: %(default)s)")
    synth.add_argument("--sample-rate", type=int, default=22050, metavar="HZ", help="(default: %(default)s)")
    synth.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    synth.add_argument("--workers", type=int, default=None, metavar="N", help="processes (default: one per core)")
    synth.set_defaults(handler=_synth)


def _add_ui(verbs) -> None:
    ui = verbs.add_parser("ui", help="open the MLflow UI on the project's tracking store",
                          description="Start the MLflow UI on the local store, bound to 127.0.0.1.")
    ui.add_argument("--port", type=int, default=5000, help="(default: %(default)s)")
    _add_tracking_option(ui)
    ui.set_defaults(handler=_ui)


def _run(args) -> int:
    from benchmark.config import load_experiment

    config = load_experiment(args.experiment, args.overrides, data_dir=args.data_dir, seeds=args.seeds)
    models = list(config.run.models) if args.all else args.model
    from benchmark.models import get_model_spec

    for name in models:
        get_model_spec(name)  # Unknown names fail here, before any data is touched.
    from benchmark.runner import run_experiment
    from benchmark.summary import print_summary

    outcome = run_experiment(config, models, tracking_uri=args.tracking_uri, progress=not args.no_progress)
    print_summary(outcome, experiment_name=config.name)
    return 0


def _tune(args) -> int:
    from benchmark.config import load_experiment

    overrides = [*args.overrides, *([f"tuning.metric={args.metric}"] if args.metric else [])]
    config = load_experiment(args.experiment, overrides, data_dir=args.data_dir, seeds=args.seeds)
    from benchmark.tune import tune_model

    outcome = tune_model(
        config, args.model, trials=args.trials, timeout=args.timeout, study_name=args.study,
        storage=args.storage, jobs=args.jobs, tracking_uri=args.tracking_uri,
    )
    print()
    print(f"study {outcome.study_name!r} ({outcome.storage}): {outcome.trials_after} trials, "
          f"{outcome.trials_after - outcome.trials_before} added")
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


def _list(args) -> int:
    if args.what in (None, "models"):
        from benchmark.models import get_model_spec, list_models

        print("models:")
        for name in list_models():
            print(f"  {name:8} {get_model_spec(name).summary}")
    if args.what in (None, "experiments"):
        from benchmark.config import list_experiments

        print("experiments:")
        for name, description in list_experiments().items():
            print(f"  {name:8} {description}")
    return 0


def _synth(args) -> int:
    import time

    from benchmark.data.synth import write_dataset

    started = time.perf_counter()
    out = write_dataset(
        args.out,
        clips_per_genre=args.clips_per_genre,
        seconds=args.seconds,
        sample_rate=args.sample_rate,
        seed=args.seed,
        workers=args.workers,
    )
    print(f"synthetic data set in {out} ({time.perf_counter() - started:.1f} s)")
    return 0


def _ui(args) -> int:
    import subprocess

    from benchmark.tracking import resolve_tracking_uri

    uri = resolve_tracking_uri(args.tracking_uri)
    print(f"MLflow UI for {uri} at http://127.0.0.1:{args.port} (Ctrl-C stops it)")
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
               "--host", "127.0.0.1", "--port", str(args.port)]
    return subprocess.call(command)


def _add_report(verbs) -> None:
    report = verbs.add_parser(
        "report",
        help="write the comparison report of a batch of runs (Markdown, HTML, CSV)",
        description="Compare the models of one batch of MLflow runs: leaderboard with confidence "
        "intervals, confusion matrices, training curves, per-class F1, pairwise significance and "
        "provenance. Writes report.md, a self-contained report.html, the figures and summary.csv, "
        "and logs them to a report run in the same MLflow experiment.",
    )
    _add_batch_options(report)
    report.add_argument("--out", metavar="DIR", help="output folder (default: reports/<experiment>/<batch>/)")
    _add_tracking_option(report)
    report.set_defaults(handler=_report)


def _report(args) -> int:
    import time

    from benchmark.report import write_report

    started = time.perf_counter()
    report = write_report(args.experiment, batch=args.batch, out=args.out, tracking_uri=args.tracking_uri)
    print(f"report of experiment {report.experiment!r}, batch {report.batch_id}: "
          f"{report.n_runs} runs of {report.n_models} models ({time.perf_counter() - started:.1f} s)")
    for path in report.files:
        print(f"  {path}")
    print(f"open {report.html} in a browser; logged to MLflow as run {report.run_id}")
    return 0


def _add_promote(verbs) -> None:
    promote = verbs.add_parser(
        "promote",
        help="register the best model of a batch as genre-classifier@champion",
        description="Register the audio model of a batch's best run in the MLflow Model Registry "
        "as a new version of genre-classifier and move the alias 'champion' to it. Higher is better, "
        "except for metrics ending in 'loss' or 'seconds', times ('_ms') and 'parameters'.",
    )
    _add_batch_options(promote)
    promote.add_argument("--metric", default="test_accuracy", metavar="NAME",
                         help="metric that picks the best run (default: %(default)s)")
    _add_tracking_option(promote)
    promote.set_defaults(handler=_promote)


def _add_predict(verbs) -> None:
    predict = verbs.add_parser(
        "predict",
        help="label audio files and folders with genres, using a registered model",
        description="Predict the genres of audio files; folders are searched recursively for "
        "audio files. Exit status: 0 every file labelled, 1 some files could not be (see their "
        "error rows), 2 no model or nothing to label.",
    )
    predict.add_argument("paths", nargs="+", metavar="PATH", help="audio files and folders")
    predict.add_argument("--model-uri", default="models:/genre-classifier@champion", metavar="URI",
                         help="an audio model (default: %(default)s)")
    predict.add_argument("--top-k", type=int, default=3, metavar="K",
                         help="genres per file (default: %(default)s)")
    predict.add_argument("--format", choices=("table", "json", "csv"), default="table",
                         help="output format (default: %(default)s)")
    _add_tracking_option(predict)
    predict.add_argument("--no-progress", action="store_true", help="no progress bar")
    predict.set_defaults(handler=_predict)


def _add_latency(verbs) -> None:
    latency = verbs.add_parser(
        "latency",
        help="measure each network's inference latency and throughput on this machine",
        description="Time each network (built untrained: weights do not change the arithmetic) at "
        "an experiment's input shape: one clip (batch 1, median), clips per second in a batch, and "
        "end to end from a 10 s wav file through the MLflow audio model.",
    )
    latency.add_argument("--experiment", nargs="+", default=[DEFAULT_EXPERIMENT], metavar="FILE",
                         help=f"experiments whose input shapes to time (default: {DEFAULT_EXPERIMENT}; "
                         "`paper` is the full-size study)")
    latency.add_argument("--model", nargs="+", metavar="NAME",
                         help="these networks (default: the experiment's)")
    latency.add_argument("--repeats", type=int, default=30, metavar="N",
                         help="timed calls per figure, after warm-up (default: %(default)s)")
    latency.add_argument("--batch-size", type=int, default=32, metavar="N", help="(default: %(default)s)")
    latency.add_argument("--no-end-to-end", action="store_true",
                         help="skip the audio-file-to-genre timing (saves writing each model)")
    latency.set_defaults(handler=_latency)


def _promote(args) -> int:
    from benchmark.serving.registry import promote

    result = promote(args.experiment, batch_id=args.batch, metric=args.metric, tracking_uri=args.tracking_uri)
    direction = "lower" if result.lower_is_better else "higher"
    print(f"best of {result.candidates} runs in batch {result.batch_id} of experiment {result.experiment!r}: "
          f"{result.run_name} (run {result.run_id})")
    print(f"  {result.metric} = {result.value:.4f} ({direction} is better)")
    print(f"registered {result.registered_model} version {result.version}; "
          f"alias {result.alias!r} -> version {result.version}")
    print(f"label a file: python -m benchmark predict song.wav   "
          f"(model models:/{result.registered_model}@{result.alias})")
    return 0


def _predict(args) -> int:
    if args.top_k < 1:
        raise BenchmarkError(f"--top-k must be at least 1, got {args.top_k}")
    from benchmark.serving.predict import (
        collect_audio_files,
        load_audio_model,
        predict_files,
        render,
        top_k_table,
    )

    files, missing = collect_audio_files(args.paths)  # Nothing to label is an error here.
    model = load_audio_model(args.model_uri, args.tracking_uri)
    table = top_k_table(predict_files(model, files, progress=not args.no_progress), missing, args.top_k)
    print(render(table, args.format))
    failed = int((table["status"] != "ok").sum())
    if failed:
        print(f"{failed} of {len(table)} files could not be labelled", file=sys.stderr)
    return 1 if failed else 0


def _latency(args) -> int:
    if args.repeats < 1 or args.batch_size < 1:
        raise BenchmarkError("--repeats and --batch-size must be at least 1")
    from benchmark.models import get_model_spec

    for name in args.model or ():
        get_model_spec(name)  # Unknown names fail before anything is built.
    import os

    from benchmark.serving.latency import measure_latency, render_latency

    table = measure_latency(args.experiment, args.model, repeats=args.repeats, batch_size=args.batch_size,
                            end_to_end=not args.no_end_to_end)
    print(f"inference on this machine ({os.cpu_count()} CPU cores), untrained networks, "
          f"median of {args.repeats} timed calls after warm-up; times in ms")
    print(render_latency(table))
    return 0
