"""The float32 spectrograms (representation version 4) against librosa's own, which versions 2 and 3
cached: log-mel, STFT and MFCC within thousandths of a dB on generated and real audio; the mel
filters, the window and the dB arithmetic are librosa's; the decoding shortcut is ``load_audio``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmark.data import spectrogram
from benchmark.data.features import CACHE_DTYPE, FeatureParams, _decoded_audio, compute_spectrogram
from benchmark.data.tracks import AudioDecodeError, load_audio
from tests.helpers import write_clip
from tests.test_extraction import DEFAULT, SMALL, mixed_clips

PROJECT_ROOT = Path(__file__).resolve().parents[1]
#: The most a value may move from librosa's (dB; MFCC: its units). Measured on the default data:
#: 0.0007 (logmel), 0.007 (stft), 0.0004 (mfcc); on the real excerpts 0.0002, 0.004, 0.0002.
BOUNDS = {"logmel": 0.002, "stft": 0.01, "mfcc": 0.002}


def librosa_spectrogram(audio: np.ndarray, params: FeatureParams) -> np.ndarray:
    """What ``compute_spectrogram`` computed before version 4: librosa's functions throughout."""
    import librosa
    import librosa.feature

    audio = np.asarray(audio, dtype=np.float32)[: params.n_samples]
    if audio.size < params.n_fft:
        audio = librosa.util.fix_length(audio, size=params.n_fft)
    if params.representation == "stft":
        magnitude = np.abs(librosa.stft(audio, n_fft=params.n_fft, hop_length=params.hop_length))
        decibels = librosa.amplitude_to_db(magnitude, ref=np.max)
    else:
        power = librosa.feature.melspectrogram(y=audio, sr=params.sample_rate, n_fft=params.n_fft,
                                               hop_length=params.hop_length, n_mels=params.n_mels)
        decibels = librosa.power_to_db(power, ref=np.max)
        if params.representation == "mfcc":
            decibels = librosa.feature.mfcc(S=decibels, sr=params.sample_rate, n_mfcc=params.n_mfcc)
    return decibels[:, : params.frames].astype(np.float32)


def assert_close_to_librosa(clips: list[np.ndarray], params: FeatureParams) -> None:
    """Within :data:`BOUNDS`, and cached (float16) at most one step from librosa's cached value."""
    for clip in clips:
        ours, theirs = compute_spectrogram(clip, params), librosa_spectrogram(clip, params)
        assert ours.shape == theirs.shape and ours.dtype == np.float32
        assert np.abs(ours - theirs).max() <= BOUNDS[params.representation]
        step = float(np.spacing(np.float16(max(1.0, float(np.abs(theirs).max())))))
        cached = np.abs(ours.astype(CACHE_DTYPE).astype(np.float32) - theirs.astype(CACHE_DTYPE).astype(np.float32))
        assert cached.max() <= step


@pytest.mark.parametrize("settings", [SMALL, DEFAULT], ids=["small", "default"])
@pytest.mark.parametrize("representation", ["stft", "logmel", "mfcc"])
def test_generated_audio_is_within_thousandths_of_librosas_values(representation, settings):
    from benchmark.data.synth.clip import synthesize_clip

    params = FeatureParams(representation=representation, **settings)
    clips = mixed_clips(params)  # long, short, under a window, silent, quiet, loud
    if settings is DEFAULT:
        clips += [synthesize_clip(genre, 3, seconds=10.0) for genre in ("classical", "metal")]
    assert_close_to_librosa(clips, params)


@pytest.mark.parametrize("representation", ["stft", "logmel", "mfcc"])
def test_real_excerpts_are_within_thousandths_of_librosas_values(excerpts_dir, representation):
    params = FeatureParams(representation=representation, n_mels=96)  # the study's 1320 frames
    paths = sorted(excerpts_dir.glob("*/*.wav"))[::4]
    assert_close_to_librosa([load_audio(path, params.sample_rate) for path in paths], params)


@pytest.mark.parametrize(("sample_rate", "n_fft", "n_mels"),
                         [(22050, 2048, 96), (22050, 512, 24), (16000, 512, 96), (44100, 4096, 128), (8000, 256, 64)])
