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
    run.add_argument("--experiment", default=DEFAULT_EXPERIMENT, metavar="FILE",
                     help="experiment TOML file or bundled name (default: %(default)s)")
    run.add_argument("--data-dir", metavar="DIR", help="folder-per-genre audio tree (e.g. GTZAN's genres/)")
    run.add_argument("--seeds", nargs="+", type=int, metavar="N", help="seeds to run (overrides run.seeds)")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override one config value, e.g. --set train.epochs=5 (repeatable)")
    run.add_argument("--tracking-uri", metavar="URI",
                     help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite in ./mlruns)")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.set_defaults(handler=_run)


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
    ui.add_argument("--tracking-uri", metavar="URI", help="store to show (default: sqlite in ./mlruns)")
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
