"""The comparison report, checked against the MLflow runs it was built from."""

from __future__ import annotations

import json
import re
import shutil
import statistics
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tests.helpers import GENRES, Planter, assert_user_error, run_cli

MODELS = {"fair": 0.6, "good": 0.9, "weak": 0.4}  # planted test accuracy of each model
SEEDS = (0, 1, 2)
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """An older batch, then batch ``new``: three models x three seeds and one FAILED run of ``weak``."""
    planter = Planter(tmp_path_factory.mktemp("planted"))
    planter.run("old", "ancient", 0, accuracy=0.5)
    for model, accuracy in MODELS.items():
        for seed in SEEDS:
            # Seeds differ by a clip or two, so the spread over seeds is not zero.
            planter.run("new", model, seed, accuracy=accuracy - 0.034 * seed, parameters=len(model) * 1000)
    planter.run("new", "weak", 3, status="FAILED", test_metrics=False, artifacts=False)
    return planter


@pytest.fixture(scope="module")
def report(planted, tmp_path_factory):
    from benchmark.report import write_report

    out = tmp_path_factory.mktemp("report")
    return write_report("planted", out=out, tracking_uri=planted.uri)


@pytest.fixture(scope="module")
def batch(planted, report):
    from benchmark.report.collect import load_batch

    return load_batch("planted", "new", planted.uri)


def batch_runs(planted, batch_id="new"):
    runs = planted.client.search_runs([planted.experiment_id], filter_string=f"tags.batch_id = '{batch_id}'")
    return [run for run in runs if run.data.tags.get("run_kind") != "report"]


def summary(report) -> pd.DataFrame:
    return pd.read_csv(report.folder / "summary.csv").set_index("model")


def test_summary_csv_equals_the_mlflow_metrics(planted, report):
    table = summary(report)
    runs = batch_runs(planted)
    assert set(table.index) == {run.data.tags["model"] for run in runs} == set(MODELS)
    columns = {"test_accuracy_mean": "test_accuracy", "test_macro_f1_mean": "test_macro_f1",
               "val_accuracy_mean": "final_val_accuracy", "parameters": "parameters",
               "train_seconds_mean": "train_seconds", "epochs_mean": "epochs_run",
               "inference_ms_per_clip_mean": "test_inference_ms_per_clip"}
    for model, row in table.iterrows():
        mine = [run for run in runs if run.data.tags["model"] == model]
        assert row["runs"] == len(mine)
        assert row["finished"] == sum(run.info.status == "FINISHED" for run in mine)
        for column, metric in columns.items():
            values = [run.data.metrics[metric] for run in mine if metric in run.data.metrics]
            assert row[column] == pytest.approx(statistics.mean(values)), (model, column)
        accuracies = [run.data.metrics["test_accuracy"] for run in mine
                      if "test_accuracy" in run.data.metrics]
        assert row["test_accuracy_n"] == len(accuracies) == len(SEEDS)
        assert row["test_accuracy_std"] == pytest.approx(statistics.stdev(accuracies))
        low, high = stats.t.interval(0.95, len(accuracies) - 1, loc=statistics.mean(accuracies),
                                     scale=stats.sem(accuracies))
        # The report clips the interval to accuracy's range [0, 1].
        expected = (max(low, 0.0), min(high, 1.0))
        assert (row["test_accuracy_ci_low"], row["test_accuracy_ci_high"]) == pytest.approx(expected)


def test_planted_better_model_is_marked_best(report):
    table = summary(report)
    assert table.index[table["best"]].tolist() == ["good"]
    assert table.index[0] == "good"  # the leaderboard is ordered by mean test accuracy
    markdown = (report.folder / "report.md").read_text()
    leaderboard = markdown.split("## Leaderboard")[1].split("##")[0]
    assert "★ good" in leaderboard and "★ fair" not in leaderboard and "★ weak" not in leaderboard


def test_failed_run_is_counted_and_shown_as_missing(planted, report):
    table = summary(report)
    assert (table.loc["weak", "runs"], table.loc["weak", "finished"]) == (4, 3)
    markdown = (report.folder / "report.md").read_text()
    leaderboard = {row["model"]: row for row in markdown_table(markdown, "Leaderboard", "model")}
    assert leaderboard["weak"]["runs"] == "4 (1 not finished)"
    assert "**Not finished:** weak seed 3 (FAILED)" in markdown
    failed = next(run for run in batch_runs(planted) if run.info.status == "FAILED")
    provenance = markdown.split("## Provenance")[1]
    assert re.search(r"\| FAILED +\| — +\| weak-seed3 +\|", provenance) and failed.info.run_id in provenance


