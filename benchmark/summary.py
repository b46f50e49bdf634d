"""The table ``run`` prints at the end, and where to look next."""

from __future__ import annotations

import shlex
from dataclasses import asdict
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from benchmark.redaction import redact

if TYPE_CHECKING:
    from benchmark.runner import BatchResult, RunSummary


def summary_table(rows: list[RunSummary]):
    """A pandas DataFrame with one row per (model, seed[, fold]) run."""
    import pandas as pd

    table = pd.DataFrame([asdict(row) for row in rows])
    folds = ["fold"] if "fold" in table and table["fold"].notna().any() else []
    return table[["model", "seed", *folds, "test_accuracy", "macro_f1", "parameters", "train_seconds"]]


def seed_spread(table):
    """Per model: runs, mean ± standard deviation and the 95% t-interval of the test figures.

    The spread is over every run of the model: its seeds, and its folds under ``kfold``. The
    interval is the report's (:func:`benchmark.report.stats.mean_interval`), clipped to [0, 1].
    """
    from benchmark.report.stats import mean_interval

    grouped = table.groupby("model", sort=False)
    spread = grouped[["test_accuracy", "macro_f1"]].agg(["mean", "std"])
    result = grouped.size().rename("runs").reset_index()
    for metric in ("test_accuracy", "macro_f1"):
        result[metric] = [
            f"{mean:.4f} ± {std:.4f}" for mean, std in spread[metric][["mean", "std"]].itertuples(index=False)
        ]
    intervals = grouped["test_accuracy"].apply(mean_interval)
    result["accuracy_95%_ci"] = [
        f"[{max(low, 0.0):.4f}, {min(high, 1.0):.4f}]" for low, high in intervals.to_numpy()
    ]
    result["train_seconds"] = grouped["train_seconds"].mean().map("{:.1f}".format).to_numpy()
    return result


def print_summary(outcome: BatchResult, *, experiment_name: str) -> None:
    """Print the per-run table, per-model mean/std when several seeds ran, the failed units
    (``--keep-going``) with the command that reruns them, and the UI command."""
    print()
    print(f"experiment {experiment_name!r}, batch {outcome.batch_id}"
          + (f" ({outcome.reused} units finished before this resume)" if outcome.reused else ""))
    if outcome.runs:
        _print_runs(outcome)
    if outcome.failures:
        print()
        print(f"{len(outcome.failures)} unit(s) FAILED:")
        for failure in outcome.failures:
            run = f" (run {failure.run_id})" if failure.run_id else ""
            print(f"  {failure.model} seed {failure.seed} split {failure.split_index}{run}: {failure.reason}")
        print(f"run them again: {outcome.resume_command}   (with the batch's settings; after fixing a setting, "
              "add the fixed --experiment FILE and --set values)")
    print()
    uri = redact(outcome.tracking_uri)  # a tracking server's password is never printed
    if urlparse(uri).scheme in ("http", "https"):
        print(f"results: {uri}/#/experiments/{outcome.experiment_id}")
    else:
        print("results: python -m benchmark ui   (or: mlflow ui --backend-store-uri "
              f"{shlex.quote(uri)} --host 127.0.0.1)")


def _print_runs(outcome: BatchResult) -> None:
    table = summary_table(outcome.runs)
    formatters = {
        "test_accuracy": "{:.4f}".format,
        "macro_f1": "{:.4f}".format,
        "parameters": "{:,}".format,
        "train_seconds": "{:.1f}".format,
    }
    print(table.to_string(index=False, formatters=formatters))
    if table.groupby("model").size().max() > 1:
        print()
        over = "folds and seeds" if "fold" in table else "seeds"
        print(f"over {over} (mean ± standard deviation, 95% confidence interval of the mean):")
        print(seed_spread(table).to_string(index=False))
