"""Finding tracks in the layouts GTZAN ships in, and decoding them."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.data.tracks import AudioDecodeError, discover_tracks, load_audio
from benchmark.errors import BenchmarkError
from tests.helpers import write_clip


def test_gtzan_as_distributed_au_files(tmp_path):
    root = tmp_path / "genres"
    for genre in ("blues", "metal"):
        for index in range(2):
            write_clip(root / genre / f"{genre}.{index:05d}.au", fmt="AU")
    tracks = discover_tracks(root)
    assert [t.relative_path for t in tracks] == [
        "blues/blues.00000.au", "blues/blues.00001.au", "metal/metal.00000.au", "metal/metal.00001.au"
    ]
    assert [t.label for t in tracks] == ["blues", "blues", "metal", "metal"]
    assert tracks[0].track_id == "blues.00000"
    assert load_audio(tracks[0].path, 22050).shape == (22050,)


def test_kaggle_layout_nested_folders_and_non_audio_ignored(tmp_path):
    root = tmp_path / "Data"
    for genre in ("jazz", "pop"):
        write_clip(root / "genres_original" / genre / f"{genre}.00000.wav")
        (root / "images_original" / genre).mkdir(parents=True)
        (root / "images_original" / genre / f"{genre}00000.png").write_bytes(b"\x89PNG")
    (root / "features_30_sec.csv").write_text("filename,label\n")
    tracks = discover_tracks(root)
    assert [t.relative_path for t in tracks] == [
        "genres_original/jazz/jazz.00000.wav", "genres_original/pop/pop.00000.wav"
    ]


def test_other_formats_are_found_and_decoded(tmp_path):
    write_clip(tmp_path / "a" / "one.flac", fmt="FLAC")
    write_clip(tmp_path / "b" / "two.ogg", fmt="OGG", subtype="VORBIS")
    tracks = discover_tracks(tmp_path)
    assert [t.label for t in tracks] == ["a", "b"]
    for track in tracks:
        assert load_audio(track.path, 22050).size == pytest.approx(22050, abs=600)


def test_decoding_makes_mono_at_the_configured_rate(tmp_path):
    path = write_clip(tmp_path / "g" / "stereo.wav", seconds=2.0, sample_rate=44100, channels=2)
    audio = load_audio(path, 22050)
    assert audio.ndim == 1 and audio.dtype == np.float32
    assert audio.size == 44100  # 2 s at 22050 Hz


@pytest.mark.parametrize("content", [b"", b"this is not audio at all\n" * 10])
def test_undecodable_files_raise_a_decode_error(tmp_path, content):
    path = tmp_path / "jazz" / "jazz.00054.wav"
    path.parent.mkdir()
    path.write_bytes(content)
    with pytest.raises(AudioDecodeError, match="jazz.00054.wav"):
        load_audio(path, 22050)


def test_empty_tree_missing_tree_and_single_genre_are_errors(tmp_path):
    (tmp_path / "empty" / "blues").mkdir(parents=True)
    with pytest.raises(BenchmarkError, match="no audio files"):
        discover_tracks(tmp_path / "empty")
    with pytest.raises(BenchmarkError, match="data directory not found"):
        discover_tracks(tmp_path / "nowhere")
    write_clip(tmp_path / "one" / "rock" / "rock.00000.wav")
    with pytest.raises(BenchmarkError, match="one genre only"):
        discover_tracks(tmp_path / "one")


def test_real_gtzan_excerpts_are_found(excerpts_dir):
    tracks = discover_tracks(excerpts_dir)
    assert len(tracks) == 30
    assert len({t.label for t in tracks}) == 10
