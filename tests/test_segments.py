"""Segments: cutting arithmetic, one scale per clip, extraction by segment, voting per clip,
and per-bin standardisation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmark.data import features as features_module
from benchmark.data.features import (
    CACHE_DTYPE,
    FeatureParams,
    compute_features,
    compute_spectrogram,
    extract_features,
    network_inputs,
)
from benchmark.data.normalize import Standardizer, scale_per_clip
from benchmark.data.segments import Segmenting
from benchmark.data.tracks import discover_tracks, load_audio
from benchmark.errors import BenchmarkError
from benchmark.evaluate import aggregate_clips, evaluate_model

TINY_MEL = FeatureParams(representation="logmel", n_fft=512, hop_length=256, n_mels=16, frames=80)


# --- Segmenting arithmetic -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "frames", "hop", "last", "expected"),
    [
        (431, 129, 129, "drop", [0, 129, 258]),
        (431, 129, 129, "pad", [0, 129, 258, 387]),
        (431, 129, 64, "drop", [0, 64, 128, 192, 256]),
        (431, 129, 64, "pad", [0, 64, 128, 192, 256, 320]),
        (387, 129, 129, "drop", [0, 129, 258]),
        (387, 129, 129, "pad", [0, 129, 258]),  # an exact multiple: no extra padded segment
        (129, 129, 129, "pad", [0]),
        (50, 129, 129, "drop", [0]),  # shorter than a segment: one (padded) segment either way
        (50, 129, 129, "pad", [0]),
        (10, 4, 2, "drop", [0, 2, 4, 6]),
    ],
)
def test_segment_starts(total, frames, hop, last, expected):
    assert Segmenting(frames, hop, last).starts(total) == expected


@pytest.mark.parametrize("last", ["drop", "pad"])
def test_cut_content_equals_the_slices_and_padding_fills_the_tail(last):
    spectrogram = np.arange(3 * 431, dtype=np.float32).reshape(3, 431)
    segmenting = Segmenting(129, 129, last)
    pieces = segmenting.cut(spectrogram, pad_value=-7.0)
    starts = segmenting.starts(431)
    assert pieces.shape == (len(starts), 3, 129) and pieces.dtype == np.float32
    for piece, start in zip(pieces, starts, strict=True):
        available = min(129, 431 - start)
        np.testing.assert_array_equal(piece[:, :available], spectrogram[:, start:start + available])
        assert (piece[:, available:] == -7.0).all()
    if last == "pad":
        assert len(pieces) == 4
        assert (pieces[-1][:, 431 - 387:] == -7.0).all() and pieces[-1].shape[1] == 129
    else:
        assert len(pieces) == 3 and (pieces != -7.0).all()


@pytest.mark.parametrize("last", ["drop", "pad"])
def test_clip_shorter_than_a_segment_gives_one_padded_segment(last):
    spectrogram = np.ones((2, 50), dtype=np.float32)
    pieces = Segmenting(129, 129, last).cut(spectrogram, pad_value=0.0)
    assert pieces.shape == (1, 2, 129)
    assert (pieces[0, :, :50] == 1.0).all() and (pieces[0, :, 50:] == 0.0).all()


@pytest.mark.parametrize(("frames", "hop", "last"), [(0, 1, "drop"), (10, 0, "drop"), (-3, 5, "pad"),
                                                     (10, 10, "keep")])
def test_invalid_segmenting_is_an_error(frames, hop, last):
    with pytest.raises(BenchmarkError):
        Segmenting(frames, hop, last)


def test_segmenting_from_seconds():
    three = Segmenting.from_seconds(3.0, None, sample_rate=22050, hop_length=512)
    assert (three.frames, three.hop_frames, three.last) == (129, 129, "drop")
    overlapping = Segmenting.from_seconds(3.0, 1.5, sample_rate=22050, hop_length=512, last="pad")
    assert (overlapping.frames, overlapping.hop_frames, overlapping.last) == (129, 65, "pad")


# --- network_inputs --------------------------------------------------------------------------


def wide_range_clip(bins=16, frames=200):
    """A dB spectrogram loud at the start and quiet at the end: per-segment scaling would differ."""
    rng = np.random.default_rng(0)
    ramp = np.linspace(0.0, -80.0, frames, dtype=np.float32)
    return (ramp[None, :] + rng.uniform(-2.0, 0.0, (bins, frames))).astype(np.float32)


def test_per_clip_scaling_is_one_scale_for_all_segments():
    spectrogram = wide_range_clip()
    segmenting = Segmenting(50, 50, "drop")
    inputs = network_inputs(spectrogram, TINY_MEL, segmenting=segmenting, normalize="per_clip")
    assert inputs.shape == (4, 16, 50)
    assert inputs.max() == pytest.approx(1.0) and inputs.min() == pytest.approx(0.0)
    # Each segment on its own would span [0, 1]; one clip-wide scale does not.
    assert inputs[0].min() > 0.5 and inputs[-1].max() < 0.5
    whole = scale_per_clip(spectrogram)
    for piece, start in zip(inputs, segmenting.starts(200), strict=True):
        np.testing.assert_allclose(piece, whole[:, start:start + 50], rtol=0, atol=1e-6)


def test_standardize_leaves_decibels_and_pads_at_the_clip_floor():
    spectrogram = wide_range_clip(frames=120)
    segmented = network_inputs(spectrogram, TINY_MEL, segmenting=Segmenting(50, 50, "pad"),
                               normalize="standardize")
    assert segmented.shape == (3, 16, 50)
    np.testing.assert_array_equal(segmented[0], spectrogram[:, :50])
    np.testing.assert_array_equal(segmented[2][:, :20], spectrogram[:, 100:])
    assert (segmented[2][:, 20:] == spectrogram.min()).all()

    whole = network_inputs(spectrogram[:, :30], TINY_MEL, normalize="standardize")
    assert whole.shape == (1, 16, 80)
    np.testing.assert_array_equal(whole[0, :, :30], spectrogram[:, :30])
    assert (whole[0, :, 30:] == spectrogram[:, :30].min()).all()


def test_whole_clip_mode_pads_short_clips_at_the_floor_and_trims_long_ones():
    short = wide_range_clip(frames=30)
    padded = network_inputs(short, TINY_MEL)
    assert padded.shape == (1, 16, 80)
    np.testing.assert_allclose(padded[0, :, :30], scale_per_clip(short), atol=1e-6)
    assert (padded[0, :, 30:] == 0.0).all()

    long = wide_range_clip(frames=120)
    trimmed = network_inputs(long, TINY_MEL)
    assert trimmed.shape == (1, 16, 80)
    np.testing.assert_allclose(trimmed[0], scale_per_clip(long)[:, :80], atol=1e-6)

    exact = wide_range_clip(frames=80)
    np.testing.assert_allclose(network_inputs(exact, TINY_MEL)[0], scale_per_clip(exact), atol=1e-6)


def test_compute_features_is_the_whole_clip_network_input():
    audio = np.random.default_rng(1).standard_normal(12_000).astype(np.float32)
    spectrogram = compute_spectrogram(audio, TINY_MEL)
    assert spectrogram.shape[0] == 16 and spectrogram.shape[1] < 80  # a short clip: padding happens
    expected = network_inputs(spectrogram, TINY_MEL)[0]
    np.testing.assert_array_equal(compute_features(audio, TINY_MEL), expected)
    assert expected.shape == (16, 80)


# --- extraction with segments ----------------------------------------------------------------


def test_extraction_by_segment_indexes_clips_and_shares_the_cache(tone_tree, tmp_path, monkeypatch):
    tracks = discover_tracks(tone_tree)
    cache = tmp_path / "cache"
    segmenting = Segmenting(20, 20, "drop")
    first = extract_features(tracks, TINY_MEL, cache, segmenting=segmenting, workers=1, progress=False)
    assert first.from_cache == 0 and len(first.tracks) == len(tracks) == 12
    assert first.inputs.shape[1:] == (16, 20) and first.inputs.dtype == CACHE_DTYPE

    for clip, track in enumerate(first.tracks):
        spectrogram = compute_spectrogram(load_audio(track.path, TINY_MEL.sample_rate), TINY_MEL)
        rows = first.rows_of(np.array([clip]))
        assert len(rows) == len(segmenting.starts(spectrogram.shape[1]))
        assert rows.tolist() == list(range(rows[0], rows[0] + len(rows)))  # contiguous
        assert (first.clip_index[rows] == clip).all()
        expected = network_inputs(spectrogram.astype(CACHE_DTYPE).astype(np.float32), TINY_MEL,
                                  segmenting=segmenting).astype(CACHE_DTYPE)
        np.testing.assert_array_equal(first.inputs[rows], expected)
    # clip_index is non-decreasing: each clip's rows form one block, in track order.
    assert (np.diff(first.clip_index) >= 0).all()
    assert sorted(set(first.clip_index.tolist())) == list(range(12))
    np.testing.assert_array_equal(first.rows_of(np.array([0, 2])),
                                  np.flatnonzero(np.isin(first.clip_index, [0, 2])))

    def must_not_compute(*args, **kwargs):
        raise AssertionError("another segment length recomputed a cached spectrogram")

    monkeypatch.setattr(features_module, "compute_spectrogram", must_not_compute)
    other = Segmenting(30, 15, "pad")
    second = extract_features(tracks, TINY_MEL, cache, segmenting=other, workers=1, progress=False)
    assert second.from_cache == len(tracks)
    assert second.inputs.shape[1:] == (16, 30)
    per_clip = np.bincount(second.clip_index, minlength=12)
    assert per_clip.tolist() == [len(other.starts(80))] * 12
    assert first.fingerprint == second.fingerprint


# --- voting ----------------------------------------------------------------------------------


def test_mean_vote_is_argmax_of_mean_probability_and_majority_counts_votes():
    probabilities = np.array([[0.6, 0.4], [0.6, 0.4], [0.0, 1.0]])
    groups = np.zeros(3, dtype=np.int64)
    mean_scores, mean_labels = aggregate_clips(probabilities, groups, 1, "mean")
    np.testing.assert_allclose(mean_scores, [[0.4, 0.6]])
    assert mean_labels.tolist() == [1]
    vote_scores, vote_labels = aggregate_clips(probabilities, groups, 1, "majority")
    np.testing.assert_allclose(vote_scores, [[2 / 3, 1 / 3]])
    assert vote_labels.tolist() == [0]


def test_majority_tie_goes_to_the_higher_mean_probability():
    # Two votes each for labels 0 and 1; label 1's mean probability is higher. A naive argmax of
    # the vote shares would take the first tied label, 0.
    probabilities = np.array([[0.51, 0.49, 0.0], [0.51, 0.49, 0.0], [0.0, 0.9, 0.1], [0.0, 0.9, 0.1]])
    groups = np.zeros(4, dtype=np.int64)
    scores, labels = aggregate_clips(probabilities, groups, 1, "majority")
    np.testing.assert_allclose(scores, [[0.5, 0.5, 0.0]])
    assert scores.argmax(axis=1).tolist() == [0]
    assert labels.tolist() == [1]


def test_voting_groups_interleaved_segments_per_clip():
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.8, 0.2], [0.3, 0.7], [0.4, 0.6]])
    groups = np.array([0, 1, 0, 1, 1])
    scores, labels = aggregate_clips(probabilities, groups, 2, "majority")
    np.testing.assert_allclose(scores, [[1.0, 0.0], [0.0, 1.0]])
    assert labels.tolist() == [0, 1]
    scores, labels = aggregate_clips(probabilities, groups, 2, "mean")
    np.testing.assert_allclose(scores, [[0.85, 0.15], [0.3, 0.7]])


def test_unknown_vote_is_an_error():
    with pytest.raises(ValueError, match="unknown vote"):
        aggregate_clips(np.full((2, 2), 0.5), np.array([0, 0]), 1, "plurality")


class FixedModel:
    """An estimator that looks up each input's probabilities by the row number stored in it."""

    def __init__(self, probabilities):
        self.probabilities = np.asarray(probabilities, dtype=np.float64)

    def predict_proba(self, x, *, batch_size=32):
        return self.probabilities[np.asarray(x)[:, 0].astype(int)]


