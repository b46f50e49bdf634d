"""Options shared by several verbs."""

from __future__ import annotations

from benchmark.backend import BACKENDS

DEFAULT_EXPERIMENT = "default"


def add_experiment_options(parser, *, experiment_default: str | None = DEFAULT_EXPERIMENT,
                           tracking_help: str | None = None) -> None:
    """The options that choose and adjust an experiment, shared by `run` and `tune`.

    ``experiment_default=None`` lets a verb tell an experiment given from none (``run --resume``
    takes the batch's own); it then applies :data:`DEFAULT_EXPERIMENT` itself.
    """
    parser.add_argument("--experiment", default=experiment_default, metavar="FILE",
                        help=f"experiment TOML file or bundled name (default: {DEFAULT_EXPERIMENT})")
    parser.add_argument("--data-dir", metavar="DIR", help="folder-per-genre audio tree (e.g. GTZAN's genres/)")
    parser.add_argument("--seeds", nargs="+", type=int, metavar="N", help="seeds (overrides run.seeds)")
    add_split_and_override_options(parser)
    add_backend_option(parser)
    add_tracking_option(parser, tracking_help)


def add_backend_option(parser) -> None:
    """``--backend``: the Keras backend; it wins over ``run.backend``, wherever ``--set`` puts it."""
    parser.add_argument("--backend", choices=BACKENDS,
                        help="Keras backend to train on (overrides run.backend; default: KERAS_BACKEND, "
                        "else tensorflow)")


def experiment_overrides(args, *extra: str) -> list[str]:
    """The ``--set`` overrides, then ``extra``, then ``--backend``'s: flags win over ``--set``."""
    return [*args.overrides, *extra, *([f"run.backend={args.backend}"] if args.backend else [])]


def load_experiment_for(args, experiment: str, *extra: str):
    """The experiment the options name, with its Keras backend selected before Keras is imported.

    Checking model names imports the models, hence Keras, which picks its backend once, at
    import: so the file is read once without that check, the backend it asks for (``--backend``,
    ``run.backend``, else ``KERAS_BACKEND``) is selected, then it is read again with the check.
    """
    from benchmark.backend import select_backend
    from benchmark.config import load_experiment

    load = dict(data_dir=getattr(args, "data_dir", None), split_dir=getattr(args, "split_dir", None),
                seeds=getattr(args, "seeds", None))
    overrides = experiment_overrides(args, *extra)
    select_backend(load_experiment(experiment, overrides, check_models=False, **load).run.backend)
    return load_experiment(experiment, overrides, **load)


def add_split_and_override_options(parser) -> None:
    """``--split-dir`` and ``--set``: shared by the verbs that train and by `data verify`."""
    parser.add_argument("--split-dir", metavar="DIR",
                        help="split by the track lists DIR/{train,valid,test}.txt (sets split.protocol=files)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config value, e.g. --set train.epochs=5 (repeatable)")


def add_tracking_option(parser, help: str | None = None) -> None:
    parser.add_argument("--tracking-uri", metavar="URI",
                        help=help or "MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite in ./mlruns)")


def add_batch_options(parser) -> None:
    """Which batch of training runs a verb reads: by experiment and batch id, or the latest."""
    parser.add_argument("--experiment", metavar="NAME",
                        help="MLflow experiment: the experiment file's name (default: the experiment of "
                        "the most recent training batch in the store)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--batch", metavar="ID", help="the batch_id of one `run` invocation")
    which.add_argument("--latest", action="store_true",
                       help="the batch of the most recently started training run (the default)")


def add_executor_options(parser, what: str) -> None:
    """``--executor`` and the Ray options; ``what`` is what one task runs (a unit, a worker)."""
    parser.add_argument("--executor", choices=("local", "ray"), default="local",
                        help=f"run each {what} here, or as a Ray task (pip install -e '.[ray]') (default: local)")
    ray = parser.add_argument_group("with --executor ray")
    ray.add_argument("--address", metavar="ADDR",
                     help="Ray cluster to join (default: $RAY_ADDRESS, else a local Ray for this command)")
    ray.add_argument("--cpus-per-unit", type=float, default=1, metavar="N",
                     help=f"CPUs each {what} holds (default: %(default)s)")
    ray.add_argument("--gpus-per-unit", type=float, default=0, metavar="N",
                     help=f"GPUs each {what} holds (default: %(default)s)")
    if what == "unit":
        ray.add_argument("--max-concurrent", type=int, metavar="N",
                         help="units running at once (default: as the cluster's resources allow)")


def ray_options(args):
    """``--executor ray``'s settings (:class:`benchmark.distributed.RayOptions`); None for local."""
    from benchmark.errors import BenchmarkError

    max_concurrent = getattr(args, "max_concurrent", None)
    if args.executor != "ray":
        if args.address is not None or max_concurrent is not None:
            raise BenchmarkError("--address and --max-concurrent go with --executor ray")
        return None
    if args.cpus_per_unit <= 0 or args.gpus_per_unit < 0 or (max_concurrent is not None and max_concurrent < 1):
        raise BenchmarkError("--cpus-per-unit must be above 0, --gpus-per-unit at least 0, --max-concurrent at "
                             "least 1")
    from benchmark.distributed import RayOptions

    return RayOptions(address=args.address, cpus_per_unit=args.cpus_per_unit, gpus_per_unit=args.gpus_per_unit,
                      max_concurrent=max_concurrent)
