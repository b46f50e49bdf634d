"""The table `run` prints at the end."""

from __future__ import annotations

from dataclasses import replace

from benchmark.runner import BatchResult, RunSummary
from benchmark.summary import print_summary, seed_spread, summary_table


def rows(fold=None):
    return [
        RunSummary(model=model, seed=seed, fold=fold, test_accuracy=accuracy, macro_f1=accuracy - 0.1,
                   parameters=1234, train_seconds=2.0 + seed, run_id=f"{model}{seed}", model_uri="")
        for model, accuracies in (("cnn2d", [0.6, 0.7, 0.8]), ("fcnn", [0.4, 0.4, 0.4]))
        for seed, accuracy in enumerate(accuracies)
    ]


def test_spread_over_seeds_is_mean_and_sample_standard_deviation():
    spread = seed_spread(summary_table(rows())).set_index("model")
    assert spread.loc["cnn2d", "runs"] == 3
    assert spread.loc["cnn2d", "test_accuracy"] == "0.7000 ± 0.1000"
    assert spread.loc["fcnn", "test_accuracy"] == "0.4000 ± 0.0000"
    assert spread.loc["cnn2d", "train_seconds"] == "3.0"
    # t interval of (0.6, 0.7, 0.8): 0.7 ± t(0.975, 2) * 0.1 / sqrt(3) = 0.7 ± 0.2484
    assert spread.loc["cnn2d", "accuracy_95%_ci"] == "[0.4516, 0.9484]"
    assert spread.loc["fcnn", "accuracy_95%_ci"] == "[0.4000, 0.4000]"


def test_folds_are_a_column_and_the_spread_covers_folds_and_seeds(capsys):
    folded = [replace(row, fold=fold) for row in rows() for fold in (0, 1)]
    table = summary_table(folded)
    assert list(table.columns[:3]) == ["model", "seed", "fold"]
    assert seed_spread(table).set_index("model").loc["cnn2d", "runs"] == 6
    print_summary(BatchResult("b", "sqlite:///x", "1", "kfold", folded), experiment_name="kfold")
    assert "over folds and seeds" in capsys.readouterr().out
    assert "fold" not in summary_table(rows()).columns


def test_printed_summary_names_batch_columns_and_how_to_open_results(capsys):
    outcome = BatchResult("b1", "sqlite:////x/mlruns/mlflow.db", "1", "paper", rows())
    print_summary(outcome, experiment_name="default")
    out = capsys.readouterr().out
    assert "batch b1" in out
    for column in ("model", "test_accuracy", "macro_f1", "parameters", "train_seconds"):
        assert column in out
    assert "1,234" in out and "0.7000 ± 0.1000" in out
    assert "python -m benchmark ui" in out
