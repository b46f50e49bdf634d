"""Splits are by track, stratified, seeded, disjoint and complete."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmark.data.split import split_by_track
from benchmark.errors import BenchmarkError


def labels_for(counts):
    return [f"genre{index}" for index, count in enumerate(counts) for _ in range(count)]


@settings(max_examples=40, deadline=None)
@given(
    counts=st.lists(st.integers(min_value=10, max_value=60), min_size=2, max_size=8),
    seed=st.integers(0, 2**16),
)
def test_split_is_disjoint_complete_and_stratified(counts, seed):
    labels = labels_for(counts)
    split = split_by_track(labels, test_fraction=0.3, valid_fraction=0.2, seed=seed)
    parts = [set(split.train), set(split.valid), set(split.test)]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert set.union(*parts) == set(range(len(labels)))
    for name in ("train", "valid", "test"):
        present = Counter(labels[index] for index in split.indices(name))
        assert set(present) == set(labels), f"a genre is missing from {name}"
    # Stratified: each genre's test share stays within one track of the target.
    for genre, total in Counter(labels).items():
        in_test = sum(labels[index] == genre for index in split.test)
        assert abs(in_test - 0.3 * total) <= 1.0 + 1e-9 * total


def test_study_arithmetic_on_gtzan_sized_data():
    labels = labels_for([100] * 10)
    split = split_by_track(labels, test_fraction=0.3, valid_fraction=0.2, seed=0)
    assert (len(split.train), len(split.valid), len(split.test)) == (560, 140, 300)
    assert split.class_counts(labels)["test"] == {f"genre{i}": 30 for i in range(10)}


def test_same_seed_same_split_other_seed_other_split():
    labels = labels_for([20] * 4)
    ids = [f"t{index}" for index in range(len(labels))]
    first = split_by_track(labels, test_fraction=0.3, valid_fraction=0.2, seed=1)
    again = split_by_track(labels, test_fraction=0.3, valid_fraction=0.2, seed=1)
    other = split_by_track(labels, test_fraction=0.3, valid_fraction=0.2, seed=2)
    assert all(np.array_equal(first.indices(n), again.indices(n)) for n in ("train", "valid", "test"))
    assert first.membership_hash(ids) == again.membership_hash(ids)
    assert first.membership_hash(ids) != other.membership_hash(ids)


def test_genre_with_too_few_tracks_is_a_clear_error():
    with pytest.raises(BenchmarkError, match="at least 3 tracks.*genre1 \\(2\\)"):
        split_by_track(labels_for([10, 2]), test_fraction=0.3, valid_fraction=0.2, seed=0)
