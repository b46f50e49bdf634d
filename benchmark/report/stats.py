"""The report's numbers: leaderboard, confidence intervals, significance tests, class-level views.

Pure functions of pandas frames (as :mod:`benchmark.report.collect` reads them); statistics come
from scipy and statsmodels. Missing values stay NaN here and are shown as missing by the renderer.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats

ACCURACY = "metrics.test_accuracy"
#: Leaderboard columns that are a plain mean over the model's runs: column -> MLflow metric.
MEAN_COLUMNS = {
    "test_macro_f1_mean": "metrics.test_macro_f1",
    # Runs on segments: accuracy per segment, before the vote that gives the clip-level figures.
    "segment_accuracy_mean": "metrics.test_segment_accuracy",
    "val_accuracy_mean": "metrics.final_val_accuracy",
    "parameters": "metrics.parameters",
    "train_seconds_mean": "metrics.train_seconds",
    "inference_ms_per_clip_mean": "metrics.test_inference_ms_per_clip",
    "epochs_mean": "metrics.epochs_run",
}
CONFIDENCE = 0.95
MCNEMAR = "McNemar exact"
PAIRED_T = "paired t"


def mean_interval(values: pd.Series, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Student-t confidence interval of the mean of ``values`` (NaNs dropped).

    Needs two values; ``(nan, nan)`` with fewer. Identical values give a zero-width interval
    (scipy's formula would divide by a zero standard error).
    """
    values = pd.Series(values, dtype=float).dropna()
    if len(values) < 2:
        return (np.nan, np.nan)
    mean, sem = values.mean(), stats.sem(values)
    if sem == 0:
        return (mean, mean)
    low, high = stats.t.interval(confidence, df=len(values) - 1, loc=mean, scale=sem)
    return (float(low), float(high))


#: The leaderboard's groups, in order; a kind not listed here follows them.
KIND_ORDER = ("network", "combined", "classical")


