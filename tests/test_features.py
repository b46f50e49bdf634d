"""Spectrogram shapes and ranges, and the content-addressed, atomic feature cache."""

from __future__ import annotations

import io

import numpy as np
import pytest

from benchmark.data import features as features_module
from benchmark.data.features import (
    CACHE_DTYPE,
    FeatureParams,
    compute_features,
    extract_features,
    feature_cache_dir,
)
from benchmark.data.tracks import discover_tracks
from tests.helpers import write_clip

SMALL_STFT = FeatureParams(representation="stft", n_fft=512, hop_length=256, frames=40)
SMALL_MEL = FeatureParams(representation="logmel", n_fft=512, hop_length=256, n_mels=24, frames=40)


def cache_entries(cache_root, params):
    return sorted(feature_cache_dir(cache_root, params).rglob("*.npy"))


def test_study_representation_shape_and_length():
    params = FeatureParams()
    assert params.shape == (1025, 1320)
    spectrogram = compute_features(np.zeros(1000, dtype=np.float32) + 0.1, params)
    assert spectrogram.shape == (1025, 1320)


@pytest.mark.parametrize("params", [SMALL_STFT, SMALL_MEL], ids=["stft", "logmel"])
def test_spectrogram_is_scaled_to_unit_range(params):
    audio = np.random.default_rng(0).standard_normal(30_000).astype(np.float32)
    spectrogram = compute_features(audio, params)
    assert spectrogram.shape == params.shape
    assert spectrogram.min() == pytest.approx(0.0) and spectrogram.max() == pytest.approx(1.0)


def test_silence_becomes_zeros_not_nan():
    assert not compute_features(np.zeros(20_000, dtype=np.float32), SMALL_MEL).any()


def test_short_clip_is_zero_padded_at_the_end(excerpts_dir):
    from benchmark.data.tracks import load_audio

    params = FeatureParams(representation="stft")  # 30.6 s; the excerpts are 15-20 s long
    audio = load_audio(excerpts_dir / "rock" / "rock.00007.wav", params.sample_rate)
    assert audio.size < params.n_samples
    spectrogram = compute_features(audio, params)
    assert spectrogram.shape == (1025, 1320)
    frames_with_audio = audio.size // params.hop_length
    assert spectrogram[:, frames_with_audio + 5 :].max() == 0.0  # padding sits at the floor
    assert spectrogram[:, : frames_with_audio - 5].mean() > 0.2


def test_extraction_caches_as_float16_and_reuses_the_cache(tone_tree, tmp_path, monkeypatch):
    tracks = discover_tracks(tone_tree)
    first = extract_features(tracks, SMALL_MEL, tmp_path / "c", workers=1, progress=False)
    assert first.inputs.shape == (12, *SMALL_MEL.shape) and first.inputs.dtype == CACHE_DTYPE
    assert first.from_cache == 0 and len(cache_entries(tmp_path / "c", SMALL_MEL)) == 12

    def must_not_compute(*args, **kwargs):
        raise AssertionError("recomputed despite a valid cache entry")

    monkeypatch.setattr(features_module, "compute_spectrogram", must_not_compute)
    second = extract_features(tracks, SMALL_MEL, tmp_path / "c", workers=1, progress=False)
    assert second.from_cache == 12
    np.testing.assert_array_equal(first.inputs, second.inputs)
    assert first.fingerprint == second.fingerprint


def test_cache_key_follows_content_not_name_and_parameters(tone_tree, tmp_path):
    tracks = discover_tracks(tone_tree)
    extract_features(tracks, SMALL_MEL, tmp_path / "c", workers=1, progress=False)
    moved = tone_tree.rename(tmp_path / "renamed")
    again = extract_features(discover_tracks(moved), SMALL_MEL, tmp_path / "c", workers=1, progress=False)
    assert again.from_cache == 12
    other = extract_features(discover_tracks(moved), SMALL_STFT, tmp_path / "c", workers=1, progress=False)
    assert other.from_cache == 0


