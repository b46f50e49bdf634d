"""The members' runs of a batch's ensembles, read back from MLflow with their logged predictions.

A member run is a FINISHED, not superseded training run of the batch whose ``unit_key`` is the
unit's key under the batch's current settings: what a resume keeps. Its tables are its
``validation_predictions.csv`` (what the ensemble is chosen on) and ``predictions.csv``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from benchmark.artifacts import VALIDATION_PREDICTIONS
from benchmark.batch import (
    SPLIT_INDEX_TAG,
    SUPERSEDED_TAG,
    UNIT_KEY_TAG,
    config_hash,
    unit_key,
    unit_settings,
)
from benchmark.config import ExperimentConfig
from benchmark.errors import BenchmarkError
from benchmark.unit import Unit

TEST_PREDICTIONS = "predictions.csv"


def member_runs(client, config: ExperimentConfig, members: Sequence[str], experiment_id: str,
                batch_id: str) -> dict[Unit, object]:
    """``{unit: run}`` of the batch's finished member runs made with the current settings."""
    from benchmark import tracking

    keys = {name: config_hash(unit_settings(config, name)) for name in members}
    runs = client.search_runs([experiment_id], filter_string=tracking.batch_runs_filter(batch_id, finished=True),
                              max_results=10000)
    found = {}
    for run in runs:
        tags = run.data.tags
        if tags.get("model") not in keys or SUPERSEDED_TAG in tags or SPLIT_INDEX_TAG not in tags:
            continue
        unit = Unit(tags["model"], int(tags["seed"]), int(tags[SPLIT_INDEX_TAG]))
        if tags.get(UNIT_KEY_TAG) == unit_key(unit, keys[unit.model]):
            found[unit] = run
    return found


def require_validation_predictions(client, runs: Iterable) -> None:
    """A user error naming the runs that logged no validation predictions (from before they were)."""
    lacking = [run for run in runs
               if VALIDATION_PREDICTIONS not in {item.path for item in client.list_artifacts(run.info.run_id)}]
    if lacking:
        names = ", ".join(f"{run.data.tags['model']} seed {run.data.tags['seed']} split "
                          f"{run.data.tags.get(SPLIT_INDEX_TAG, '0')} (run {run.info.run_id})" for run in lacking[:5])
        more = f" and {len(lacking) - 5} more" if len(lacking) > 5 else ""
        raise BenchmarkError(
            f"the ensemble needs each member's {VALIDATION_PREDICTIONS}, and {len(lacking)} member run(s) lack it "
            f"(logged before it existed): {names}{more}; re-run those units in a new batch (`python -m benchmark "
            "run --all --experiment ...`), or leave [ensemble] out of this one")


def read_tables(client, run) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A member run's validation and test predictions (track ids as text)."""
    from benchmark.tracking import quiet_mlflow

    tables = []
    with tempfile.TemporaryDirectory(prefix="benchmark-ensemble-") as folder, quiet_mlflow():
        for artifact in (VALIDATION_PREDICTIONS, TEST_PREDICTIONS):
            try:
                path = client.download_artifacts(run.info.run_id, artifact, folder)
            except Exception:  # noqa: BLE001  MLflow raises its own types for a missing artifact
                require_validation_predictions(client, [run])
                raise
            tables.append(pd.read_csv(Path(path), dtype={"track_id": str}))
    return tables[0], tables[1]