def test_mel_filters_and_window_are_librosas_value_for_value(sample_rate, n_fft, n_mels):
    import librosa

    np.testing.assert_array_equal(spectrogram.mel_basis(sample_rate, n_fft, n_mels),
                                  librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels))
    window = librosa.filters.get_window("hann", n_fft, fftbins=True).astype(np.float32)
    np.testing.assert_array_equal(spectrogram._window(n_fft), window)


def test_mel_bands_sum_what_the_dense_product_sums():
    """Each band's product over its own bins leaves out only zero weights."""
    params = FeatureParams(representation="logmel", **DEFAULT)
    basis = spectrogram.mel_basis(params.sample_rate, params.n_fft, params.n_mels)
    bands = spectrogram._mel_bands(params.sample_rate, params.n_fft, params.n_mels)
    assert [band[0] for band in bands] == [0] + [band[1] for band in bands[:-1]] and bands[-1][1] == params.n_mels
    covered = np.zeros_like(basis, dtype=bool)
    for first, last, low, high, _ in bands:
        covered[first:last, low:high] = True
    assert not basis[~covered].any()
    assert covered.sum() < basis.size / 5  # the point of the bands: a fraction of the dense work
    power = np.random.default_rng(0).random((70, basis.shape[1]), dtype=np.float32)
    projected = np.empty((70, params.n_mels), np.float32)
    spectrogram._project(power, bands, projected)
    np.testing.assert_allclose(projected, power.astype(np.float64) @ basis.T.astype(np.float64), rtol=1e-5)


def test_decibels_are_librosas_power_to_db_and_mfcc():
    import librosa
    import librosa.feature

    rng = np.random.default_rng(1)
    power = (rng.random((40, 24)) ** 8 * 3).astype(np.float32)  # 1e-12 to 3: below amin and above
    power[5] = 0.0
    params = FeatureParams(representation="logmel", **SMALL)
    expected = librosa.power_to_db(power.T, ref=np.max)
    np.testing.assert_array_equal(spectrogram._decibels(power.copy(), params), expected)
    mfcc = spectrogram._decibels(power.copy(), FeatureParams(representation="mfcc", **SMALL))
    np.testing.assert_allclose(mfcc, librosa.feature.mfcc(S=expected, n_mfcc=SMALL["n_mfcc"]), rtol=0, atol=1e-4)


def test_decoding_without_librosa_gives_load_audios_samples_and_reasons(tmp_path):
    files = [write_clip(tmp_path / "mono.wav"), write_clip(tmp_path / "stereo.wav", channels=2),
             write_clip(tmp_path / "44k.wav", sample_rate=44100), write_clip(tmp_path / "mono.flac", fmt="FLAC")]
    for path in files:
        np.testing.assert_array_equal(_decoded_audio(path, 22050, 0.0), load_audio(path, 22050))
    (tmp_path / "notes.wav").write_text("not audio\n")
    (tmp_path / "cut.wav").write_bytes(files[0].read_bytes()[:1000])
    for path, minimum in ((tmp_path / "notes.wav", 0.0), (tmp_path / "cut.wav", 0.0), (files[0], 5.0)):
        with pytest.raises(AudioDecodeError) as ours:
            _decoded_audio(path, 22050, minimum)
        with pytest.raises(AudioDecodeError) as theirs:
            load_audio(path, 22050, min_seconds=minimum)
        assert ours.value.reason == theirs.value.reason


COLD_RUN = """
import sys
from pathlib import Path
from benchmark.data.features import FeatureParams, extract_features
from benchmark.data.tracks import discover_tracks
params = FeatureParams(representation="logmel", n_fft=512, hop_length=256, n_mels=24, frames=40)
result = extract_features(discover_tracks(sys.argv[1]), params, Path(sys.argv[2]), workers=2, progress=False)
assert len(result.tracks) == 6 and result.from_cache == 0
print(sorted(name for name in ("librosa.core", "numba", "scipy.signal") if name in sys.modules))
"""


def test_a_cold_extraction_of_mono_files_at_the_rate_never_loads_librosa(tmp_path):
    for index in range(6):
        write_clip(tmp_path / "data" / ("blues", "jazz")[index % 2] / f"{index}.wav", seconds=0.5,
                   frequency=200.0 + 50 * index)
    loaded = subprocess.run([sys.executable, "-c", COLD_RUN, str(tmp_path / "data"), str(tmp_path / "cache")],
                            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    assert loaded.stdout.strip() == "[]"  # numba and librosa's submodules: 0.4 s or more before the first clip
