"""Verbs that read results: report, ui, promote, predict, latency. Heavy imports stay inside
the handlers."""

from __future__ import annotations

import sys

from benchmark.cli.options import (
    DEFAULT_EXPERIMENT,
    add_batch_options,
    add_tracking_option,
)
from benchmark.errors import BenchmarkError


def add_report(verbs) -> None:
    report = verbs.add_parser(
        "report",
        help="write the comparison report of a batch of runs (Markdown, HTML, CSV)",
        description="Compare the models of one batch of MLflow runs: leaderboard with confidence "
        "intervals, confusion matrices, training curves, per-class F1, pairwise significance and "
        "provenance. Writes report.md, a self-contained report.html, the figures and summary.csv, "
        "and logs them to a report run in the same MLflow experiment.",
    )
    add_batch_options(report)
    report.add_argument("--out", metavar="DIR", help="output folder (default: reports/<experiment>/<batch>/)")
    add_tracking_option(report)
    report.set_defaults(handler=_report)


def _report(args) -> int:
    import time

    from benchmark.cli.output_paths import check_output_folder
    from benchmark.report import write_report

    if args.out is not None:
        check_output_folder(args.out, "--out")  # before reading the batch and drawing figures
    started = time.perf_counter()
    report = write_report(args.experiment, batch=args.batch, out=args.out, tracking_uri=args.tracking_uri)
    print(f"report of experiment {report.experiment!r}, batch {report.batch_id}: "
          f"{report.n_runs} runs of {report.n_models} models ({time.perf_counter() - started:.1f} s)")
    for path in report.files:
        print(f"  {path}")
    print(f"open {report.html} in a browser; logged to MLflow as run {report.run_id}")
    return 0


def add_ui(verbs) -> None:
    ui = verbs.add_parser("ui", help="open the MLflow UI on the project's tracking store",
                          description="Start the MLflow UI on the local store, bound to 127.0.0.1, and "
                          "print the address of the experiment of the latest batch (or --experiment's).")
    ui.add_argument("--experiment", metavar="NAME",
                    help="print this experiment's address (default: that of the most recent training batch)")
    ui.add_argument("--port", type=int, default=5000, help="(default: %(default)s)")
    add_tracking_option(ui)
    ui.set_defaults(handler=_ui)


def _ui(args) -> int:
    from benchmark.cli.server import check_port, run_server
    from benchmark.redaction import redact
    from benchmark.tracking import resolve_tracking_uri

    check_port(args.port)  # before the address is printed: a busy port is one line, exit 2
    uri = resolve_tracking_uri(args.tracking_uri)
    address = f"http://127.0.0.1:{args.port}"
    print(f"MLflow UI for {redact(uri)} at {address} (Ctrl-C stops it)")
    if latest := _latest_experiment_page(uri, args.experiment):
        print(f"  {latest[0]}: {address}/#/experiments/{latest[1]}")
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
               "--host", "127.0.0.1", "--port", str(args.port)]
    return run_server(command)


def _latest_experiment_page(uri: str, experiment: str | None) -> tuple[str, str] | None:
    """(name, id) of the experiment to show: ``experiment``, else that of the latest batch.

    None where the store is empty or absent: the UI still starts, on an empty store.
    """
    from benchmark import tracking

    try:
        tracking.open_existing_store(uri, writable=False)  # the UI only reads: a read-only store will do
        batch = tracking.find_batch(experiment)
    except BenchmarkError as error:
        if experiment is not None:
            raise
        print(f"  ({error})")
        return None
    return batch.experiment_name, batch.experiment_id


def add_promote(verbs) -> None:
    promote = verbs.add_parser(
        "promote",
        help="register the best model of a batch as genre-classifier@champion",
        description="Register the audio model of a batch's best run in the MLflow Model Registry "
        "as a new version of genre-classifier and move the alias 'champion' to it. Higher is better, "
        "except for metrics ending in 'loss' or 'seconds', times ('_ms') and 'parameters'.",
    )
    add_batch_options(promote)
    promote.add_argument("--metric", default="test_accuracy", metavar="NAME",
                         help="metric that picks the best run (default: %(default)s)")
    promote.add_argument("--model", metavar="NAME",
                         help="only this model's runs (`--model ensemble`: the batch's best ensemble run)")
    add_tracking_option(promote)
    promote.set_defaults(handler=_promote)


def _promote(args) -> int:
    from benchmark.serving.promote import promote

    result = promote(args.experiment, batch_id=args.batch, metric=args.metric, tracking_uri=args.tracking_uri,
                     model=args.model)
    direction = "lower" if result.lower_is_better else "higher"
    print(f"best of {result.candidates} runs in batch {result.batch_id} of experiment {result.experiment!r}: "
          f"{result.run_name} (run {result.run_id})")
    print(f"  {result.metric} = {result.value:.4f} ({direction} is better)")
    print(f"registered {result.registered_model} version {result.version}; "
          f"alias {result.alias!r} -> version {result.version}")
    print(f"label a file: python -m benchmark predict song.wav   "
          f"(model models:/{result.registered_model}@{result.alias})")
    return 0


def add_predict(verbs) -> None:
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
    add_tracking_option(predict)
    predict.add_argument("--no-progress", action="store_true", help="no progress bar")
    predict.set_defaults(handler=_predict)


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


def add_latency(verbs) -> None:
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
    latency.add_argument("--model-uri", nargs="+", metavar="URI",
                         help="instead: time these logged audio models end to end (a run's audio_model_uri, "
                         "models:/genre-classifier@champion; an ensemble's)")
    add_tracking_option(latency)
    latency.set_defaults(handler=_latency)


def _latency(args) -> int:
    if args.repeats < 1 or args.batch_size < 1:
        raise BenchmarkError("--repeats and --batch-size must be at least 1")
    from benchmark.models import get_model_spec

    for name in args.model or ():
        get_model_spec(name)  # Unknown names fail before anything is built.
    import os

    from benchmark.serving.latency import measure_latency, measure_model_latency, render_latency

    if args.model_uri:
        table = measure_model_latency(args.model_uri, repeats=args.repeats, tracking_uri=args.tracking_uri)
        print(f"inference on this machine ({os.cpu_count()} CPU cores), logged audio models, a 10 s wav file "
              f"to its genre, median of {args.repeats} timed calls after warm-up; times in ms")
        print(render_latency(table))
        return 0
    table = measure_latency(args.experiment, args.model, repeats=args.repeats, batch_size=args.batch_size,
                            end_to_end=not args.no_end_to_end)
    print(f"inference on this machine ({os.cpu_count()} CPU cores), untrained networks, "
          f"median of {args.repeats} timed calls after warm-up; times in ms")
    print(render_latency(table))
    return 0
