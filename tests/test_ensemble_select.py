"""Choosing an ensemble: greedy (Caruana, with replacement) and mean weights, on validation
predictions alone, and the weighted mean of the members' test probabilities. Pure functions on
planted tables: no training, no MLflow."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmark.ensemble.predictions import form_ensemble
from benchmark.ensemble.select import combine, greedy_weights, mean_weights
from benchmark.errors import BenchmarkError

CLASSES = ["blues", "jazz", "rock"]


def one_hot(labels, confidence=0.8):
    probabilities = np.full((len(labels), 3), (1 - confidence) / 2)
    probabilities[np.arange(len(labels)), labels] = confidence
    return probabilities


def table(track_ids, truth, probabilities):
    """A predictions.csv as a run logs it."""
    predicted = np.asarray(probabilities).argmax(axis=1)
    return pd.DataFrame({
        "track_id": track_ids, "relative_path": [f"{t}.wav" for t in track_ids],
        "true": [CLASSES[i] for i in truth], "predicted": [CLASSES[i] for i in predicted],
        "correct": (predicted == np.asarray(truth)).astype(int),
        **{f"p_{name}": np.asarray(probabilities)[:, index] for index, name in enumerate(CLASSES)}})


def test_greedy_picks_the_best_member_first_and_may_pick_it_again():
    truth = np.array([0, 1, 2, 0, 1, 2])
    good = one_hot([0, 1, 2, 0, 1, 1])      # 5 of 6
    poor = one_hot([0, 0, 0, 0, 0, 0])      # 2 of 6
    weights = greedy_weights({"poor": poor, "good": good}, truth, size=4)
    assert weights == {"good": 1.0}  # adding `poor` never helps: `good` four times
    assert mean_weights(["poor", "good"]) == {"poor": 0.5, "good": 0.5}


def test_greedy_combines_members_whose_mistakes_differ():
    truth = np.array([0, 1, 2, 0, 1, 2])
    # a is right on clips 0-3, b on 2-5, c on 0,1,4,5, each confident where right, hesitant where wrong.
    a = np.array([[.9, .05, .05], [.05, .9, .05], [.05, .05, .9], [.9, .05, .05], [.4, .3, .3], [.3, .4, .3]])
    b = np.array([[.3, .4, .3], [.4, .3, .3], [.05, .05, .9], [.9, .05, .05], [.05, .9, .05], [.05, .05, .9]])
    weights = greedy_weights({"a": a, "b": b}, truth, size=2)
    assert weights == {"a": 0.5, "b": 0.5}
    assert (combine({"a": a, "b": b}, weights).argmax(axis=1) == truth).all()  # neither alone gets there


def test_ties_in_accuracy_go_to_the_lower_log_loss_not_to_the_first_given():
    truth = np.array([0, 1, 2])
    hesitant, sure = one_hot([0, 1, 1], 0.4), one_hot([0, 1, 1], 0.9)  # same labels: 2 of 3 each
    sure[2] = [0.05, 0.6, 0.35]  # and on its mistake it still gives the true class more than hesitant's 0.3
    assert greedy_weights({"hesitant": hesitant, "sure": sure}, truth, size=1) == {"sure": 1.0}
    assert greedy_weights({"a": sure, "b": sure.copy()}, truth, size=1) == {"a": 1.0}  # full tie: given order


def planted_members(seed=0, n_valid=30, n_test=40):
    """Three members with noisy probabilities of different quality on the same clips."""
    rng = np.random.default_rng(seed)
    valid_truth, test_truth = rng.integers(0, 3, n_valid), rng.integers(0, 3, n_test)
    validation, test = {}, {}
    for name, noise in (("svm", 0.6), ("cnn2d", 1.0), ("knn", 1.5)):
        for truth, tables, prefix in ((valid_truth, validation, "v"), (test_truth, test, "t")):
            logits = np.eye(3)[truth] + noise * rng.normal(size=(len(truth), 3))
            probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
            tables[name] = table([f"{prefix}{i:03d}" for i in range(len(truth))], truth, probabilities)
    return validation, test


@pytest.mark.parametrize("method", ["greedy", "mean"])
def test_shuffling_the_test_probabilities_leaves_the_choice_unchanged(method):
    validation, test = planted_members()
    chosen = form_ensemble(validation, test, method=method, size=5)
    rng = np.random.default_rng(1)
    shuffled = {}
    for name, frame in test.items():
        columns = [f"p_{c}" for c in CLASSES]
        probabilities = frame[columns].to_numpy()
        shuffled[name] = frame.assign(**dict(zip(columns, rng.permutation(probabilities).T)))
    again = form_ensemble(validation, shuffled, method=method, size=5)
    assert again.weights == chosen.weights
    # ...while the test predictions did follow the shuffled probabilities.
    assert not again.test.equals(chosen.test)


def test_the_ensembles_test_predictions_are_the_weighted_mean_of_its_members():
    validation, test = planted_members()
    # Rows in another order per member: clips are matched by track id, not by position.
    test = {name: frame.sample(frac=1, random_state=index) for index, (name, frame) in enumerate(test.items())}
    formed = form_ensemble(validation, test, method="greedy", size=5)
    assert sum(formed.weights.values()) == pytest.approx(1.0)
    columns = [f"p_{c}" for c in CLASSES]
    expected = sum(weight * test[name].set_index("track_id").loc[formed.test["track_id"], columns].to_numpy()
                   for name, weight in formed.weights.items())
    np.testing.assert_allclose(formed.test[columns].to_numpy(), expected)
    assert list(formed.test["predicted"]) == [CLASSES[i] for i in expected.argmax(axis=1)]
    assert formed.test["correct"].tolist() == (formed.truth == formed.predicted).astype(int).tolist()


def test_members_with_different_label_sets_or_clips_are_refused():
    validation, test = planted_members()
    renamed = {**test, "knn": test["knn"].rename(columns={"p_rock": "p_metal"})}
    with pytest.raises(BenchmarkError, match="different label sets"):
        form_ensemble(validation, renamed, method="mean", size=2)
    fewer = {**validation, "knn": validation["knn"].iloc[1:]}
    with pytest.raises(BenchmarkError, match="different validation clips"):
        form_ensemble(fewer, test, method="mean", size=2)
