"""The report's ensemble section: how often each model was chosen and with what weight, and
McNemar against the best single model. Pure functions on planted frames."""

from __future__ import annotations

import numpy as np
import pandas as pd

from benchmark.report.ensemble import against_best_single, ensemble_choices, ensemble_section
from benchmark.report.stats import leaderboard, pairwise_significance


def planted():
    rng = np.random.default_rng(0)
    clips = [f"t{i:02d}" for i in range(40)]
    rows, predictions = [], {}
    right = {"svm": 0.8, "cnn2d": 0.6, "ensemble": 0.9}
    for model, share in right.items():
        for seed in (0, 1):
            run_id = f"{model}-{seed}"
            correct = (rng.random(len(clips)) < share).astype(int)
            predictions[run_id] = pd.DataFrame({"track_id": clips, "correct": correct}).set_index("track_id")
            weights = ({"params.weight.svm": "0.8", "params.weight.cnn2d": "0.2"} if seed == 0
                       else {"params.weight.svm": "1.0", "params.weight.cnn2d": None}) if model == "ensemble" else {}
            rows.append({"run_id": run_id, "model": model, "seed": seed, "fold": "", "status": "FINISHED",
                         "kind": "ensemble" if model == "ensemble" else "classical", "input": "",
                         "tags.split_hash": "s", "metrics.test_accuracy": correct.mean(),
                         "metrics.test_macro_f1": correct.mean(), **weights,
                         **{f"metrics.{m}": np.nan for m in ("test_segment_accuracy", "final_val_accuracy", "parameters",
                                                            "train_seconds", "test_inference_ms_per_clip", "epochs_run")}})
    runs = pd.DataFrame(rows)
    return runs, predictions


def test_choices_count_each_model_and_its_weights_over_the_ensembles():
    runs, _ = planted()
    choices = ensemble_choices(runs).set_index("model")
    assert choices.loc["svm", "chosen"] == 2 and choices.loc["cnn2d", "chosen"] == 1
    assert choices.loc["svm", "mean_weight"] == 0.9 and choices.loc["cnn2d", "mean_weight"] == 0.1
    assert choices.loc["cnn2d", "weight_when_chosen"] == 0.2
    assert list(choices.index) == ["svm", "cnn2d"]


def test_the_ensemble_is_tested_against_the_best_single_model_on_the_same_clips():
    runs, predictions = planted()
    board, significance = leaderboard(runs), pairwise_significance(runs, predictions)
    versus = against_best_single(board, significance)
    assert versus["best"] == "svm" and versus["test"] == "McNemar exact" and versus["n"] == 80
    ensemble = pd.concat([predictions["ensemble-0"], predictions["ensemble-1"]])["correct"].to_numpy()
    best = pd.concat([predictions["svm-0"], predictions["svm-1"]])["correct"].to_numpy()
    assert versus["only_ensemble_right"] == int(((ensemble == 1) & (best == 0)).sum())
    assert versus["only_best_right"] == int(((ensemble == 0) & (best == 1)).sum())
    section = ensemble_section(runs, board, significance)
    assert "best single model, `svm`" in section and "| svm     | 2 of 2" in section
    assert ensemble_section(runs[runs["kind"] != "ensemble"], leaderboard(runs[runs["kind"] != "ensemble"]),
                            significance) is None
