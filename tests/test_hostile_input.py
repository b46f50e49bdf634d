"""Hostile input from the second hardening probe (issue 25, section 3): each case is one
``error:`` line and exit status 2, with nothing half-written, or it is handled.

- model entry names that MLflow or a file system cannot take;
- seeds outside NumPy's range;
- output paths that are folders, or lie under a file;
- audio files whose names are not valid UTF-8.

``ui`` and ``tune`` have their own modules' tests (test_cli.py, test_tune.py).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.helpers import Planter, assert_user_error, run_cli, write_clip

#: A file name that is not valid UTF-8 (0xC3 opens a two-byte sequence that "(" does not end),
#: as Python sees it: the bad byte as a lone surrogate.
NOT_UTF8_NAME = os.fsdecode(b"bad2\xc3\x28.wav")
#: The same name as runs, manifests and tables show it.
NOT_UTF8_SHOWN = "bad2\\xc3(.wav"


def _experiment_file(folder: Path, name: str) -> Path:
    path = folder / "hostile.toml"
    path.write_text(f'extends = "smoke"\n[run]\nmodels = [{json.dumps(name)}]\n'
                    f'[model.{json.dumps(name)}]\narchitecture = "cnn1d"\n')
    return path


# --- model entry names -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["cnn&1d", "../cnn1d", "a/b", "cnn..1d", " cnn1d", "-cnn1d", "x" * 101])
def test_unsafe_model_entry_names_are_refused_when_the_file_is_loaded(tmp_path, name):
    from benchmark.config import load_experiment
    from benchmark.errors import BenchmarkError

    with pytest.raises(BenchmarkError, match="letters, digits") as raised:
        load_experiment(_experiment_file(tmp_path, name), check_models=False)
    assert repr(name) in str(raised.value)


@pytest.mark.parametrize("name", ["cnn1d", "crnn-mfcc", "svm_handcrafted", "cnn1d.v2", "CNN1D"])
def test_safe_model_entry_names_load(tmp_path, name):
    from benchmark.config import load_experiment

    assert load_experiment(_experiment_file(tmp_path, name), check_models=False).run.models == (name,)


def test_run_with_an_unsafe_model_name_is_one_line_and_writes_nothing(tmp_path):
    # Before: the network trained, then MLflow refused the parameter key (MlflowException, exit 1).
    result = run_cli("run", "--all", "--experiment", str(_experiment_file(tmp_path, "cnn&1d")),
                     "--no-progress", cwd=tmp_path)
    assert_user_error(result, "model name 'cnn&1d' is not allowed")
    assert not (tmp_path / "mlruns").exists()


# --- seeds -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", ["-1", "4294967296"])
def test_a_seed_out_of_range_is_one_line_before_any_run(tmp_path, seed):
    # Before: ValueError from NumPy inside the unit, exit 1, and a FAILED run in the store.
    result = run_cli("run", "--model", "cnn1d", "--experiment", "smoke", "--seeds", seed, "--no-progress",
                     cwd=tmp_path)
    assert_user_error(result, f"--seeds {seed}: run.seeds.0: a seed is a whole number from 0 to 4294967295")
    assert not (tmp_path / "mlruns").exists()


@pytest.mark.parametrize("override", ["split.seed=-1", "data.synth_seed=4294967296", "run.seeds=[0, -2]"])
def test_seeds_in_files_and_overrides_are_checked_too(override):
    from benchmark.config import MAX_SEED, load_experiment
    from benchmark.errors import BenchmarkError

    with pytest.raises(BenchmarkError, match=f"a seed is a whole number from 0 to {MAX_SEED}"):
        load_experiment("smoke", [override], check_models=False)
    assert load_experiment("smoke", check_models=False, seeds=[0, MAX_SEED]).run.seeds == (0, MAX_SEED)


# --- output paths --------------------------------------------------------------------------------------

@pytest.fixture
def blocked(tmp_path) -> Path:
    """A folder holding a folder ``afolder`` and a file ``afile``, where outputs are aimed."""
    (tmp_path / "afolder").mkdir()
    (tmp_path / "afile").write_text("not a folder")
    return tmp_path


@pytest.mark.parametrize(("verb", "option", "target", "says"), [
    (["data", "features"], "--out", "afolder", "--out afolder is a folder"),
    (["data", "features"], "--out", "afile/table.csv", "--out afile/table.csv: afile is a file, not a folder"),
    (["data", "verify"], "--manifest", "afolder", "--manifest afolder is a folder"),
    (["data", "verify"], "--manifest", "afile/m.csv", "--manifest afile/m.csv: afile is a file, not a folder"),
])
def test_a_data_tool_aimed_at_a_folder_or_under_a_file_says_so_in_one_line(blocked, tone_tree, verb, option,
                                                                           target, says):
    # Before: IsADirectoryError or FileExistsError tracebacks after the slow part, and a .part file left.
    result = run_cli(*verb, str(tone_tree), option, target, "--no-progress", cwd=blocked)
    assert_user_error(result, says)
    assert not [path for path in blocked.rglob("*") if path.name.endswith(".part")]
    assert sorted(path.name for path in blocked.iterdir()) == ["afile", "afolder", "tones"]
    assert list((blocked / "afolder").iterdir()) == []


@pytest.mark.parametrize(("target", "says"), [
    ("afile", "--out afile is a file, not a folder"),
    ("afile/sub", "--out afile/sub: afile is a file, not a folder"),
])
def test_report_aimed_at_a_file_says_so_in_one_line(blocked, target, says):
    # Before: FileExistsError or NotADirectoryError tracebacks.
    planter = Planter(blocked / "store")
    planter.run("b1", "cnn1d", 0)
    result = run_cli("report", "--out", target, "--tracking-uri", planter.uri, cwd=blocked)
    assert_user_error(result, says)
    assert (blocked / "afile").read_text() == "not a folder"


# --- file names that are not UTF-8 ----------------------------------------------------------------

@pytest.fixture
def not_utf8_tree(tone_tree) -> Path:
    """The tone tree with one more blues clip whose file name is not valid UTF-8."""
    # Written under a plain name: soundfile itself cannot open such a name given as text.
    write_clip(tone_tree / "blues" / "plain.wav", frequency=250.0).rename(tone_tree / "blues" / NOT_UTF8_NAME)
    return tone_tree


def test_tracks_with_names_that_are_not_utf8_are_found_decoded_and_shown_escaped(not_utf8_tree):
    from benchmark.data.tracks import decode_native, discover_tracks

    track = next(track for track in discover_tracks(not_utf8_tree) if track.path.name == NOT_UTF8_NAME)
    assert (track.relative_path, track.track_id, track.name) == (
        f"blues/{NOT_UTF8_SHOWN}", NOT_UTF8_SHOWN.removesuffix(".wav"), NOT_UTF8_SHOWN)
    samples, rate = decode_native(track.path)  # before: skipped as "cannot decode: 'utf-8' codec can't encode"
    assert rate == 22050 and len(samples) == 22050


def test_verify_lists_a_name_that_is_not_utf8_escaped_and_writes_its_manifest(not_utf8_tree, tmp_path):
    # Before: UnicodeEncodeError from pandas, exit 1, no manifest.
    result = run_cli("data", "verify", str(not_utf8_tree), "--experiment", "smoke", "--manifest", "m.csv",
                     "--workers", "1", "--no-progress", cwd=tmp_path)
    assert result.returncode in (0, 1) and "Traceback" not in result.stderr, result.stderr
    blues = next(line.split() for line in result.stdout.splitlines() if line.startswith("blues "))
    assert blues[1:3] == ["5", "5"]  # five files, five decodable
    row = next(line for line in (tmp_path / "m.csv").read_text().splitlines() if "bad2" in line)
    assert row.startswith(f"blues/{NOT_UTF8_SHOWN},blues,") and ",True," in row


@pytest.mark.slow  # a planted champion and two predict commands: over 20 s on a busy 2-core machine
def test_predict_labels_a_file_whose_name_is_not_utf8(champion, not_utf8_tree, tmp_path):
    # Before: UnicodeEncodeError, exit 1, nothing labelled.
    result = run_cli("predict", str(not_utf8_tree / "blues"), "--format", "json", "--tracking-uri",
                     champion["uri"], "--no-progress", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    records = {Path(record["path"]).name: record for record in json.loads(result.stdout)}
    assert records[NOT_UTF8_SHOWN]["status"] == "ok" and records["blues.00000.wav"]["status"] == "ok"
    # The same clip's bytes under a plain name get the same genres: the file itself was labelled.
    plain = write_clip(tmp_path / "plain.wav", frequency=250.0)
    again = json.loads(run_cli("predict", str(plain), "--format", "json", "--tracking-uri", champion["uri"],
                               "--no-progress", cwd=tmp_path).stdout)
    top, top_again = records[NOT_UTF8_SHOWN]["top"], again[0]["top"]
    assert [item["genre"] for item in top] == [item["genre"] for item in top_again]
    # Approximately: a batch of one and a batch of five round differently.
    assert [item["probability"] for item in top] == pytest.approx([item["probability"] for item in top_again])


@pytest.mark.slow
def test_a_run_trains_on_a_clip_whose_name_is_not_utf8(tmp_path, shared_cache):
    from mlflow import MlflowClient

    from benchmark.config import load_experiment
    from benchmark.runner import run_experiment

    root = tmp_path / "clips"
    for index, genre in enumerate(("blues", "jazz", "rock")):
        for clip in range(8):
            write_clip(root / genre / f"{genre}.{clip:05d}.wav", frequency=220.0 * (index + 1) + 10 * clip)
    (root / "blues" / "blues.00007.wav").rename(root / "blues" / NOT_UTF8_NAME)
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    # Before: UnicodeEncodeError writing the run's tables, exit 1.
    outcome = run_experiment(load_experiment("smoke", data_dir=root), ["cnn1d"], tracking_uri=uri,
                             progress=False)
    run = MlflowClient(uri).get_run(outcome.runs[0].run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["tracks.skipped"] == "0"  # the clip was used, under its escaped name