def leaderboard(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per model, grouped by kind (network, combined, classical, ...), best mean test
    accuracy first within a group; ``best`` marks the leader(s) of the whole batch.

    Every run counts as one observation (seeds x folds); runs missing a metric are left out of
    that metric's mean, and ``runs``/``finished`` say how many there were. The confidence
    interval of the mean test accuracy is clipped to [0, 1].
    """
    grouped = runs.groupby("model", sort=False)
    accuracy = grouped[ACCURACY]
    intervals = accuracy.apply(mean_interval)
    board = pd.DataFrame({
        "kind": grouped["kind"].first() if "kind" in runs else "network",
        "input": grouped["input"].first() if "input" in runs else "",
        "runs": grouped.size(),
        "finished": grouped["status"].apply(lambda status: int((status == "FINISHED").sum())),
        "test_accuracy_n": accuracy.count(),
        "test_accuracy_mean": accuracy.mean(),
        "test_accuracy_std": accuracy.std(),
        # Accuracy lives in [0, 1]; with few, spread-out runs the t-interval can reach past an end.
        "test_accuracy_ci_low": intervals.str[0].clip(lower=0.0),
        "test_accuracy_ci_high": intervals.str[1].clip(upper=1.0),
        "test_macro_f1_std": grouped["metrics.test_macro_f1"].std(),
    })
    for column, metric in MEAN_COLUMNS.items():
        board[column] = grouped[metric].mean()
    group = board["kind"].map(lambda kind: KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER))
    board = (board.assign(_group=group)
             .sort_values(["_group", "test_accuracy_mean"], ascending=[True, False], na_position="last",
                          kind="stable")
             .drop(columns="_group"))
    board["best"] = board["test_accuracy_mean"].notna() & (
        board["test_accuracy_mean"] == board["test_accuracy_mean"].max()
    )
    return board.rename_axis("model").reset_index()


def contingency_table(first: pd.DataFrame, second: pd.DataFrame) -> np.ndarray:
    """2x2 counts of per-clip correctness, clips matched by ``track_id``.

    Rows: the first model right, wrong; columns: the second model right, wrong. So ``[0, 1]``
    counts clips only the first got right and ``[1, 0]`` clips only the second got right.
    """
    joined = first[["correct"]].join(second[["correct"]], how="inner", lsuffix="_first", rsuffix="_second")
    table = pd.crosstab(joined["correct_first"], joined["correct_second"])
    return table.reindex(index=[1, 0], columns=[1, 0], fill_value=0).to_numpy()


def mcnemar_exact(table: np.ndarray):
    """statsmodels' exact McNemar test (a binomial test on the two discordant counts)."""
    from statsmodels.stats.contingency_tables import mcnemar

    return mcnemar(np.asarray(table), exact=True)


def pairwise_significance(runs: pd.DataFrame, predictions: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per pair of models: the test used, its sample, statistic and p-value.

    McNemar's exact test where the two models have runs on the same split with the same seed
    (and fold) and both logged per-clip predictions: the 2x2 tables of those runs are summed
    into one, so a clip tested under three seeds counts three times. Otherwise a paired t-test
    on test accuracy over the seeds/folds both models ran. ``p_holm`` adjusts for the number of
    pairs compared (Holm-Bonferroni).
    """
    rows = [_compare(runs, predictions, first, second)
            for first, second in combinations(list(dict.fromkeys(runs["model"])), 2)]
    columns = ["model_a", "model_b", "test", "units", "n", "only_a_right", "only_b_right",
               "statistic", "p_value", "p_holm"]
    table = pd.DataFrame(rows, columns=columns[:-1])
    table["p_holm"] = _holm(table["p_value"])
    return table


def _compare(runs, predictions, first: str, second: str) -> dict:
    row = {"model_a": first, "model_b": second}
    units = _prediction_units(runs[runs["model"] == first], predictions)
    other = _prediction_units(runs[runs["model"] == second], predictions)
    shared = sorted(set(units) & set(other))
    if shared:
        table = sum(contingency_table(predictions[units[u]], predictions[other[u]]) for u in shared)
        result = mcnemar_exact(table)
        return row | {"test": MCNEMAR, "units": len(shared), "n": int(table.sum()),
                      "only_a_right": int(table[0, 1]), "only_b_right": int(table[1, 0]),
                      "statistic": float(result.statistic), "p_value": float(result.pvalue)}
    paired = _paired_accuracies(runs, first, second)
    if len(paired) < 2:
        return row | {"test": None, "units": len(paired), "n": len(paired)}
    result = stats.ttest_rel(paired[first], paired[second])
    return row | {"test": PAIRED_T, "units": len(paired), "n": len(paired),
                  "statistic": float(result.statistic), "p_value": float(result.pvalue)}


def _prediction_units(runs: pd.DataFrame, predictions) -> dict[tuple, str]:
    """(split hash, seed, fold) -> run id, for runs with per-clip predictions."""
    usable = runs[runs["run_id"].isin(list(predictions)) & runs["seed"].notna()]
    return {
        (split_hash, int(seed), fold): run_id
        for split_hash, seed, fold, run_id in zip(
            usable["tags.split_hash"], usable["seed"], usable["fold"], usable["run_id"], strict=True
        )
    }


def _paired_accuracies(runs: pd.DataFrame, first: str, second: str) -> pd.DataFrame:
    """Test accuracy of both models on each (seed, fold) they both have it for."""
    wide = runs[runs["model"].isin([first, second])].pivot_table(
        index=["seed", "fold"], columns="model", values=ACCURACY, aggfunc="mean"
    )
    return wide.reindex(columns=[first, second]).dropna()


def _holm(p_values: pd.Series) -> pd.Series:
    from statsmodels.stats.multitest import multipletests

    adjusted = pd.Series(np.nan, index=p_values.index)
    tested = p_values.dropna()
    if len(tested):
        adjusted[tested.index] = multipletests(tested, method="holm")[1]
    return adjusted


def per_class_f1(runs: pd.DataFrame, genres: list[str] | None = None) -> pd.DataFrame:
    """Mean test F1 per model (rows) and genre (columns) from the ``test_f1_<genre>`` metrics."""
    prefix = "metrics.test_f1_"
    columns = [column for column in runs if column.startswith(prefix)]
    table = runs.groupby("model", sort=False)[columns].mean()
    table.columns = [column.removeprefix(prefix) for column in columns]
    if genres:  # the confusion matrices' order, which is the label encoder's
        ordered = [genre for genre in genres if genre in table]
        table = table[ordered + [genre for genre in table if genre not in ordered]]
    return table


def summed_confusions(runs: pd.DataFrame, confusions: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Per model, the confusion counts summed over its runs (models without any are left out)."""
    summed = {}
    for model, group in runs.groupby("model", sort=False):
        frames = [confusions[run_id] for run_id in group["run_id"] if run_id in confusions]
        if frames:
            order = list(frames[0].index)
            total = pd.concat(frames).groupby(level=0).sum().reindex(index=order, columns=order).fillna(0)
            total.index.name, total.columns.name = "true", "predicted"
            summed[model] = total.astype(int)
    return summed


def row_normalised(confusion: pd.DataFrame) -> pd.DataFrame:
    """Each true genre's row as fractions of its clips (NaN for a genre with no test clips)."""
    totals = confusion.sum(axis=1).replace(0, np.nan)
    return confusion.div(totals, axis=0)


def most_confused_pairs(confusion: pd.DataFrame, k: int = 3) -> pd.DataFrame:
    """The ``k`` largest off-diagonal counts: true genre, predicted genre, count, share of the row."""
    pairs = confusion.stack().rename("count").reset_index()
    pairs = pairs[(pairs["true"] != pairs["predicted"]) & (pairs["count"] > 0)]
    top = pairs.nlargest(k, "count", keep="first")
    top["share"] = top["count"] / top["true"].map(confusion.sum(axis=1))
    return top.reset_index(drop=True)


def curve_bands(histories: pd.DataFrame) -> pd.DataFrame:
    """Per model, metric and epoch: mean, min, max and number of runs over its seeds/folds."""
    return (
        histories.groupby(["model", "metric", "epoch"], sort=False)["value"]
        .agg(["mean", "min", "max", "count"])
        .reset_index()
    )


@dataclass
class Analysis:
    """Everything the report shows about a batch, computed once."""

    board: pd.DataFrame
    significance: pd.DataFrame
    f1: pd.DataFrame
    confusions: dict[str, pd.DataFrame]
    confused_pairs: dict[str, pd.DataFrame]
    bands: pd.DataFrame


def analyse(runs: pd.DataFrame, histories: pd.DataFrame, confusions: dict[str, pd.DataFrame],
            predictions: dict[str, pd.DataFrame]) -> Analysis:
    """The leaderboard, significance tests, per-class and confusion views and curves of one batch."""
    summed = summed_confusions(runs, confusions)
    genres = list(next(iter(summed.values())).index) if summed else None
    return Analysis(
        board=leaderboard(runs),
        significance=pairwise_significance(runs, predictions),
        f1=per_class_f1(runs, genres),
        confusions=summed,
        confused_pairs={model: most_confused_pairs(matrix) for model, matrix in summed.items()},
        bands=curve_bands(histories),
    )
