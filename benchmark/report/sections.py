"""The report's words and tables, as Markdown: one function per section.

Numbers are formatted here and only here; a missing value (a failed run, a metric never
logged, a test that could not be run) is shown as ``—``.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd

from benchmark.report.collect import Batch
from benchmark.report.provenance import provenance_facts, run_url, runs_table
from benchmark.report.render import LEADERBOARD_TITLE
from benchmark.report.stats import CONFIDENCE, Analysis

MISSING = "—"
SIGNIFICANCE_LEVEL = 0.05


def number(value, spec: str = ".4f") -> str:
    """``value`` formatted with ``spec``, or ``—`` where it is missing."""
    if pd.isna(value):
        return MISSING
    return format(value, spec)


def p_value(value) -> str:
    """A p-value to four decimals (``<0.0001`` below that)."""
    if pd.isna(value):
        return MISSING
    return "<0.0001" if value < 1e-4 else f"{value:.4f}"


def table(frame: pd.DataFrame) -> str:
    """A pipe table (pandas via tabulate), with pipes in cells escaped."""
    cells = frame.astype(str).apply(lambda column: column.str.replace("|", "\\|", regex=False))
    return cells.to_markdown(index=False, disable_numparse=True)


def header(batch: Batch, report_run_id: str) -> str:
    runs = batch.runs
    finished = int((runs["status"] == "FINISHED").sum())
    link = run_url(batch.tracking_uri, batch.experiment_id, report_run_id)
    logged = f"[{report_run_id}]({link})" if link else f"`{report_run_id}`"
    return "\n\n".join([
        f"# Comparison report: `{batch.experiment_name}`, batch `{batch.batch_id}`",
        f"{len(runs)} runs of {runs['model'].nunique()} models ({finished} finished), read from "
        f"`{batch.tracking_uri}` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. "
        f"This report is logged to MLflow as run {logged} (`report-{batch.batch_id}`).",
    ])


def leaderboard_section(batch: Batch, analysis: Analysis, figure: str) -> str:
    display = pd.DataFrame([_leaderboard_row(row) for row in analysis.board.itertuples(index=False)])
    if analysis.board["segment_accuracy_mean"].isna().all():
        display = display.drop(columns="segment accuracy")  # whole clips: no segment-level figure
    notes = (
        "Models are grouped by kind (the study's networks, the combined network, classical learners), "
        "each with the input it was given; all of them were scored on the same test clips. "
        "Per model over its runs (seeds × folds): test accuracy and macro F1 as mean ± standard "
        f"deviation, with a {CONFIDENCE:.0%} Student-t confidence interval of the mean accuracy "
        "(clipped to [0, 1]; one run gives no interval). ★ marks the highest mean test accuracy; "
        "whether its lead is significant is under *Pairwise significance*. Validation accuracy is "
        "at the last epoch; training time, inference time (per test clip, after warm-up) and "
        "epochs are means. With segments, accuracies are per clip after the vote, and segment "
        "accuracy is the mean accuracy per segment before it. "
        f"{MISSING} = missing (a failed run, or a metric never logged). The HTML table sorts by "
        "any column: click its header."
    )
    parts = [f"## {LEADERBOARD_TITLE}", table(display), notes, f"![Test accuracy of every run]({figure})",
             "*Dots: test accuracy of each run; diamond: mean; bar: 95% confidence interval.*"]
    unfinished = batch.runs[batch.runs["status"] != "FINISHED"]
    if not unfinished.empty:
        listed = ", ".join(f"{run.model} seed {number(run.seed, 'd')} ({run.status})"
                           for run in unfinished.itertuples())
        parts.append(f"**Not finished:** {listed}. Their missing metrics are left out of the means.")
    return "\n\n".join(parts)


def _leaderboard_row(row) -> dict[str, str]:
    """One model's leaderboard line, formatted."""
    unfinished = row.runs - row.finished
    runs = f"{row.runs} ({unfinished} not finished)" if unfinished else f"{row.runs}"
    return {
        "model": f"★ {row.model}" if row.best else row.model,
        "kind": row.kind,
        "input": row.input or MISSING,
        "runs": runs,
        "test accuracy": _mean_std(row.test_accuracy_mean, row.test_accuracy_std),
        f"{CONFIDENCE:.0%} CI": _interval(row.test_accuracy_ci_low, row.test_accuracy_ci_high,
                                          row.test_accuracy_n),
        "macro F1": _mean_std(row.test_macro_f1_mean, row.test_macro_f1_std),
        "segment accuracy": number(row.segment_accuracy_mean),
        "val accuracy": number(row.val_accuracy_mean),
        "parameters": number(row.parameters, ",.0f"),
        "train s": number(row.train_seconds_mean, ".1f"),
        "inference ms/clip": number(row.inference_ms_per_clip_mean, ".3f"),
        "epochs": number(row.epochs_mean, ".3g"),
    }


def _mean_std(mean, std) -> str:
    if pd.isna(mean):
        return MISSING
    return number(mean) if pd.isna(std) else f"{mean:.4f} ± {std:.4f}"


def _interval(low, high, n) -> str:
    if pd.isna(low):
        return "n=1: no interval" if n == 1 else MISSING
    return f"[{low:.4f}, {high:.4f}]"