def test_mcnemar_p_value_against_a_known_contingency_table():
    from benchmark.report.stats import MCNEMAR, pairwise_significance

    # 20 clips both right, 9 only the first right, 2 only the second right, 5 both wrong.
    first = [1] * 20 + [1] * 9 + [0] * 2 + [0] * 5
    second = [1] * 20 + [0] * 9 + [1] * 2 + [0] * 5
    clips = [f"clip{i}" for i in range(len(first))]
    predictions = {
        # The second run lists its clips in another order: they are matched by track id.
        "run-a": pd.DataFrame({"correct": first}, index=pd.Index(clips, name="track_id")),
        "run-b": pd.DataFrame({"correct": second}, index=pd.Index(clips, name="track_id")).iloc[::-1],
    }
    runs = pd.DataFrame({"run_id": ["run-a", "run-b"], "model": ["a", "b"], "seed": [0, 0], "fold": ["", ""],
                         "tags.split_hash": ["s", "s"], "metrics.test_accuracy": [29 / 36, 22 / 36]})
    result = pairwise_significance(runs, predictions).iloc[0]
    assert result["test"] == MCNEMAR
    assert (result["only_a_right"], result["only_b_right"], result["n"]) == (9, 2, 36)
    assert result["p_value"] == pytest.approx(stats.binomtest(2, 11, 0.5).pvalue)


def test_report_runs_mcnemar_on_the_logged_predictions(planted, batch):
    from benchmark.report.stats import pairwise_significance

    tests = pairwise_significance(batch.runs, batch.predictions).set_index(["model_a", "model_b"])
    assert set(tests["test"]) == {"McNemar exact"}
    # Independently: the two models' predictions.csv artifacts, joined on track id per seed.
    only_first = only_second = 0
    for seed in SEEDS:
        frames = []
        for model in ("fair", "good"):
            run = next(r for r in batch_runs(planted)
                       if r.data.tags["model"] == model and r.data.tags["seed"] == str(seed))
            path = planted.client.download_artifacts(run.info.run_id, "predictions.csv")
            frames.append(pd.read_csv(path).set_index("track_id")["correct"].rename(model))
        joined = pd.concat(frames, axis=1, join="inner")
        only_first += int(((joined["fair"] == 1) & (joined["good"] == 0)).sum())
        only_second += int(((joined["fair"] == 0) & (joined["good"] == 1)).sum())
    row = tests.loc[("fair", "good")]
    assert (row["only_a_right"], row["only_b_right"], row["units"]) == (only_first, only_second, len(SEEDS))
    expected = stats.binomtest(min(only_first, only_second), only_first + only_second, 0.5).pvalue
    assert row["p_value"] == pytest.approx(expected)


def markdown_table(markdown: str, section: str, first_header: str) -> list[dict[str, str]]:
    """The rows of the pipe table in ``## section`` whose first header is ``first_header``."""
    body = markdown.split(f"## {section}")[1].split("\n## ")[0]
    tables, current = [], []
    for line in body.splitlines() + [""]:
        if line.startswith("|"):
            current.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif current:
            tables.append(current)
            current = []
    headers, _, *rows = next(table for table in tables if table[0][0] == first_header)
    return [dict(zip(headers, row, strict=True)) for row in rows]


