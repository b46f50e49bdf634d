"""`data verify`: per-file manifest, undecodable files, duplicates, cross-split leaks, exit codes."""

from __future__ import annotations

import os
import shutil

import pytest

from benchmark.cli import main
from benchmark.config import SplitConfig
from benchmark.data.features import FeatureParams, data_fingerprint, extract_features
from benchmark.data.split import plan_splits
from benchmark.data.tracks import discover_tracks
from benchmark.data.verify import (
    CrossSplitDuplicate,
    duplicate_groups,
    duplicates_across_splits,
    load_manifest,
    manifest_path,
    verify_dataset,
)
from tests.helpers import write_clip


def mixed_tree(root):
    """Two genres: a 44.1 kHz file, a stereo file, otherwise 22.05 kHz mono, lengths 0.5-2 s."""
    write_clip(root / "blues" / "blues.00000.wav", seconds=1.0, frequency=440)
    write_clip(root / "blues" / "blues.00001.wav", seconds=0.5, sample_rate=44100, frequency=500)
    write_clip(root / "jazz" / "jazz.00000.wav", seconds=1.5, channels=2, frequency=600)
    write_clip(root / "jazz" / "jazz.00001.wav", seconds=2.0, frequency=700)
    return root


def plant_duplicates(root):
    """A byte copy under another name, and the same samples as FLAC in another genre."""
    import soundfile

    original = root / "blues" / "blues.00000.wav"
    shutil.copy(original, root / "blues" / "blues.00002.wav")
    # The very samples re-encoded: writing the float tone again would round differently in FLAC.
    samples, sample_rate = soundfile.read(original, dtype="int16")
    (root / "rock").mkdir()
    soundfile.write(root / "rock" / "rock.00000.flac", samples, sample_rate, subtype="PCM_16")
    write_clip(root / "rock" / "rock.00001.wav", seconds=1.0, frequency=880)
    return root


def write_lists(folder, **lists):
    folder.mkdir(parents=True, exist_ok=True)
    for name, ids in lists.items():
        (folder / f"{name}.txt").write_text("\n".join(ids) + "\n")
    return folder