# Three clips of three classes, segments interleaved: clip 10 (class 0) is right by majority and
# wrong by mean, clip 20 (class 1) right both ways, clip 30 (class 2) a 1-1 tie that goes to 0.
SEGMENT_PROBABILITIES = [
    [0.6, 0.4, 0.0],    # clip 10, votes 0
    [0.1, 0.8, 0.1],    # clip 20, votes 1
    [0.0, 0.3, 0.7],    # clip 30, votes 2
    [0.6, 0.4, 0.0],    # clip 10, votes 0
    [0.2, 0.7, 0.1],    # clip 20, votes 1
    [0.9, 0.05, 0.05],  # clip 30, votes 0
    [0.0, 1.0, 0.0],    # clip 10, votes 1
]
SEGMENT_CLIPS = np.array([10, 20, 30, 10, 20, 30, 10])
SEGMENT_TRUTH = np.array([0, 1, 2, 0, 1, 2, 0])
CLASSES = ["blues", "jazz", "rock"]


def segment_inputs():
    return np.arange(len(SEGMENT_CLIPS), dtype=np.float32)[:, None]


@pytest.mark.parametrize(("vote", "accuracy", "predicted"), [("majority", 2 / 3, [0, 1, 0]),
                                                             ("mean", 1 / 3, [1, 1, 0])])