def test_holm_adjusted_p_values_are_statsmodels_holm_of_the_pairs(planted, batch, report):
    from statsmodels.stats.multitest import multipletests

    from benchmark.report.stats import pairwise_significance

    # Each pair's McNemar p-value, from the per-clip predictions joined by track and seed.
    runs = {(r.data.tags["model"], r.data.tags["seed"]): r.info.run_id for r in batch_runs(planted)}
    pairs, p_values = [("good", "fair"), ("good", "weak"), ("fair", "weak")], []
    for first, second in pairs:
        only_first = only_second = 0
        for seed in map(str, SEEDS):
            joined = batch.predictions[runs[first, seed]].join(
                batch.predictions[runs[second, seed]], how="inner", lsuffix="_a", rsuffix="_b")
            only_first += int(((joined["correct_a"] == 1) & (joined["correct_b"] == 0)).sum())
            only_second += int(((joined["correct_a"] == 0) & (joined["correct_b"] == 1)).sum())
        p_values.append(stats.binomtest(min(only_first, only_second), only_first + only_second, 0.5).pvalue)
    holm = multipletests(p_values, method="holm")[1]
    # Not vacuous: Holm differs here from both the raw p-values and Bonferroni's.
    assert not np.allclose(holm, p_values) and not np.allclose(holm, multipletests(p_values, method="bonferroni")[1])

    tests = pairwise_significance(batch.runs, batch.predictions)
    adjusted = {frozenset((row.model_a, row.model_b)): row.p_holm for row in tests.itertuples()}
    assert len(adjusted) == 3
    for pair, expected in zip(pairs, holm, strict=True):
        assert adjusted[frozenset(pair)] == pytest.approx(expected, rel=1e-9, abs=1e-300)
    # The report shows them, as it formats p-values.
    shown = {frozenset(row["pair"].split(" vs ")): row["p (Holm)"]
             for row in markdown_table((report.folder / "report.md").read_text(), "Pairwise significance", "pair")}
    for pair, expected in zip(pairs, holm, strict=True):
        assert shown[frozenset(pair)] == ("<0.0001" if expected < 1e-4 else f"{expected:.4f}")
    # At four decimals this batch's adjusted p-values look like the raw ones; p-values whose Holm
    # adjustment shows tell the two columns apart.
    from dataclasses import replace

    from benchmark.report.sections import significance_section
    from benchmark.report.stats import analyse

    analysis = analyse(batch.runs, batch.histories, batch.confusions, batch.predictions)
    chosen = tests.assign(p_value=[0.01, 0.02, 0.04])
    chosen["p_holm"] = multipletests(chosen["p_value"], method="holm")[1]
    rows = markdown_table(significance_section(replace(analysis, significance=chosen)), "Pairwise significance",
                          "pair")
    assert [(row["p"], row["p (Holm)"]) for row in rows] == [("0.0100", "0.0300"), ("0.0200", "0.0400"),
                                                             ("0.0400", "0.0400")]


def test_row_normalised_confusion_is_each_true_genres_share_of_its_clips(planted, batch):
    import matplotlib.pyplot as plt

    from benchmark.report.figures import confusion_figure
    from benchmark.report.stats import row_normalised, summed_confusions

    summed = summed_confusions(batch.runs, batch.confusions)
    for model in MODELS:
        # Independently: the model's predictions.csv rows, every seed together.
        frames = [pd.read_csv(planted.client.download_artifacts(run.info.run_id, "predictions.csv"))
                  for run in batch_runs(planted)
                  if run.data.tags["model"] == model and run.info.status == "FINISHED"]
        rows = pd.concat(frames)
        counts = pd.crosstab(rows["true"], rows["predicted"]).reindex(index=list(GENRES), columns=list(GENRES),
                                                                     fill_value=0)
        shares = row_normalised(summed[model])
        np.testing.assert_allclose(shares.to_numpy(), (counts.T / counts.sum(axis=1)).T.to_numpy())
        np.testing.assert_allclose(shares.sum(axis=1), 1.0)
        recall = rows.groupby("true")["correct"].mean().reindex(list(GENRES))
        np.testing.assert_allclose(np.diag(shares), recall)  # the diagonal is each genre's recall
    # A genre without test clips has no shares (not zeros, not a division error).
    lonely = pd.DataFrame([[3, 1], [0, 0]], index=["a", "b"], columns=["a", "b"])
    assert row_normalised(lonely).loc["a"].tolist() == [0.75, 0.25] and row_normalised(lonely).loc["b"].isna().all()

    # The report's second confusion figure draws those shares; the first, the summed counts.
    for normalised in (True, False):
        figure = confusion_figure(summed, normalised=normalised)
        drawn = {axes.get_title(): axes.images[0].get_array() for axes in figure.axes if axes.images}
        plt.close(figure)
        for model, matrix in summed.items():
            expected = row_normalised(matrix) if normalised else matrix
            np.testing.assert_allclose(np.asarray(drawn[model]), expected.to_numpy())


def test_leaderboard_val_accuracy_is_the_mean_last_epoch_val_accuracy(planted, report):
    table = summary(report)
    rows = {row["model"].removeprefix("★ "): row
            for row in markdown_table((report.folder / "report.md").read_text(), "Leaderboard", "model")}
    for model in MODELS:
        last = [planted.client.get_metric_history(run.info.run_id, "val_accuracy")[-1].value
                for run in batch_runs(planted)
                if run.data.tags["model"] == model and run.info.status == "FINISHED"]
        assert len(last) == len(SEEDS)
        assert table.loc[model, "val_accuracy_mean"] == pytest.approx(statistics.mean(last))
        assert rows[model]["val accuracy"] == f"{statistics.mean(last):.4f}"