def verify_cli(*args, capsys):
    code = main(["data", "verify", *map(str, args), "--no-progress", "--workers", "1"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_manifest_reports_counts_durations_rates_and_channels(tmp_path):
    report = verify_dataset(mixed_tree(tmp_path / "data"), workers=1, progress=False)
    rows = report.manifest.set_index("relative_path")
    assert list(rows.index) == ["blues/blues.00000.wav", "blues/blues.00001.wav",
                                "jazz/jazz.00000.wav", "jazz/jazz.00001.wav"]
    assert rows["label"].tolist() == ["blues", "blues", "jazz", "jazz"]
    assert rows["track_id"].tolist() == ["blues.00000", "blues.00001", "jazz.00000", "jazz.00001"]
    assert rows["decodable"].all() and (rows["error"] == "").all()
    assert rows["sample_rate"].tolist() == [22050, 44100, 22050, 22050]
    assert rows["channels"].tolist() == [1, 1, 2, 1]
    assert rows["duration_seconds"].tolist() == pytest.approx([1.0, 0.5, 1.5, 2.0])
    assert (rows["size_bytes"] > 0).all() and rows["content_hash"].str.len().eq(64).all()
    assert report.clean and report.duplicates == [] and report.protocol is None
    text = "\n".join(report.summary_lines())
    assert "sample rates: 22050 Hz (3 files), 44100 Hz (1 file)" in text
    assert "channels: 1 (3 files), 2 (1 file)" in text
    assert "duplicates: none" in text and f"manifest: {manifest_path(tmp_path / 'data')}" in text


def test_undecodable_files_are_reported_with_a_reason_and_exit_1(tmp_path, capsys):
    root = mixed_tree(tmp_path / "data")
    (root / "jazz" / "notes.wav").write_text("this is not audio\n")
    (root / "blues" / "empty.wav").write_bytes(b"")
    report = verify_dataset(root, workers=1, progress=False)
    bad = report.undecodable.set_index("relative_path")
    assert sorted(bad.index) == ["blues/empty.wav", "jazz/notes.wav"]
    assert (bad["error"].str.len() > 0).all() and bad["sample_rate"].isna().all()
    assert not report.clean
    code, out, _ = verify_cli(root, capsys=capsys)
    assert code == 1
    assert "undecodable files (2):" in out and "jazz/notes.wav: " in out and "blues/empty.wav: " in out


def test_duplicates_are_found_by_decoded_audio_not_bytes(tmp_path, capsys):
    root = plant_duplicates(mixed_tree(tmp_path / "data"))
    report = verify_dataset(root, workers=1, progress=False)
    rows = report.manifest.set_index("relative_path")
    original, flac = rows.loc["blues/blues.00000.wav"], rows.loc["rock/rock.00000.flac"]
    assert original["content_hash"] != flac["content_hash"] and original["audio_hash"] == flac["audio_hash"]
    assert report.duplicates == [["blues/blues.00000.wav", "blues/blues.00002.wav", "rock/rock.00000.flac"]]
    assert duplicate_groups(report.manifest) == report.duplicates
    assert not report.clean
    code, out, _ = verify_cli(root, capsys=capsys)
    assert code == 1
    assert "blues/blues.00000.wav = blues/blues.00002.wav = rock/rock.00000.flac" in out


def test_pool_and_in_process_give_the_same_manifest(tmp_path):
    import pandas as pd

    root = plant_duplicates(mixed_tree(tmp_path / "data"))
    (root / "jazz" / "empty.wav").write_bytes(b"")
    serial = verify_dataset(root, workers=1, progress=False)
    pooled = verify_dataset(root, workers=2, progress=False)
    pd.testing.assert_frame_equal(serial.manifest, pooled.manifest)
    assert pooled.duplicates == serial.duplicates and pooled.fingerprint == serial.fingerprint


def test_duplicates_in_different_listed_splits_are_warned_about(tmp_path, capsys):
    root = plant_duplicates(mixed_tree(tmp_path / "data"))
    lists = write_lists(tmp_path / "lists", train=["blues.00000", "jazz.00000", "rock.00001"],
                        valid=["blues.00001", "blues.00002"], test=["jazz.00001", "rock.00000"])
    config = SplitConfig(protocol="files", split_dir=str(lists))
    report = verify_dataset(root, split_config=config, workers=1, progress=False)
    assert report.cross_split == [CrossSplitDuplicate(None, [
        ("blues/blues.00000.wav", "train"), ("blues/blues.00002.wav", "valid"), ("rock/rock.00000.flac", "test")
    ])]
    code, out, _ = verify_cli(root, "--split-dir", lists, capsys=capsys)
    assert code == 1
    warnings = [line for line in out.splitlines() if line.startswith("WARNING")]
    assert warnings == [("WARNING: duplicates in different splits: blues/blues.00000.wav [train], "
                         "blues/blues.00002.wav [valid], rock/rock.00000.flac [test]")]


def test_duplicates_within_one_split_or_unlisted_give_no_warning(tmp_path, capsys):
    root = plant_duplicates(mixed_tree(tmp_path / "data"))
    # blues.00002 is listed nowhere, so only the two train copies remain: one split, no leak.
    lists = write_lists(tmp_path / "lists", train=["blues.00000", "rock.00000", "jazz.00000"],
                        valid=["blues.00001", "rock.00001"], test=["jazz.00001"])
    config = SplitConfig(protocol="files", split_dir=str(lists))
    report = verify_dataset(root, split_config=config, workers=1, progress=False)
    assert report.duplicates and report.cross_split == []
    code, out, _ = verify_cli(root, "--split-dir", lists, capsys=capsys)
    assert code == 1 and "WARNING" not in out  # still 1: the duplicates themselves are a finding
    assert "split check (files): 0 duplicate group(s) span different splits" in out


def test_kfold_cross_split_duplicates_follow_each_folds_assignment(tmp_path):
    root = tmp_path / "data"
    for genre_index, genre in enumerate(("blues", "jazz", "rock")):
        for clip in range(5):
            write_clip(root / genre / f"{genre}.{clip:05d}.wav", seconds=0.2,
                       frequency=200.0 * (genre_index + 1) + 10 * clip)
    shutil.copy(root / "blues" / "blues.00000.wav", root / "jazz" / "jazz.00009.wav")
    shutil.copy(root / "rock" / "rock.00003.wav", root / "rock" / "rock.00007.wav")
    (root / "rock" / "broken.wav").write_text("not audio")  # undecodable: left out of the plan
    config = SplitConfig(protocol="kfold", folds=3, valid_fraction=0.25, seed=3)
    report = verify_dataset(root, split_config=config, workers=1, progress=False)
    kept = [t for t in discover_tracks(root) if t.relative_path != "rock/broken.wav"]
    paths = [t.relative_path for t in kept]
    plan = plan_splits([t.track_id for t in kept], [t.label for t in kept], config)
    expected = []
    for split in plan.splits:
        where = dict(zip(paths, split.assignment(len(paths)), strict=True))
        for group in report.duplicates:
            if len({where[path] for path in group}) > 1:
                expected.append(CrossSplitDuplicate(split.fold, [(path, where[path]) for path in group]))
    assert len(report.duplicates) == 2 and len(plan.splits) == 3
    # Not vacuous: with this seed each planted pair sits in different splits in some fold.
    assert {tuple(path for path, _ in item.members) for item in expected} == {
        ("blues/blues.00000.wav", "jazz/jazz.00009.wav"), ("rock/rock.00003.wav", "rock/rock.00007.wav")}
    assert all(len({name for _, name in item.members}) == 2 for item in expected)
    assert report.cross_split == expected
    assert duplicates_across_splits(report.duplicates, paths, plan) == expected
    text = "\n".join(report.summary_lines())
    assert text.count("WARNING") == len(expected)
    assert all(f"in fold {item.fold}:" in text for item in expected)


def test_a_protocol_that_cannot_split_is_a_note_not_a_failure(tmp_path):
    report = verify_dataset(mixed_tree(tmp_path / "data"), split_config=SplitConfig(), workers=1,
                            progress=False)
    assert report.split_note and "at least 3 tracks" in report.split_note and report.cross_split == []
    assert report.clean
    assert any(line.startswith("split check (paper) not possible") for line in report.summary_lines())


def test_fingerprint_covers_every_file_and_matches_feature_extraction(tmp_path):
    root = plant_duplicates(mixed_tree(tmp_path / "data"))
    (root / "jazz" / "empty.wav").write_bytes(b"")
    report = verify_dataset(root, workers=1, progress=False)
    frame = report.manifest
    assert report.fingerprint == data_fingerprint(
        zip(frame["relative_path"], frame["content_hash"], frame["label"], strict=True))
    params = FeatureParams(representation="logmel", n_fft=512, hop_length=256, n_mels=16, frames=8)
    features = extract_features(discover_tracks(root), params, tmp_path / "cache", workers=1, progress=False)
    assert len(features.skipped) == 1
    assert report.fingerprint == features.fingerprint


def test_manifest_round_trip_and_staleness(tmp_path, caplog):
    import pandas as pd

    root = plant_duplicates(mixed_tree(tmp_path / "data"))
    (root / "jazz" / "empty.wav").write_bytes(b"")
    assert load_manifest(root) is None  # never verified
    report = verify_dataset(root, workers=1, progress=False)
    assert report.manifest_file == manifest_path(root) and report.manifest_file.is_file()
    assert not str(report.manifest_file).startswith(str(root))
    pd.testing.assert_frame_equal(load_manifest(root), report.manifest)

    touched = root / "jazz" / "jazz.00001.wav"
    stat = touched.stat()
    os.utime(touched, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    with caplog.at_level("INFO", logger="benchmark.data.verify"):
        assert load_manifest(root) is None
    assert "stale" in caplog.text and "re-verify" in caplog.text

    verify_dataset(root, workers=1, progress=False)
    assert load_manifest(root) is not None
    write_clip(root / "jazz" / "jazz.00002.wav", frequency=990)
    assert load_manifest(root) is None
    verify_dataset(root, workers=1, progress=False)
    (root / "jazz" / "jazz.00002.wav").unlink()
    assert load_manifest(root) is None


def test_cli_writes_a_copy_of_the_manifest_and_exits_0_when_clean(tmp_path, capsys):
    root = mixed_tree(tmp_path / "data")
    copy = tmp_path / "out" / "manifest.csv"
    # Two tracks a genre: only track lists can split them (clean means the split check passes too).
    lists = tmp_path / "lists"
    lists.mkdir()
    for name, tracks in {"train": "blues.00000\njazz.00000\n", "valid": "blues.00001\n", "test": "jazz.00001\n"}.items():
        (lists / f"{name}.txt").write_text(tracks)
    code, out, _ = verify_cli(root, "--manifest", copy, "--split-dir", lists, capsys=capsys)
    assert code == 0, out
    assert copy.read_text() == manifest_path(root).read_text()
    assert "data fingerprint: " in out and f"manifest: {manifest_path(root)}" in out


def test_missing_folder_is_one_error_line_exit_2(tmp_path, capsys):
    code, out, err = verify_cli(tmp_path / "nowhere", capsys=capsys)
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [f"error: data directory not found: {tmp_path / 'nowhere'}"]


def test_missing_split_folder_is_a_user_error(tmp_path, capsys):
    code, _, err = verify_cli(mixed_tree(tmp_path / "data"), "--split-dir", tmp_path / "none", capsys=capsys)
    assert code == 2 and err.strip().splitlines()[-1].startswith("error: split folder not found")


def test_real_gtzan_excerpts_are_clean(excerpts_dir, capsys):
    report = verify_dataset(excerpts_dir, workers=2, progress=False)
    frame = report.manifest
    assert len(frame) == 30 and frame["label"].nunique() == 10 and frame["decodable"].all()
    assert set(frame["sample_rate"]) == {22050} and set(frame["channels"]) == {1}
    assert frame["duration_seconds"].between(15.0, 20.0 + 1e-6).all()
    assert report.duplicates == [] and report.clean
    # Three clips a genre: three folds test, validate and train on one each (the paper split
    # cannot stratify 9 test clips over 10 genres, which verify reports as a finding).
    code, out, _ = verify_cli(excerpts_dir, "--set", 'split.protocol="kfold"', "--set", "split.folds=3",
                              "--set", "split.valid_fraction=0.5", capsys=capsys)
    assert code == 0, out
    assert "duplicates: none" in out and "undecodable" not in out
