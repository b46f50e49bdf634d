"""The ``profile`` verb: where one unit per model spends its time and memory, against the floors.

Heavy imports stay inside the handler (see :mod:`benchmark.cli`).
"""

from __future__ import annotations

from benchmark.cli.options import add_experiment_options, experiment_overrides, load_experiment_for

#: Epochs each network trains for, unless --epochs says otherwise: enough to see a steady epoch.
DEFAULT_EPOCHS = 2
#: Training clips of --synthetic-inputs, unless --clips says otherwise.
DEFAULT_CLIPS = 256


def add_profile(verbs) -> None:
    profile = verbs.add_parser(
        "profile",
        help="time each stage of one run per model (and its peak memory) against bare Keras and a plain FFT",
        description="Run the experiment's pipeline once (first seed, first split, one run per model) and report "
        "per stage its seconds and peak memory: start-up, data, extraction (clips/s), input gathering, fit "
        "(s/epoch, samples/s), evaluation and MLflow logging. Beside each stands its floor: a bare model.fit "
        "of the same network on the same arrays, and a plain batched STFT of the same clips. Features go to an "
        "empty temporary cache and runs to a temporary tracking store unless told otherwise.",
    )
    profile.add_argument("--models", nargs="+", metavar="NAME",
                         help="these models (default: the experiment's run.models)")
    # A profile's runs are measurements, not results: they go to a temporary store unless a store is
    # named on the command line ($MLFLOW_TRACKING_URI alone is not enough), so its help says so.
    add_experiment_options(profile, tracking_help="log the runs to this MLflow store (default: a temporary "
                           "store, removed at the end)")
    profile.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS, metavar="N",
                         help="epochs for every network, whatever the experiment sets (default: %(default)s)")
    profile.add_argument("--json", metavar="FILE", help="also write the whole profile to FILE as JSON")
    profile.add_argument("--warm-cache", action="store_true",
                         help="read and fill the usual feature cache (default: extract into an empty one)")
    profile.add_argument("--synthetic-inputs", action="store_true",
                         help="no audio: fit each network on random float16 inputs of the experiment's input shape")
    profile.add_argument("--clips", type=int, default=DEFAULT_CLIPS, metavar="N",
                         help="with --synthetic-inputs: training clips (default: %(default)s; a quarter as "
                         "many again for validation)")
    profile.add_argument("--no-floors", action="store_true",
                         help="the harness alone: no bare fits and no FFT floor (comparing settings of one "
                         "network, whose floor was measured once already)")
    profile.add_argument("--no-progress", action="store_true", help="no progress bars")
    profile.set_defaults(handler=_profile)


def _profile(args) -> int:
    import time

    from benchmark.profiling.memory import process_started_at

    # Start-up runs from the process's start (or, where unknown, from here) until the pipeline
    # begins: interpreter, imports, reading the experiment.
    started = process_started_at()
    from_process_start, started = started is not None, started or time.perf_counter()
    import json
    from pathlib import Path

    from benchmark.errors import BenchmarkError

    if args.epochs < 1:
        raise BenchmarkError(f"--epochs must be at least 1, got {args.epochs}")
    if args.clips < 1:
        raise BenchmarkError(f"--clips must be at least 1, got {args.clips}")
    if args.synthetic_inputs and (args.warm_cache or args.data_dir):
        raise BenchmarkError("--synthetic-inputs reads no audio: --warm-cache and --data-dir do not apply")
    config, models = _experiment(args)
    from benchmark.profiling.report import format_table
    from benchmark.profiling.session import ProfileOptions, run_profile

    options = ProfileOptions(
        epochs=args.epochs, synthetic_inputs=args.synthetic_inputs, clips=args.clips, warm_cache=args.warm_cache,
        tracking_uri=args.tracking_uri, progress=not args.no_progress, floors=not args.no_floors,
        arguments={"experiment": args.experiment, "models": args.models, "set": experiment_overrides(args), "seeds": args.seeds,
                   "data_dir": args.data_dir, "split_dir": args.split_dir},
    )
    profile = run_profile(config, models, options, started=started, from_process_start=from_process_start)
    print(format_table(profile))
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(profile, indent=2) + "\n")
        print(f"\nwritten: {path}")
    return 0


def _experiment(args):
    """The experiment with every model's epochs set to --epochs, and the models to profile."""
    config = load_experiment_for(args, args.experiment)  # its backend selected before Keras is imported
    from benchmark.models import get_model_spec

    models = args.models or list(config.run.models)
    for name in models:
        get_model_spec(config.architecture_of(name))  # unknown names fail here, before any data is touched
    # --epochs wins over [train] and over any model's own epochs (paper.toml's cnn2d sets 50).
    epochs = [f"train.epochs={args.epochs}",
              *(f"model.{name}.epochs={args.epochs}" for name in models if config.model_settings(name).epochs)]
    return load_experiment_for(args, args.experiment, *epochs), models