def significance_section(analysis: Analysis) -> str:
    models = list(analysis.board["model"])
    title = "## Pairwise significance"
    if len(models) < 2:
        return f"{title}\n\nOne model: nothing to compare."
    tests = analysis.significance
    matrix = pd.DataFrame(MISSING, index=models, columns=models)
    for row in tests.itertuples(index=False):
        cell = _significance_cell(row)
        matrix.loc[row.model_a, row.model_b] = matrix.loc[row.model_b, row.model_a] = cell
    details = pd.DataFrame({
        "pair": tests["model_a"] + " vs " + tests["model_b"],
        "test": tests["test"].fillna("none (too few paired runs)"),
        "paired runs": tests["units"].map(lambda v: number(v, ".0f")),
        "n": tests["n"].map(lambda v: number(v, ".0f")),
        "only first right": tests["only_a_right"].map(lambda v: number(v, ".0f")),
        "only second right": tests["only_b_right"].map(lambda v: number(v, ".0f")),
        "statistic": tests["statistic"].map(lambda v: number(v, ".4g")),
        "p": tests["p_value"].map(p_value),
        "p (Holm)": tests["p_holm"].map(p_value),
    })
    intro = (
        "p-values of the difference between two models, the test named in each cell (bold: "
        f"p < {SIGNIFICANCE_LEVEL}). **McNemar exact** (statsmodels) compares per-clip test "
        "predictions, clips matched by track id, where both models ran on the same split with the "
        "same seed (and fold); the 2×2 tables of all such seeds are summed into one, so a clip "
        "tested under three seeds counts three times and *n* is clips × seeds. It tests whether "
        "the clips only one model gets right split evenly. Where no run pair shares split and "
        "seed (or predictions are missing), a **paired t** test (scipy) compares test accuracy "
        "over the seeds/folds both models ran; it needs two. *p (Holm)* corrects for the number "
        "of pairs compared."
    )
    matrix = matrix.rename_axis("model").reset_index()
    return "\n\n".join([title, intro, table(matrix), table(details)])


def _significance_cell(row) -> str:
    if not isinstance(row.test, str):
        return f"{MISSING} (too few paired runs)"
    text = p_value(row.p_value)
    if row.p_value < SIGNIFICANCE_LEVEL:
        text = f"**{text}**"
    return f"{text} ({row.test})"


def confusion_section(batch: Batch, analysis: Analysis, counts: str | None, normalised: str | None) -> str:
    title = "## Confusion matrices"
    if counts is None:
        return f"{title}\n\nNo run of this batch logged a confusion matrix."
    runs_per_model = batch.runs[batch.runs["run_id"].isin(list(batch.confusions))].groupby("model").size()
    summed = ", ".join(f"{model} {runs_per_model[model]}" for model in analysis.confusions)
    return "\n\n".join([
        title,
        "Rows: true genre; columns: predicted genre. Counts are summed over each model's runs "
        f"(runs per model: {summed}); the second figure divides each row by its total, so the "
        "diagonal is each genre's recall.",
        f"![Confusion matrices, counts]({counts})",
        f"![Confusion matrices, row-normalised]({normalised})",
    ])


def per_class_section(analysis: Analysis, heatmap: str | None) -> str:
    parts = ["## Per-class F1 and most confused genres"]
    if heatmap:
        parts += ["Mean test F1 per genre over each model's runs (`test_f1_<genre>` metrics).",
                  f"![Per-class F1]({heatmap})"]
        f1 = analysis.f1.apply(lambda column: column.map(lambda v: number(v, ".2f")))
        parts.append(table(f1.rename_axis("model").reset_index()))
    rows = []
    for model, pairs in analysis.confused_pairs.items():
        cells = [f"{p.true} → {p.predicted}: {p.count} ({p.share:.0%})" for p in pairs.itertuples()]
        rows.append([model, *(cells + [MISSING] * 3)[:3]])
    if rows:
        parts.append("The three largest off-diagonal counts of each model's summed confusion matrix, "
                     "true → predicted: clips (share of that true genre's clips).")
        parts.append(table(pd.DataFrame(rows, columns=["model", "most confused", "second", "third"])))
    if len(parts) == 1:
        parts.append("No run of this batch logged per-class F1 or a confusion matrix.")
    return "\n\n".join(parts)


def curves_section(figure: str | None) -> str:
    title = "## Training curves"
    if figure is None:
        return f"{title}\n\nNo run of this batch logged per-epoch metrics."
    return "\n\n".join([
        title,
        "Per epoch, each model's mean over its runs (line) and the range from the lowest to the "
        "highest run (band). Validation data is the split's validation part, never the test set.",
        f"![Training curves]({figure})",
    ])


def provenance_section(batch: Batch) -> str:
    facts = provenance_facts(batch.runs, tracking_uri=batch.tracking_uri,
                             experiment_name=batch.experiment_name, experiment_id=batch.experiment_id,
                             batch_id=batch.batch_id)
    runs = runs_table(batch.runs, tracking_uri=batch.tracking_uri, experiment_id=batch.experiment_id)
    if run_url(batch.tracking_uri, batch.experiment_id, "x"):
        how = "Each run id links to its page on the tracking server."
    else:
        how = ("To open a run, start the MLflow UI on this store with `python -m benchmark ui "
               f"--tracking-uri {batch.tracking_uri}` and search for its id.")
    return "\n\n".join(["## Provenance", table(facts), "Runs used:", table(runs), how])
