"""The report's ensemble section: the ensemble against the best single model, and its members.

Pure functions of the frames the report already has (:mod:`benchmark.report.collect` reads each
ensemble run's ``weight.<member>`` params with the rest): how often each model was chosen over
the (seed, split) ensembles and with what weight, and McNemar's test of the ensemble against the
single model with the highest mean test accuracy, on the same test clips.
"""

from __future__ import annotations

import pandas as pd

ENSEMBLE_KIND = "ensemble"
_WEIGHT = "params.weight."


def ensemble_choices(runs: pd.DataFrame) -> pd.DataFrame:
    """Per candidate model: in how many ensemble runs it was chosen, and its mean weight over all
    of them (0 where not chosen) and over those that chose it. Empty without ensemble runs."""
    ensembles = runs[(runs["kind"] == ENSEMBLE_KIND) & (runs["status"] == "FINISHED")]
    columns = [column for column in runs if column.startswith(_WEIGHT)]
    if ensembles.empty or not columns:
        return pd.DataFrame(columns=["model", "chosen", "ensembles", "mean_weight", "weight_when_chosen"])
    weights = ensembles[columns].apply(pd.to_numeric, errors="coerce")
    table = pd.DataFrame({
        "model": [column.removeprefix(_WEIGHT) for column in columns],
        "chosen": weights.notna().sum().to_numpy(),
        "ensembles": len(ensembles),
        "mean_weight": weights.fillna(0.0).mean().to_numpy(),
        "weight_when_chosen": weights.mean().to_numpy(),
    })
    return table.sort_values(["mean_weight", "model"], ascending=[False, True]).reset_index(drop=True)


def against_best_single(board: pd.DataFrame, significance: pd.DataFrame) -> dict | None:
    """The ensemble, the best single model (highest mean test accuracy) and their test, or None."""
    ensembles = board[board["kind"] == ENSEMBLE_KIND]
    singles = board[(board["kind"] != ENSEMBLE_KIND) & board["test_accuracy_mean"].notna()]
    if ensembles.empty or singles.empty:
        return None
    ensemble = ensembles.iloc[0]
    best = singles.loc[singles["test_accuracy_mean"].idxmax()]
    pair = significance[((significance["model_a"] == ensemble["model"]) & (significance["model_b"] == best["model"]))
                        | ((significance["model_b"] == ensemble["model"]) & (significance["model_a"] == best["model"]))]
    test = pair.iloc[0].to_dict() if not pair.empty else {}
    ensemble_first = test.get("model_a") == ensemble["model"]
    return {"ensemble": ensemble["model"], "best": best["model"],
            "ensemble_accuracy": ensemble["test_accuracy_mean"], "best_accuracy": best["test_accuracy_mean"],
            "test": test.get("test"), "n": test.get("n"), "p_value": test.get("p_value"),
            "only_ensemble_right": test.get("only_a_right" if ensemble_first else "only_b_right"),
            "only_best_right": test.get("only_b_right" if ensemble_first else "only_a_right")}


def ensemble_section(runs: pd.DataFrame, board: pd.DataFrame, significance: pd.DataFrame) -> str | None:
    """The Markdown section, or None where the batch has no ensemble."""
    from benchmark.report.sections import MISSING, number, p_value, table

    versus = against_best_single(board, significance)
    if versus is None:
        return None
    choices = ensemble_choices(runs)
    test = versus["test"] or "no test (too few paired runs)"
    lines = [
        "## Ensemble",
        f"One ensemble per (seed, split), its members and weights chosen on that split's validation "
        f"predictions alone. Mean test accuracy **{number(versus['ensemble_accuracy'])}** against "
        f"**{number(versus['best_accuracy'])}** for the best single model, `{versus['best']}`: "
        f"{test}, p = {p_value(versus['p_value'])} on n = {number(versus['n'], '.0f')} clip tests "
        f"(only the ensemble right: {number(versus['only_ensemble_right'], '.0f')}, only "
        f"`{versus['best']}` right: {number(versus['only_best_right'], '.0f')}).",
    ]
    if not choices.empty:
        display = pd.DataFrame({
            "model": choices["model"],
            "chosen in": [f"{chosen} of {total}" for chosen, total in zip(choices["chosen"], choices["ensembles"])],
            "mean weight": choices["mean_weight"].map(lambda value: number(value, ".3f")),
            "weight when chosen": choices["weight_when_chosen"].map(
                lambda value: MISSING if pd.isna(value) else number(value, ".3f")),
        })
        lines += [table(display), "*Mean weight counts an ensemble that left the model out as 0.*"]
    return "\n\n".join(lines)