def test_truncated_cache_entry_is_recomputed_and_temp_files_ignored(tone_tree, tmp_path):
    tracks = discover_tracks(tone_tree)
    reference = extract_features(tracks, SMALL_MEL, tmp_path / "c", workers=1, progress=False)
    entry = cache_entries(tmp_path / "c", SMALL_MEL)[0]
    entry.write_bytes(entry.read_bytes()[:100])  # as if a non-atomic write had been cut short
    (entry.parent / ".tmp-leftover.part").write_bytes(b"partial")
    again = extract_features(tracks, SMALL_MEL, tmp_path / "c", workers=1, progress=False)
    assert again.from_cache == 11
    np.testing.assert_array_equal(reference.inputs, again.inputs)
    assert np.load(entry).shape == SMALL_MEL.shape


def test_a_save_that_fails_partway_leaves_no_entry_and_no_temp_file(tone_tree, tmp_path, monkeypatch):
    """A write cut short (disk full, a killed worker) must leave nothing a later read could trust."""
    tracks = discover_tracks(tone_tree)
    real_save = np.save
    calls = []

    def save_then_fail(file, array, *args, **kwargs):
        calls.append(file)
        # Some bytes reach the file (a valid .npy header and part of the data), then the disk fills.
        buffer = io.BytesIO()
        real_save(buffer, array, *args, **kwargs)
        partial = buffer.getvalue()[: len(buffer.getvalue()) // 2]
        if hasattr(file, "write"):
            file.write(partial)
            file.flush()
        else:
            with open(file, "wb") as handle:
                handle.write(partial)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "save", save_then_fail)
    with pytest.raises(OSError, match="No space left"):
        extract_features(tracks, SMALL_MEL, tmp_path / "c", workers=1, progress=False)
    assert len(calls) == 1  # the first clip's write failed, and extraction stopped there
    left = sorted(path.relative_to(feature_cache_dir(tmp_path / "c", SMALL_MEL))
                  for path in feature_cache_dir(tmp_path / "c", SMALL_MEL).rglob("*") if path.is_file())
    assert [str(path) for path in left] == ["params.json"]  # no <hash>.npy, no temporary file

    monkeypatch.setattr(np, "save", real_save)
    again = extract_features(tracks, SMALL_MEL, tmp_path / "c", workers=1, progress=False)
    assert again.from_cache == 0  # nothing half-written was taken for an entry: all recomputed
    reference = extract_features(tracks, SMALL_MEL, tmp_path / "fresh", workers=1, progress=False)
    np.testing.assert_array_equal(again.inputs, reference.inputs)
    assert len(cache_entries(tmp_path / "c", SMALL_MEL)) == 12


def test_undecodable_file_is_skipped_and_listed(tone_tree, tmp_path):
    bad = tone_tree / "jazz" / "jazz.00054.wav"
    bad.write_bytes(b"RIFF....not really a wave file")
    result = extract_features(discover_tracks(tone_tree), SMALL_MEL, tmp_path / "c", workers=1, progress=False)
    assert len(result.tracks) == 12 and result.inputs.shape[0] == 12
    assert [item.relative_path for item in result.skipped] == ["jazz/jazz.00054.wav"]
    assert "cannot decode" in result.skipped[0].reason


def test_parallel_extraction_equals_serial(tone_tree, tmp_path):
    tracks = discover_tracks(tone_tree)
    serial = extract_features(tracks, SMALL_STFT, tmp_path / "serial", workers=1, progress=False)
    parallel = extract_features(tracks, SMALL_STFT, tmp_path / "parallel", workers=2, progress=False)
    np.testing.assert_array_equal(serial.inputs, parallel.inputs)
    assert [t.relative_path for t in serial.tracks] == [t.relative_path for t in parallel.tracks]


def test_fingerprint_changes_with_content_and_labels(tone_tree, tmp_path):
    tracks = discover_tracks(tone_tree)
    before = extract_features(tracks, SMALL_MEL, tmp_path / "c", workers=1, progress=False).fingerprint
    write_clip(tone_tree / "rock" / "rock.00000.wav", frequency=999.0)
    after = extract_features(tracks, SMALL_MEL, tmp_path / "c", workers=1, progress=False).fingerprint
    assert before != after