def test_paired_t_test_where_runs_share_no_split(tmp_path):
    from benchmark.report.collect import load_batch
    from benchmark.report.stats import PAIRED_T, pairwise_significance

    planter = Planter(tmp_path)
    for seed, (a, b) in enumerate([(0.9, 0.5), (0.8, 0.6), (0.7, 0.6)]):
        planter.run("b1", "first", seed, accuracy=a, split_hash="split-a")
        planter.run("b1", "second", seed, accuracy=b, split_hash="split-b")
    batch = load_batch("planted", "b1", planter.uri)
    result = pairwise_significance(batch.runs, batch.predictions).iloc[0]
    assert result["test"] == PAIRED_T and result["n"] == 3
    accuracy = batch.runs.pivot(index="seed", columns="model", values="metrics.test_accuracy")
    assert result["p_value"] == pytest.approx(stats.ttest_rel(accuracy["first"], accuracy["second"]).pvalue)


def test_k_fold_batch_pairs_runs_by_seed_and_fold(tmp_path):
    from benchmark.report import write_report
    from benchmark.report.collect import load_batch
    from benchmark.report.stats import MCNEMAR, pairwise_significance

    planter = Planter(tmp_path)
    for model, accuracy in (("first", 0.8), ("second", 0.5)):
        for seed in (0, 1):
            for fold in (0, 1, 2):
                planter.run("cv", model, seed, accuracy=accuracy, split_hash=f"fold-{fold}", fold=fold)
    batch = load_batch("planted", "cv", planter.uri)
    result = pairwise_significance(batch.runs, batch.predictions).iloc[0]
    # Every (split, seed, fold) both models ran is one pair of runs: 2 seeds x 3 folds.
    assert result["test"] == MCNEMAR and result["units"] == 6 and result["n"] == 6 * len(GENRES) * 10
    report = write_report("planted", tracking_uri=planter.uri)
    assert summary(report).loc["first", "runs"] == 6
    assert re.search(r"\| folds +\| 0, 1, 2 +\|", (report.folder / "report.md").read_text())


def test_per_class_f1_and_most_confused_pairs_come_from_the_runs(planted, batch, report):
    from benchmark.report.stats import analyse

    analysis = analyse(batch.runs, batch.histories, batch.confusions, batch.predictions)
    runs = [run for run in batch_runs(planted) if run.data.tags["model"] == "good"]
    for genre in GENRES:
        assert analysis.f1.loc["good", genre] == pytest.approx(
            statistics.mean(run.data.metrics[f"test_f1_{genre}"] for run in runs))
    summed = sum(
        np.array(json.loads(Path(planted.client.download_artifacts(run.info.run_id, "confusion_matrix.json"))
                            .read_text())["counts"]) for run in runs
    )
    off_diagonal = {(GENRES[t], GENRES[p]): summed[t, p]
                    for t in range(len(GENRES)) for p in range(len(GENRES)) if t != p and summed[t, p]}
    top = analysis.confused_pairs["good"]
    assert list(top["count"]) == sorted(off_diagonal.values(), reverse=True)[:3]
    for pair in top.itertuples():
        assert off_diagonal[(pair.true, pair.predicted)] == pair.count
    first = top.iloc[0]
    markdown = (report.folder / "report.md").read_text()
    assert f"{first['true']} → {first['predicted']}: {first['count']}" in markdown


def test_training_curves_are_mean_min_and_max_over_seeds(planted, batch):
    from benchmark.report.stats import curve_bands

    bands = curve_bands(batch.histories).set_index(["model", "metric", "epoch"])
    for run_metric in ("loss", "val_accuracy"):
        per_run = [[point.value for point in planted.client.get_metric_history(run.info.run_id, run_metric)]
                   for run in batch_runs(planted) if run.data.tags["model"] == "fair"]
        for epoch, values in enumerate(zip(*per_run, strict=True), start=1):
            band = bands.loc[("fair", run_metric, epoch)]
            assert (band["mean"], band["min"], band["max"]) == pytest.approx(
                (statistics.mean(values), min(values), max(values)))


