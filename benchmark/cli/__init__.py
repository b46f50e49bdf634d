"""The command line: a thin layer over the pipeline's functions.

Verbs that train live in :mod:`.training`, data set tools in :mod:`.data`, verbs that read
results in :mod:`.results`, options they share in :mod:`.options`.

Only the standard library is imported at start-up, so ``--help`` answers at once; each verb
imports what it needs when it runs. A :class:`BenchmarkError`, or the disk refusing a file (full,
read-only, no permission), becomes one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence

from benchmark import interrupts
from benchmark.cli import data, profile, results, training, weights
from benchmark.errors import BenchmarkError, refused_by_storage
from benchmark.redaction import install_log_redaction, redact

EXIT_USER_ERROR = 2
#: Ctrl-C; SIGTERM gives 143 (128 + the signal's number, as shells do).
EXIT_INTERRUPTED = 130


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, run the chosen verb, and return the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr
    )
    # Each new network is traced afresh by design; TensorFlow's retracing advice is noise here.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    # URLs with a password (a PostgreSQL storage, a tracking server) are user input: no log line
    # and no error line may show the password, whichever module wrote it.
    install_log_redaction()
    with interrupts.handled():
        return _run_verb(args)


def _run_verb(args) -> int:
    try:
        return args.handler(args) or 0
    except BenchmarkError as error:
        _print_notes(error)
        print(f"error: {redact(str(error))}", file=sys.stderr)  # the last line, as always
        return EXIT_USER_ERROR
    except OSError as error:
        # A full disk, a read-only folder, no permission (writing a cache entry in a worker, a
        # report, an export): the user's to fix, so one line too. Other OS errors are bugs.
        refused = refused_by_storage(error)
        if refused is None:
            raise
        _print_notes(error)
        print(f"error: {redact(refused)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt as interrupted:
        signum = getattr(interrupted, "signum", signal.SIGINT)
        _print_notes(interrupted)
        print(f"interrupted ({signal.Signals(signum).name})", file=sys.stderr)
        return 128 + signum


def _print_notes(error: BaseException) -> None:
    """What the pipeline added to an error for the user (how to resume a batch), one line each."""
    for note in getattr(error, "__notes__", ()):
        print(redact(note), file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every verb."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmark",
        description="Train and compare music genre classifiers on spectrograms, tracked in MLflow.",
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    # In the order of a user's path: train, tune, compare, ship.
    training.add_run(verbs)
    training.add_tune(verbs)
    training.add_list(verbs)
    data.add_data(verbs)
    weights.add_weights(verbs)
    results.add_report(verbs)
    results.add_ui(verbs)
    results.add_promote(verbs)
    results.add_predict(verbs)
    results.add_latency(verbs)
    profile.add_profile(verbs)
    return parser