def test_evaluate_model_scores_clips_by_the_chosen_vote(vote, accuracy, predicted):
    model = FixedModel(SEGMENT_PROBABILITIES)
    result = evaluate_model(model, segment_inputs(), SEGMENT_TRUTH, CLASSES, clips=SEGMENT_CLIPS, vote=vote,
                            batch_size=4)
    assert result.metrics["accuracy"] == pytest.approx(accuracy)
    assert result.metrics["segment_accuracy"] == pytest.approx(5 / 7)
    assert "segment_macro_f1" in result.metrics
    assert result.metrics["clip_majority_accuracy"] == pytest.approx(2 / 3)
    assert result.metrics["clip_mean_accuracy"] == pytest.approx(1 / 3)
    assert result.truth.tolist() == [0, 1, 2]
    assert result.clips.tolist() == [10, 20, 30]
    assert result.predicted.tolist() == predicted
    assert result.confusion.sum() == 3  # clips, not segments
    expected_confusion = np.zeros((3, 3), dtype=int)
    for truth, label in zip([0, 1, 2], predicted, strict=True):
        expected_confusion[truth, label] += 1
    np.testing.assert_array_equal(result.confusion, expected_confusion)
    assert result.probabilities.shape == (3, 3)
    if vote == "majority":
        np.testing.assert_allclose(result.probabilities[0], [2 / 3, 1 / 3, 0.0])
    else:
        np.testing.assert_allclose(result.probabilities[0], [0.4, 0.6, 0.0])
    assert result.metrics["inference_ms_per_clip"] >= 0.0