def test_report_files_and_the_logged_report_run(planted, report):
    names = {path.name for path in report.files}
    assert {"report.md", "report.html", "summary.csv", "test_accuracy.png", "confusion_counts.png",
            "confusion_normalised.png", "per_class_f1.png", "training_curves.png"} == names
    run = planted.client.get_run(report.run_id)
    assert run.info.run_name == "report-new" and run.info.experiment_id == planted.experiment_id
    assert run.data.tags["run_kind"] == "report" and run.data.tags["batch_id"] == "new"
    assert names == {item.path for item in planted.client.list_artifacts(report.run_id)}
    html = (report.folder / "report.html").read_text()
    # Self-contained: every figure inlined, nothing loaded from beside the file.
    assert html.count('src="data:image/png;base64,') == len([n for n in names if n.endswith(".png")])
    assert 'src="' not in html.replace('src="data:', "")


def test_latest_skips_report_runs_and_batch_picks_an_older_one(planted, report, tmp_path):
    from benchmark.report import write_report

    again = write_report("planted", out=tmp_path / "again", tracking_uri=planted.uri)
    assert again.batch_id == "new"  # the report run of `report` is newer, but not a training run
    result = run_cli("report", "--experiment", "planted", "--batch", "old", "--tracking-uri", planted.uri,
                     "--out", str(tmp_path / "old"))
    assert result.returncode == 0, result.stderr
    assert "report.html" in result.stdout
    assert list(pd.read_csv(tmp_path / "old" / "summary.csv")["model"]) == ["ancient"]


def test_one_model_with_one_run(tmp_path):
    from benchmark.report import write_report

    planter = Planter(tmp_path)
    planter.run("solo", "only", 0, accuracy=0.7)
    report = write_report("planted", tracking_uri=planter.uri)
    assert report.folder == Path("reports") / "planted" / "solo"
    markdown = (report.folder / "report.md").read_text()
    assert "n=1: no interval" in markdown and "One model: nothing to compare." in markdown
    assert summary(report).loc["only", "test_accuracy_mean"] == pytest.approx(0.7)


def test_model_whose_only_run_failed_is_all_missing(tmp_path):
    from benchmark.report import write_report

    planter = Planter(tmp_path)
    planter.run("b", "works", 0, accuracy=0.7)
    planter.run("b", "works", 1, accuracy=0.6)
    planter.run("b", "broken", 0, status="FAILED", test_metrics=False, artifacts=False)
    report = write_report("planted", tracking_uri=planter.uri)
    table = summary(report)
    assert table.loc["broken", ["runs", "finished", "test_accuracy_n"]].tolist() == [1, 0, 0]
    assert table.loc["broken"].isna()["test_accuracy_mean"] and not table.loc["broken", "best"]
    markdown = (report.folder / "report.md").read_text()
    broken = next(row for row in markdown_table(markdown, "Leaderboard", "model") if row["model"] == "broken")
    assert (broken["runs"], broken["test accuracy"], broken["95% CI"]) == ("1 (1 not finished)", "—", "—")
    assert "— (too few paired runs)" in markdown


def test_http_tracking_uri_links_every_run():
    from benchmark.report.provenance import run_url, runs_table

    assert run_url("http://127.0.0.1:5000/", "3", "abc") == "http://127.0.0.1:5000/#/experiments/3/runs/abc"
    assert run_url("sqlite:////tmp/mlflow.db", "3", "abc") is None
    runs = pd.DataFrame({"model": ["m"], "seed": pd.array([0], dtype="Int64"), "fold": [""],
                         "status": ["FINISHED"], "start_time": [pd.Timestamp("2026-01-01", tz="UTC")],
                         "run_id": ["abc"], "metrics.test_accuracy": [0.5]})
    table = runs_table(runs, tracking_uri="https://mlflow.example.org", experiment_id="3")
    assert table["run id"].tolist() == ["[abc](https://mlflow.example.org/#/experiments/3/runs/abc)"]


def test_report_help_and_exclusive_batch_options():
    assert run_cli("report", "--help").returncode == 0
    assert run_cli("report", "--batch", "x", "--latest").returncode == 2


def test_missing_store_experiment_or_batch_is_one_line_exit_2(planted, tmp_path):
    assert_user_error(run_cli("report", cwd=tmp_path), "no tracking store")
    uri = ["--tracking-uri", planted.uri]
    assert_user_error(run_cli("report", "--experiment", "nope", *uri, cwd=tmp_path),
                      "no MLflow experiment 'nope'")
    assert_user_error(run_cli("report", "--experiment", "planted", "--batch", "zzz", *uri, cwd=tmp_path),
                      "no runs of batch 'zzz'")


