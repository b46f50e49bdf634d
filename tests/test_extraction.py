"""Batched extraction (benchmark.data.spectrogram, the threaded chunks of extract_features) against
the per-clip reference (compute_spectrogram): values, cache entries, skipped files, Ctrl-C."""

from __future__ import annotations

import _thread
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from benchmark.data import spectrogram as spectrogram_module
from benchmark.data.features import (
    CACHE_DTYPE,
    FeatureParams,
    compute_spectrogram,
    extract_features,
    feature_cache_dir,
)
from benchmark.data.parallel import StopFlag, Stopped, map_chunks_in_threads
from benchmark.data.spectrogram import batch_spectrograms
from benchmark.data.tracks import discover_tracks, load_audio
from tests.helpers import sigint_as_in_a_terminal, sigint_raises_keyboard_interrupt, write_clip

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SMALL = {"n_fft": 512, "hop_length": 256, "n_mels": 24, "frames": 40, "n_mfcc": 13}
#: The default experiment's settings (10 s clips at 22050 Hz: 431 frames).
DEFAULT = {"n_fft": 2048, "hop_length": 512, "n_mels": 96, "frames": 431, "n_mfcc": 20}


def single_threaded_blas():
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1, user_api="blas")


def mixed_clips(params: FeatureParams, seed: int = 0) -> list[np.ndarray]:
    """Clips longer than ``frames`` allow, shorter, one shorter than a window, one silent, loud and quiet."""
    rng = np.random.default_rng(seed)
    t = np.arange(params.n_samples + 3 * params.hop_length) / params.sample_rate
    tone = (0.5 * np.sin(2 * np.pi * 440 * t) * np.sin(2 * np.pi * 0.7 * t)).astype(np.float32)
    noise = (0.1 * rng.standard_normal(t.size)).astype(np.float32)
    lengths = [t.size, params.n_samples, params.n_samples // 2 + 7, params.n_samples // 3,
               params.n_fft + 1, params.n_fft, params.n_fft // 2 - 5, 3 * params.hop_length + 1]
    clips = [(tone + noise)[:length] for length in lengths]
    clips += [noise * 1e-4, np.zeros(params.n_samples // 2, np.float32), tone[: params.n_samples // 4] * 30]
    return clips


def assert_same_float16(batched: list[np.ndarray], reference: list[np.ndarray]) -> None:
    assert [item.shape for item in batched] == [item.shape for item in reference]
    for got, want in zip(batched, reference):
        np.testing.assert_array_equal(got.astype(CACHE_DTYPE), want.astype(CACHE_DTYPE))


def assert_within_float16_precision(batched: list[np.ndarray], reference: list[np.ndarray]) -> None:
    """As close as the cache's float16 keeps apart: within one float16 step of the clip's scale.

    ``compute_spectrogram``'s mel projection is a BLAS product whose last bit depends on the
    threading OpenBLAS picks (one thread or several round differently); extraction uses one.
    """
    assert [item.shape for item in batched] == [item.shape for item in reference]
    for got, want in zip(batched, reference):
        scale = max(1.0, float(np.abs(want).max()))
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * scale)
        step = float(np.spacing(np.float16(scale)))
        difference = np.abs(got.astype(CACHE_DTYPE).astype(np.float32) - want.astype(CACHE_DTYPE).astype(np.float32))
        assert difference.max() <= step
        assert np.mean(difference > 0) < 1e-3


@pytest.mark.parametrize("settings", [SMALL, DEFAULT], ids=["small", "default"])
@pytest.mark.parametrize("representation", ["stft", "logmel", "mfcc"])
def test_batched_spectrograms_equal_the_per_clip_ones(representation, settings):
    params = FeatureParams(representation=representation, **settings)
    clips = mixed_clips(params)
    with single_threaded_blas():  # the BLAS threading extraction uses: every bit the same
        batched = batch_spectrograms(clips, params)
        reference = [compute_spectrogram(clip, params) for clip in clips]
    assert [item.dtype for item in batched] == [np.float32] * len(clips)
    for got, want in zip(batched, reference):
        assert got.shape == want.shape
        np.testing.assert_array_equal(got, want)
    default_threading = [compute_spectrogram(clip, params) for clip in clips]
    if representation == "stft":  # no BLAS product: the same bits however numpy is threaded
        assert_same_float16(batched, default_threading)
    else:
        assert_within_float16_precision(batched, default_threading)


def test_reference_level_and_floor_are_each_clips_own():
    """A loud and a quiet clip in one batch: each its own 0 dB peak and its own -80 dB floor."""
    params = FeatureParams(representation="logmel", **SMALL)
    rng = np.random.default_rng(3)
    loud = (0.9 * rng.standard_normal(params.n_samples)).astype(np.float32)
    quiet = loud * np.float32(1e-3)
    loud_stft, quiet_stft = batch_spectrograms([loud, quiet], FeatureParams(representation="stft", **SMALL))
    loud_mel, quiet_mel, silent = batch_spectrograms([loud, quiet, np.zeros_like(loud)], params)
    for values in (loud_mel, quiet_mel, loud_stft, quiet_stft):
        assert values.max() == 0.0 and values.min() >= -80.0
    np.testing.assert_allclose(quiet_mel, loud_mel, atol=1e-3)  # a clip's dB are relative to its own peak
    assert not silent.any()  # silence: 0 dB throughout, not the loud clip's floor
    with single_threaded_blas():
        np.testing.assert_array_equal(quiet_mel, compute_spectrogram(quiet, params))


@pytest.mark.parametrize("representation", ["stft", "logmel", "mfcc"])
def test_batched_equals_per_clip_on_real_excerpts(excerpts_dir, representation):
    params = FeatureParams(representation=representation, n_mels=96)  # the study's 1320 frames: each clip shorter
    paths = sorted(excerpts_dir.glob("*/*.wav"))[::3]
    clips = [load_audio(path, params.sample_rate) for path in paths]
    clips += [clip[: len(clip) // 3] for clip in clips[:2]] + [clips[0][: params.n_fft - 100]]
    with single_threaded_blas():
        batched = [values for start in range(0, len(clips), 6)
                   for values in batch_spectrograms(clips[start:start + 6], params)]
        reference = [compute_spectrogram(clip, params) for clip in clips]
    for got, want in zip(batched, reference):
        np.testing.assert_array_equal(got, want)
    default_threading = [compute_spectrogram(clip, params) for clip in clips]
    if representation == "stft":
        assert_same_float16(batched, default_threading)
    else:
        assert_within_float16_precision(batched, default_threading)


def mixed_tree(root: Path) -> Path:
    for genre_index, genre in enumerate(("blues", "jazz", "rock")):
        for clip in range(7):
            write_clip(root / genre / f"{genre}.{clip:05d}.wav", seconds=0.2 + 0.3 * clip,
                       frequency=200.0 * (genre_index + 1) + 10 * clip)
    return root


@pytest.mark.parametrize("representation", ["stft", "logmel", "mfcc"])
def test_cache_entries_are_the_per_clip_spectrograms_and_are_read_back(tmp_path, monkeypatch, representation):
    params = FeatureParams(representation=representation, **SMALL)
    tracks = discover_tracks(mixed_tree(tmp_path / "data"))
    first = extract_features(tracks, params, tmp_path / "cache", workers=2, progress=False)
    assert first.from_cache == 0 and len(first.tracks) == len(tracks)
    entries = sorted(feature_cache_dir(tmp_path / "cache", params).rglob("*.npy"))
    assert len(entries) == len(tracks)
    assert not list(feature_cache_dir(tmp_path / "cache", params).rglob("*.part"))
    by_hash = {entry.stem: np.load(entry) for entry in entries}
    from benchmark.data.tracks import content_hash

    with single_threaded_blas():
        for track in tracks:
            cached = by_hash[content_hash(track.path)]
            assert cached.dtype == CACHE_DTYPE
            np.testing.assert_array_equal(
                cached, compute_spectrogram(load_audio(track.path, params.sample_rate), params).astype(CACHE_DTYPE))

    def must_not_compute(*args, **kwargs):
        raise AssertionError("recomputed despite a valid cache entry")

    monkeypatch.setattr(spectrogram_module, "batch_spectrograms", must_not_compute)
    second = extract_features(tracks, params, tmp_path / "cache", workers=1, progress=False)
    assert second.from_cache == len(tracks)
    np.testing.assert_array_equal(first.inputs, second.inputs)
    assert first.fingerprint == second.fingerprint


def test_one_worker_and_all_cores_give_the_same_inputs(tmp_path):
    params = FeatureParams(representation="logmel", **SMALL)
    tracks = discover_tracks(mixed_tree(tmp_path / "data"))
    one = extract_features(tracks, params, tmp_path / "one", workers=1, progress=False)
    every = extract_features(tracks, params, tmp_path / "every", workers=0, progress=False)
    np.testing.assert_array_equal(one.inputs, every.inputs)
    np.testing.assert_array_equal(one.clip_index, every.clip_index)


def test_skipped_files_are_reported_among_computed_ones(tmp_path):
    root = mixed_tree(tmp_path / "data")
    (root / "jazz" / "notes.wav").write_text("not audio\n")
    whole = (root / "rock" / "rock.00006.wav").read_bytes()
    (root / "rock" / "cut.wav").write_bytes(whole[:1000])  # the header still announces 2 s
    params = FeatureParams(representation="logmel", **SMALL)
    result = extract_features(discover_tracks(root), params, tmp_path / "cache", workers=2, progress=False,
                              min_seconds=0.4)
    reasons = {item.relative_path: item.reason for item in result.skipped}
    assert reasons["jazz/notes.wav"].startswith("cannot decode")
    assert reasons["rock/cut.wav"].startswith("truncated")
    assert reasons["blues/blues.00000.wav"] == "too short: 0.20 s, under data.min_seconds = 0.4 s"
    assert len(result.skipped) == 2 + 3  # the 0.2 s clip of each genre is too short
    assert len(result.tracks) == 3 * 6 and result.inputs.shape[0] == 18


def test_a_stop_ends_the_chunks_at_their_next_check_and_cancels_the_rest():
    started = []

    def chunk(items, *, stop: StopFlag):
        started.append(items[0])
        while True:  # never ends on its own: only the stop flag ends it
            stop.check()
            time.sleep(0.01)

    timer = threading.Timer(0.5, _thread.interrupt_main)  # Ctrl-C, as the main thread gets it
    begun = time.monotonic()
    with sigint_raises_keyboard_interrupt(), pytest.raises(KeyboardInterrupt):
        timer.start()
        map_chunks_in_threads(chunk, list(range(100)), chunk_size=5, workers=2, progress=False)
    assert time.monotonic() - begun < 5
    assert sorted(started) == [0, 5]  # the two running chunks; the queued one never began
    assert not [thread for thread in threading.enumerate() if thread.name.startswith("chunk")]


def test_an_error_in_one_chunk_stops_the_others():
    def chunk(items, *, stop: StopFlag):
        if items[0] == 0:
            raise OSError(28, "No space left on device")
        for _ in range(500):
            stop.check()
            time.sleep(0.01)
        return items

    begun = time.monotonic()
    with pytest.raises(OSError, match="No space"):
        map_chunks_in_threads(chunk, list(range(40)), chunk_size=4, workers=2, progress=False)
    assert time.monotonic() - begun < 4
    with pytest.raises(Stopped):
        flag = StopFlag()
        flag.set()
        flag.check()


EXTRACT_DRIVER = """
import sys, time
from pathlib import Path
from benchmark.data import spectrogram
from benchmark.data.features import FeatureParams, extract_features
from benchmark.data.tracks import discover_tracks

original = spectrogram.batch_spectrograms
def slow(*args, **kwargs):
    time.sleep(0.4)  # a chunk takes a while: Ctrl-C lands mid-extraction
    return original(*args, **kwargs)
spectrogram.batch_spectrograms = slow
params = FeatureParams(representation="logmel", n_fft=512, hop_length=256, n_mels=24, frames=40)
try:
    extract_features(discover_tracks(sys.argv[1]), params, Path(sys.argv[2]), workers=2, progress=False)
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(130)
print("finished", flush=True)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sends a terminal's Ctrl-C to a process group")
def test_ctrl_c_during_extraction_stops_it_promptly_and_leaves_only_whole_entries(tmp_path):
    root = tmp_path / "data"
    for index in range(120):
        write_clip(root / ("blues", "jazz")[index % 2] / f"clip.{index:05d}.wav", seconds=0.3,
                   frequency=100.0 + 7 * index)
    cache = tmp_path / "cache"
    process = subprocess.Popen([sys.executable, "-c", EXTRACT_DRIVER, str(root), str(cache)], cwd=PROJECT_ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                               preexec_fn=sigint_as_in_a_terminal)
    deadline = time.monotonic() + 120
    while not list(cache.rglob("*.npy")):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"no cache entry was ever written: {process.communicate()[1][-3000:]}")
        time.sleep(0.05)
    sent = time.monotonic()
    os.killpg(process.pid, signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130 and stdout.strip() == "interrupted", stderr[-3000:]
    assert time.monotonic() - sent < 5  # a chunk's step or two, not the remaining clips
    assert "Traceback" not in stderr
    entries = list(cache.rglob("*.npy"))
    assert 0 < len(entries) < 120  # stopped partway
    assert not list(cache.rglob("*.part"))  # every write finished whole or was removed
    for entry in entries:
        values = np.load(entry)
        assert values.dtype == CACHE_DTYPE and values.shape[0] == 24


def test_cache_keys_change_where_the_values_may_change():
    """Entries of the float32 spectrograms (version 4) are recomputed, as are handcrafted vectors since
    they are computed with one BLAS thread."""
    keys = {representation: FeatureParams(representation=representation, n_mels=96, frames=431).key()
            for representation in ("stft", "logmel", "mfcc", "handcrafted")}
    assert keys["stft"] != "745976b0eb7197c4"  # FEATURE_VERSION 2's
    previous = {"logmel": ("7b4665e35f052b66", "2e294207c37f61fb"), "mfcc": ("f58fb733aad5f61d", "efa417f64547636b")}
    for representation, old_keys in previous.items():  # versions 2 and 3 (the default experiment's)
        assert keys[representation] not in old_keys
    assert keys["handcrafted"] != "573c9074157ffe18"  # the default experiment's, FEATURE_VERSION 2's


def test_extraction_never_holds_the_whole_set_in_memory(tmp_path):
    """Cached entries are mapped and the inputs assembled a clip at a time into a read-only file:
    at the study's size the set is 2.7 GB, which used to be held twice."""
    import tracemalloc

    params = FeatureParams(representation="stft", n_fft=1024, hop_length=256, frames=600)
    tracks = discover_tracks(mixed_tree(tmp_path / "data"))
    cold = extract_features(tracks, params, tmp_path / "cache", workers=1, progress=False)
    tracemalloc.start()
    try:
        warm = extract_features(tracks, params, tmp_path / "cache", workers=1, progress=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert warm.from_cache == len(tracks)
    np.testing.assert_array_equal(warm.inputs, cold.inputs)
    assert peak < 0.5 * warm.inputs.nbytes  # a few clips' worth (21 clips of 600 kB here), not the set (twice)
    assert isinstance(warm.inputs, np.memmap) and not warm.inputs.flags.writeable
