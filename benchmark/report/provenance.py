"""What the compared runs were: data, split, protocol, software, and a link to every run."""

from __future__ import annotations

from urllib.parse import urlparse

import pandas as pd

#: Protocol of runs that do not record ``split.protocol``: the study's own split.
DEFAULT_PROTOCOL = "paper"


def run_url(tracking_uri: str, experiment_id: str, run_id: str) -> str | None:
    """The run's page on a tracking server; ``None`` for a local store (no server to link to)."""
    if urlparse(tracking_uri).scheme not in ("http", "https"):
        return None
    return f"{tracking_uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


def _values(runs: pd.DataFrame, column: str) -> str:
    """The distinct values of a column, flagged when the runs disagree."""
    if column not in runs:
        return "not recorded"
    values = [str(v) for v in runs[column].dropna().unique() if str(v) != ""]
    if not values:
        return "not recorded"
    if len(values) == 1:
        return f"`{values[0]}`"
    return " / ".join(f"`{v}`" for v in values) + " (differs between runs)"


def provenance_facts(runs: pd.DataFrame, *, tracking_uri: str, experiment_name: str,
                     experiment_id: str, batch_id: str) -> pd.DataFrame:
    """Two columns, ``what`` and ``value`` (Markdown): where every number of the report came from."""
    protocol = (_values(runs, "params.split.protocol") if "params.split.protocol" in runs
                else f"`{DEFAULT_PROTOCOL}`")
    seeds = ", ".join(str(seed) for seed in sorted(runs["seed"].dropna().unique()))
    facts = {
        "tracking store": f"`{tracking_uri}`",
        "experiment": f"`{experiment_name}` (id {experiment_id})",
        "batch": f"`{batch_id}`",
        "data fingerprint": _values(runs, "tags.data_fingerprint"),
        "split hash": _values(runs, "tags.split_hash"),
        "protocol": protocol,
        "seeds": seeds or "not recorded",
    }
    if (runs["fold"] != "").any():
        facts["folds"] = ", ".join(sorted(runs["fold"].unique()))
    facts |= {
        "input": _values(runs, "params.input_shape") + " " + _values(runs, "params.features.representation"),
        "Keras backend": _values(runs, "tags.keras_backend"),
        "git commit": _values(runs, "tags.git_commit"),
        "Python": _values(runs, "tags.python_version"),
    }
    versions = sorted(column for column in runs if column.startswith("tags.version."))
    facts["package versions"] = ", ".join(
        f"{column.removeprefix('tags.version.')} {_values(runs, column)}" for column in versions
    ) or "not recorded"
    return pd.DataFrame({"what": list(facts), "value": list(facts.values())})


def runs_table(runs: pd.DataFrame, *, tracking_uri: str, experiment_id: str) -> pd.DataFrame:
    """One row per run used: model, seed (fold), status, test accuracy, name, start, id or link."""
    table = pd.DataFrame({
        "model": runs["model"],
        "seed": runs["seed"].astype("string").fillna("—"),
        "status": runs["status"],
        "test accuracy": runs["metrics.test_accuracy"].map(lambda v: "—" if pd.isna(v) else f"{v:.4f}"),
        "run name": runs.get("tags.mlflow.runName", pd.Series("", index=runs.index)).fillna(""),
        "started (UTC)": pd.to_datetime(runs["start_time"], utc=True).dt.strftime("%Y-%m-%d %H:%M:%S"),
        "run id": [_run_link(tracking_uri, experiment_id, run_id) for run_id in runs["run_id"]],
    })
    if (runs["fold"] != "").any():
        table.insert(2, "fold", runs["fold"])
    return table


def _run_link(tracking_uri: str, experiment_id: str, run_id: str) -> str:
    url = run_url(tracking_uri, experiment_id, run_id)
    return f"[{run_id}]({url})" if url else f"`{run_id}`"