def test_batch_without_finished_runs_is_one_line_exit_2(tmp_path):
    planter = Planter(tmp_path)
    planter.run("dead", "m", 0, status="FAILED", test_metrics=False, artifacts=False)
    planter.run("dead", "m", 1, status="RUNNING", test_metrics=False, artifacts=False)
    result = run_cli("report", "--experiment", "planted", "--tracking-uri", planter.uri, cwd=tmp_path)
    assert_user_error(result, "batch dead of experiment 'planted' has no finished runs")


def test_html_report_in_a_headless_browser(report, tmp_path):
    chromium = shutil.which("chromium") or (str(CHROMIUM) if CHROMIUM.exists() else None)
    if chromium is None:
        pytest.skip("chromium is not installed (.ci/run installs it: apt-get install chromium)")
    command = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,2000"]

    def browse(page: Path, *options: str) -> str:
        return subprocess.run([*command, *options, page.resolve().as_uri()], capture_output=True, text=True,
                              timeout=120, check=True).stdout

    page = report.folder / "report.html"
    shot = tmp_path / "shot.png"
    browse(page, f"--screenshot={shot}")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    headers, rows = _leaderboard(browse(page, "--dump-dom"))
    assert [row[0] for row in rows] == ["★ good", "fair", "weak"]
    table = summary(report)
    good_accuracy = table.loc["good", "test_accuracy_mean"]
    assert rows[0][headers.index("test accuracy")].startswith(f"{good_accuracy:.4f} ± ")
    # Sortable: a copy of the page that clicks the "macro F1" header once lists the lowest first.
    clicked = tmp_path / "clicked.html"
    column = headers.index("macro F1") + 1
    click = f'document.querySelector("#leaderboard th:nth-child({column})").click()'
    clicked.write_text(page.read_text().replace("</body>", f"<script>{click}</script></body>"))
    _, rows = _leaderboard(browse(clicked, "--dump-dom"))
    assert [row[0].removeprefix("★ ") for row in rows] == list(table.sort_values("test_macro_f1_mean").index)
    assert rows[0][0] == "weak"  # reordered: not the page's own order, best first


def _leaderboard(dom: str) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of the leaderboard in the browser's DOM, after the page's script ran."""
    board = _table_with_id(dom, "leaderboard")
    # The sorting script gives every header its hint: proof it ran in the page.
    assert {header.get("title") for header in board.iter("th")} == {"click to sort"}
    headers = ["".join(header.itertext()) for header in board.iter("th")]
    return headers, [["".join(cell.itertext()) for cell in row.findall("td")] for row in board.find("tbody")]


def _table_with_id(dom: str, table_id: str):
    """The table element with this id, parsed from the browser's serialised DOM."""
    from xml.etree import ElementTree

    start = dom.index(f'<table id="{table_id}"')
    return ElementTree.fromstring(dom[start:dom.index("</table>", start) + len("</table>")])


@pytest.mark.slow
def test_smoke_experiment_then_report_cli(tmp_path):
    from mlflow import MlflowClient

    ran = run_cli("run", "--all", "--experiment", "smoke", "--seeds", "0", "1", "--no-progress",
                  cwd=tmp_path, timeout=600)
    assert ran.returncode == 0, ran.stderr[-3000:]
    result = run_cli("report", "--experiment", "smoke", cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("smoke")
    runs = [run for run in client.search_runs([experiment.experiment_id]) if "model" in run.data.tags]
    (batch_id,) = {run.data.tags["batch_id"] for run in runs}
    table = pd.read_csv(tmp_path / "reports" / "smoke" / batch_id / "summary.csv").set_index("model")
    assert sorted(table.index) == sorted({run.data.tags["model"] for run in runs}) and len(runs) == 8
    for model, row in table.iterrows():
        mine = [run.data.metrics for run in runs if run.data.tags["model"] == model]
        assert row["runs"] == 2
        for column, metric in (("test_accuracy_mean", "test_accuracy"), ("parameters", "parameters"),
                               ("test_macro_f1_mean", "test_macro_f1"),
                               ("train_seconds_mean", "train_seconds")):
            assert row[column] == pytest.approx(statistics.mean(m[metric] for m in mine)), (model, column)
    assert table["best"].sum() >= 1
    assert table.loc[table["best"], "test_accuracy_mean"].min() == table["test_accuracy_mean"].max()
    html = (tmp_path / "reports" / "smoke" / batch_id / "report.html").read_text()
    assert 'id="leaderboard"' in html and all(model in html for model in table.index)
