"""The comparison report: one batch of MLflow runs as a side-by-side comparison.

``write_report`` reads the batch from the tracking store alone (:mod:`.collect`), computes the
leaderboard and tests (:mod:`.stats`), draws the figures (:mod:`.figures`), writes the Markdown
(:mod:`.sections`) and the self-contained HTML (:mod:`.render`), and logs them all as the
artifacts of a ``report-<batch>`` run in the same experiment.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SUMMARY_COLUMNS = [
    "model", "kind", "input", "runs", "finished", "test_accuracy_n", "test_accuracy_mean", "test_accuracy_std",
    "test_accuracy_ci_low", "test_accuracy_ci_high", "test_macro_f1_mean", "test_macro_f1_std",
    "segment_accuracy_mean",
    "val_accuracy_mean", "parameters", "train_seconds_mean", "inference_ms_per_clip_mean",
    "epochs_mean", "best",
]


@dataclass(frozen=True)
class Report:
    """Where a report went: its folder, files, and the MLflow run holding copies of them."""

    experiment: str
    batch_id: str
    folder: Path
    files: tuple[Path, ...]
    run_id: str
    n_runs: int
    n_models: int

    @property
    def html(self) -> Path:
        return self.folder / "report.html"


def default_folder(experiment: str, batch_id: str) -> Path:
    """``reports/<experiment>/<batch>/`` under the working directory."""
    from benchmark.paths import slug

    return Path("reports") / slug(experiment) / batch_id


def write_report(
    experiment: str | None = None,
    *,
    batch: str | None = None,
    out: str | Path | None = None,
    tracking_uri: str | None = None,
) -> Report:
    """Write the comparison report of a batch and log it to MLflow.

    The batch is ``batch`` of ``experiment``; by default the latest batch, of the experiment of
    the most recent training run when ``experiment`` is None too.

    Files: ``report.md``, ``report.html`` (figures embedded), the figures as PNG and
    ``summary.csv`` (the leaderboard's numbers, one row per model). Raises
    :class:`~benchmark.errors.BenchmarkError` where there is no such experiment or batch, or the
    batch has no finished run.
    """
    from benchmark import tracking
    from benchmark.provenance import git_commit
    from benchmark.report.collect import load_batch
    from benchmark.report.stats import analyse

    batch_data = load_batch(experiment, batch, tracking_uri)
    experiment = batch_data.experiment_name
    analysis = analyse(batch_data.runs, batch_data.histories, batch_data.confusions, batch_data.predictions)
    folder = Path(out) if out else default_folder(experiment, batch_data.batch_id)
    folder.mkdir(parents=True, exist_ok=True)
    tags = {"run_kind": "report", "batch_id": batch_data.batch_id, "experiment": experiment,
            "git_commit": git_commit()}
    with tracking.tracked_run(batch_data.experiment_id, f"report-{batch_data.batch_id}", tags) as run_id:
        files = _write_files(folder, batch_data, analysis, run_id)
        _log_report(files, analysis)
    log.info("report of batch %s in %s (MLflow run %s)", batch_data.batch_id, folder, run_id)
    return Report(experiment=experiment, batch_id=batch_data.batch_id, folder=folder, files=tuple(files),
                  run_id=run_id, n_runs=len(batch_data.runs), n_models=len(batch_data.models))


def _write_files(folder: Path, batch_data, analysis, run_id: str) -> list[Path]:
    from benchmark.report import figures, sections
    from benchmark.report.render import render_html

    colours = figures.model_colours(batch_data.models)
    accuracy = figures.save(figures.accuracy_figure(batch_data.runs, analysis.board, colours), folder,
                            "test_accuracy.png")
    counts = normalised = heatmap = curves = None
    if analysis.confusions:
        counts = figures.save(figures.confusion_figure(analysis.confusions, normalised=False), folder,
                              "confusion_counts.png")
        normalised = figures.save(figures.confusion_figure(analysis.confusions, normalised=True), folder,
                                  "confusion_normalised.png")
    if not analysis.f1.empty and analysis.f1.notna().any().any():
        heatmap = figures.save(figures.f1_heatmap_figure(analysis.f1), folder, "per_class_f1.png")
    if not analysis.bands.empty:
        curves = figures.save(figures.curves_figure(analysis.bands, colours), folder, "training_curves.png")
    from benchmark.report.ensemble import ensemble_section

    ensemble = ensemble_section(batch_data.runs, analysis.board, analysis.significance)
    markdown = "\n\n".join([
        sections.header(batch_data, run_id),
        sections.leaderboard_section(batch_data, analysis, accuracy),
        *([ensemble] if ensemble else []),
        sections.significance_section(analysis),
        sections.confusion_section(batch_data, analysis, counts, normalised),
        sections.per_class_section(analysis, heatmap),
        sections.curves_section(curves),
        sections.provenance_section(batch_data),
    ]) + "\n"
    (folder / "report.md").write_text(markdown, encoding="utf-8")
    title = f"Comparison report: {batch_data.experiment_name}, batch {batch_data.batch_id}"
    (folder / "report.html").write_text(render_html(markdown, folder, title), encoding="utf-8")
    analysis.board[SUMMARY_COLUMNS].to_csv(folder / "summary.csv", index=False)
    written = ["report.md", "report.html", "summary.csv", accuracy, counts, normalised, heatmap, curves]
    return [folder / name for name in written if name]


def _log_report(files: list[Path], analysis) -> None:
    """Upload the report's files (only those: ``--out`` may name a folder holding others)."""
    import mlflow

    for path in files:
        mlflow.log_artifact(str(path))
    # The run's description in the MLflow UI: the leaderboard's headline, the rest one click away.
    best = analysis.board[analysis.board["best"]]
    headline = ", ".join(f"{row.model} {row.test_accuracy_mean:.4f}" for row in best.itertuples())
    mlflow.set_tag("mlflow.note.content",
                   f"Comparison report. Best mean test accuracy: {headline or 'none'}. "
                   "Open `report.html` under Artifacts for the whole comparison.")