def test_evaluate_model_without_clips_scores_every_input():
    model = FixedModel(SEGMENT_PROBABILITIES)
    result = evaluate_model(model, segment_inputs(), SEGMENT_TRUTH, CLASSES, batch_size=4)
    assert result.metrics["accuracy"] == pytest.approx(5 / 7)
    assert not any(key.startswith(("segment_", "clip_")) for key in result.metrics)
    assert result.confusion.sum() == 7
    assert result.truth.tolist() == SEGMENT_TRUTH.tolist()
    assert result.clips.tolist() == list(range(7))
    assert result.predicted.tolist() == [0, 1, 2, 0, 1, 0, 1]


# --- standardisation -------------------------------------------------------------------------


def training_inputs():
    rng = np.random.default_rng(3)
    # More inputs than one fitting chunk, float16 as cached, bins with different scales.
    inputs = rng.normal(loc=np.linspace(-60, -5, 6)[None, :, None], scale=np.linspace(0.5, 12, 6)[None, :, None],
                        size=(150, 6, 20))
    inputs[:, 3, :] = -42.0  # a constant bin
    return inputs.astype(np.float16)


def test_standardizer_fit_matches_numpy_per_bin_statistics():
    inputs = training_inputs()
    fitted = Standardizer.fit(inputs)
    wide = inputs.astype(np.float64)
    expected_std = wide.std(axis=(0, 2))
    np.testing.assert_allclose(fitted.mean, wide.mean(axis=(0, 2)), rtol=1e-9, atol=1e-9)
    varying = np.arange(6) != 3
    np.testing.assert_allclose(fitted.std[varying], expected_std[varying], rtol=1e-6)
    assert fitted.mean[3] == pytest.approx(-42.0) and fitted.std[3] == 1.0


def test_standardizer_transform_gives_zero_mean_unit_std_per_bin():
    inputs = training_inputs()
    fitted = Standardizer.fit(inputs)
    out = fitted.transform(inputs)
    assert out.shape == inputs.shape and out.dtype == np.float32
    np.testing.assert_allclose(out.astype(np.float64).mean(axis=(0, 2)), 0.0, atol=1e-4)
    std = out.astype(np.float64).std(axis=(0, 2))
    np.testing.assert_allclose(np.delete(std, 3), 1.0, rtol=1e-4)
    assert std[3] == 0.0  # the constant bin is centred, not blown up
    np.testing.assert_allclose(fitted.transform(inputs[5].astype(np.float32)), out[5], rtol=1e-5, atol=1e-5)


def test_standardizer_round_trips_through_a_dict():
    fitted = Standardizer.fit(training_inputs())
    stored = json.loads(json.dumps(fitted.to_dict()))
    assert stored["mode"] == "standardize"
    restored = Standardizer.from_dict(stored)
    np.testing.assert_array_equal(restored.mean, fitted.mean)
    np.testing.assert_array_equal(restored.std, fitted.std)
    sample = training_inputs()[:4]
    np.testing.assert_array_equal(restored.transform(sample), fitted.transform(sample))


def test_standardizer_needs_inputs():
    with pytest.raises(ValueError):
        Standardizer.fit(np.empty((0, 4, 5), dtype=np.float32))
