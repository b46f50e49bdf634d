"""Options shared by several verbs."""

from __future__ import annotations

DEFAULT_EXPERIMENT = "default"


def add_experiment_options(parser) -> None:
    """The options that choose and adjust an experiment, shared by `run` and `tune`."""
    parser.add_argument("--experiment", default=DEFAULT_EXPERIMENT, metavar="FILE",
                        help="experiment TOML file or bundled name (default: %(default)s)")
    parser.add_argument("--data-dir", metavar="DIR", help="folder-per-genre audio tree (e.g. GTZAN's genres/)")
    parser.add_argument("--seeds", nargs="+", type=int, metavar="N", help="seeds (overrides run.seeds)")
    add_split_and_override_options(parser)
    add_tracking_option(parser)


def add_split_and_override_options(parser) -> None:
    """``--split-dir`` and ``--set``: shared by the verbs that train and by `data verify`."""
    parser.add_argument("--split-dir", metavar="DIR",
                        help="split by the track lists DIR/{train,valid,test}.txt (sets split.protocol=files)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config value, e.g. --set train.epochs=5 (repeatable)")


def add_tracking_option(parser) -> None:
    parser.add_argument("--tracking-uri", metavar="URI",
                        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite in ./mlruns)")


def add_batch_options(parser) -> None:
    """Which batch of training runs a verb reads: by experiment and batch id, or the latest."""
    parser.add_argument("--experiment", metavar="NAME",
                        help="MLflow experiment: the experiment file's name (default: the experiment of "
                        "the most recent training batch in the store)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--batch", metavar="ID", help="the batch_id of one `run` invocation")
    which.add_argument("--latest", action="store_true",
                       help="the batch of the most recently started training run (the default)")
