"""Splits are by track, stratified, seeded, disjoint and complete."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmark.config import SplitConfig
from benchmark.data.gtzan import GTZAN_GENRES
from benchmark.data.split import files_split, plan_splits, read_split_lists, split_by_track, track_id_of
from benchmark.data.tracks import Track
from benchmark.errors import BenchmarkError
from tests.helpers import SHARED_DATA


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
    # Stratified: each genre's share of the test set stays within one track of its share of the
    # data (the test set's own size is 30% rounded up, so it is the reference, not 0.3 itself).
    for genre, total in Counter(labels).items():
        in_test = sum(labels[index] == genre for index in split.test)
        assert abs(in_test - len(split.test) * total / len(labels)) < 1.0 + 1e-9


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


# --- kfold -----------------------------------------------------------------------------------


def kfold_plan(labels, *, folds, valid_fraction=0.2, seed=0):
    config = SplitConfig(protocol="kfold", folds=folds, valid_fraction=valid_fraction, seed=seed)
    return plan_splits([f"t{index}" for index in range(len(labels))], labels, config)


@settings(max_examples=30, deadline=None)
@given(
    data=st.data(),
    folds=st.integers(min_value=2, max_value=5),
    valid_fraction=st.sampled_from([0.2, 0.25, 0.3, 0.4]),
    seed=st.integers(0, 2**16),
)
def test_kfold_folds_are_disjoint_complete_stratified_and_seeded(data, folds, valid_fraction, seed):
    counts = data.draw(st.lists(st.integers(min_value=4 * folds, max_value=40), min_size=2, max_size=6),
                       label="counts")
    labels = labels_for(counts)
    ids = [f"t{index}" for index in range(len(labels))]
    everything = set(range(len(labels)))
    plan = kfold_plan(labels, folds=folds, valid_fraction=valid_fraction, seed=seed)
    assert plan.protocol == "kfold" and not plan.missing and not plan.unlisted
    assert len(plan.splits) == folds
    assert [split.fold for split in plan.splits] == list(range(folds))

    totals = Counter(labels)
    for split in plan.splits:
        train, valid, test = (set(split.indices(name).tolist()) for name in ("train", "valid", "test"))
        assert not (train & valid or train & test or valid & test)
        assert train | valid | test == everything
        assert len(train) + len(valid) + len(test) == len(labels)  # no index listed twice
        in_test = Counter(labels[index] for index in split.test)
        for genre, total in totals.items():
            assert abs(in_test[genre] - total / folds) < 1.0, (genre, in_test[genre], total, folds)
        assert {labels[index] for index in split.train} == set(totals)

    tests = [split.test.tolist() for split in plan.splits]
    union = [index for test in tests for index in test]
    assert sorted(union) == sorted(everything)  # every track is a test track exactly once

    hashes = [split.membership_hash(ids) for split in plan.splits]
    assert len(set(hashes)) == folds

    again = kfold_plan(labels, folds=folds, valid_fraction=valid_fraction, seed=seed)
    for first, second in zip(plan.splits, again.splits, strict=True):
        for name in ("train", "valid", "test"):
            np.testing.assert_array_equal(first.indices(name), second.indices(name))


def test_kfold_same_seed_same_folds_other_seed_other_folds():
    # Deterministic rather than property-based: tiny data could give equal folds by chance.
    labels = labels_for([30] * 4)
    ids = [f"t{index}" for index in range(len(labels))]
    first, again, other = (kfold_plan(labels, folds=5, seed=seed) for seed in (1, 1, 2))
    assert [s.membership_hash(ids) for s in first.splits] == [s.membership_hash(ids) for s in again.splits]
    first_tests = [s.test.tolist() for s in first.splits]
    assert [s.test.tolist() for s in again.splits] == first_tests
    assert [s.test.tolist() for s in other.splits] != first_tests  # the folds themselves, not just valid
    assert {s.membership_hash(ids) for s in first.splits}.isdisjoint(s.membership_hash(ids) for s in other.splits)


def test_kfold_on_gtzan_sized_data_has_ten_stratified_folds():
    labels = labels_for([100] * 10)
    plan = kfold_plan(labels, folds=10)
    for split in plan.splits:
        assert len(split.test) == 100
        assert split.class_counts(labels)["test"] == {f"genre{i}": 10 for i in range(10)}
        assert (len(split.train), len(split.valid)) == (720, 180)


@pytest.mark.parametrize(("folds", "counts"), [(5, [20, 4]), (10, [3, 30]), (2, [20, 3]), (3, [2, 9])])
def test_kfold_with_too_few_tracks_per_genre_names_the_genre(folds, counts):
    labels = labels_for(counts)
    scarce = f"genre{counts.index(min(counts))}"
    with pytest.raises(BenchmarkError, match=scarce):
        kfold_plan(labels, folds=folds)


@pytest.mark.parametrize(("folds", "per_genre"), [(3, 3), (5, 5), (2, 4)])
def test_kfold_needs_only_a_track_per_fold_and_one_each_to_train_and_validate(folds, per_genre):
    # The fewest tracks a genre can have: three folds of three clips test, validate and train on one each.
    plan = kfold_plan(labels_for([per_genre] * 10), folds=folds, valid_fraction=0.5)
    for split in plan.splits:
        assert len(split.test) >= 10 and len(split.valid) >= 10 and len(split.train) >= 10


# --- files -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("blues/blues.00012.wav", "blues.00012"),
        ("blues.00012", "blues.00012"),
        ("blues.00012.au", "blues.00012"),
        ("jazz\\jazz.00001.WAV", "jazz.00001"),
        (" rock.00003 ", "rock.00003"),
        ("\trock/rock.00003.flac\n", "rock.00003"),
        ("data/gtzan/pop/pop.00099.mp3", "pop.00099"),
    ],
)
def test_track_id_of(entry, expected):
    assert track_id_of(entry) == expected


def write_lists(folder, train=(), valid=(), test=(), *, skip=()):
    folder.mkdir(parents=True, exist_ok=True)
    for name, entries in (("train", train), ("valid", valid), ("test", test)):
        if name not in skip:
            (folder / f"{name}.txt").write_text("".join(f"{entry}\n" for entry in entries))
    return folder


def test_read_split_lists_ignores_blank_lines_and_comments(tmp_path):
    folder = write_lists(
        tmp_path / "lists",
        train=["# artist-filtered", "blues/blues.00000.wav", "", "   ", "  # indented comment",
               "blues.00001.au"],
        valid=["jazz\\jazz.00000.wav"],
        test=["rock.00000", "# the end"],
    )
    assert read_split_lists(folder) == {
        "train": ["blues.00000", "blues.00001"],
        "valid": ["jazz.00000"],
        "test": ["rock.00000"],
    }


def test_missing_list_file_is_an_error_naming_it(tmp_path):
    folder = write_lists(tmp_path / "lists", valid=["a.00000"], test=["a.00001"], skip=("train",))
    with pytest.raises(BenchmarkError, match="train.txt"):
        read_split_lists(folder)


def test_missing_split_folder_is_an_error_naming_it(tmp_path):
    with pytest.raises(BenchmarkError, match="not found.*no-such-folder"):
        read_split_lists(tmp_path / "no-such-folder")


def test_track_listed_twice_is_an_error():
    lists = {"train": ["a.00000", "a.00001"], "valid": ["a.00002"], "test": ["a.00001"]}
    with pytest.raises(BenchmarkError, match="a.00001.*train.txt.*test.txt"):
        files_split(["a.00000", "a.00001", "a.00002"], lists)


def test_files_split_reports_missing_and_unlisted_tracks():
    ids = ["a.00000", "a.00001", "a.00002", "b.00000", "b.00001", "b.00002"]
    lists = {
        "train": ["a.00000", "b.00000", "a.00099"],
        "valid": ["a.00001"],
        "test": ["b.00001", "b.00098"],
    }
    plan = files_split(ids, lists)
    assert plan.protocol == "files" and len(plan.splits) == 1
    split = plan.splits[0]
    assert split.train.tolist() == [0, 3]
    assert split.valid.tolist() == [1]
    assert split.test.tolist() == [4]
    assert plan.missing == ["a.00099", "b.00098"]
    assert plan.unlisted == ["a.00002", "b.00002"]
    assert split.assignment(len(ids)) == ["train", "valid", None, "train", "test", None]


def test_list_with_no_track_of_the_data_is_an_error():
    lists = {"train": ["a.00000"], "valid": ["x.00001", "x.00002"], "test": ["a.00001"]}
    with pytest.raises(BenchmarkError, match="valid.txt"):
        files_split(["a.00000", "a.00001"], lists)


def test_two_data_files_with_one_id_are_an_error():
    tracks = [Track(Path(f"blues/blues.00001{suffix}"), "blues", f"blues/blues.00001{suffix}")
              for suffix in (".au", ".wav")]
    lists = {"train": ["blues.00001"], "valid": ["blues.00001"], "test": ["blues.00001"]}
    with pytest.raises(BenchmarkError, match="blues.00001.*two files"):
        files_split([track.track_id for track in tracks], lists)


def test_files_protocol_without_a_split_dir_is_an_error():
    with pytest.raises(BenchmarkError, match="--split-dir"):
        plan_splits(["a.00000", "b.00000"], ["a", "b"], SplitConfig(protocol="files"))


def test_plan_splits_reads_the_files_protocol_from_a_folder(tmp_path):
    folder = write_lists(tmp_path / "lists", train=["a/a.00000.wav", "b/b.00000.wav"],
                         valid=["a.00001"], test=["b.00001.au"])
    ids = ["a.00000", "a.00001", "b.00000", "b.00001"]
    plan = plan_splits(ids, ["a", "a", "b", "b"], SplitConfig(protocol="files", split_dir=str(folder)))
    split = plan.splits[0]
    assert (split.train.tolist(), split.valid.tolist(), split.test.tolist()) == ([0, 2], [1], [3])
    assert split.fold is None and not plan.missing and not plan.unlisted


ARTIST_FILTERED = SHARED_DATA / "gtzan-splits" / "artist-filtered"


def test_real_artist_filtered_lists_give_443_197_290():
    if not ARTIST_FILTERED.is_dir():
        pytest.skip(f"artist-filtered split lists not found at {ARTIST_FILTERED}")
    ids = [f"{genre}.{number:05d}" for genre in GTZAN_GENRES for number in range(100)]
    labels = [track_id.split(".")[0] for track_id in ids]
    plan = plan_splits(ids, labels, SplitConfig(protocol="files", split_dir=str(ARTIST_FILTERED)))
    split = plan.splits[0]
    assert (len(split.train), len(split.valid), len(split.test)) == (443, 197, 290)
    assert len(plan.unlisted) == 70 and plan.missing == []
    train, valid, test = set(split.train.tolist()), set(split.valid.tolist()), set(split.test.tolist())
    assert not (train & valid or train & test or valid & test)
    listed = train | valid | test
    assert {ids[index] for index in range(len(ids)) if index not in listed} == set(plan.unlisted)
