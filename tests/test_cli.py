"""The command line: help everywhere, light start-up, user errors as one line and exit 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers import PROJECT_ROOT, assert_user_error, free_port, run_cli


@pytest.mark.parametrize(
    "verb", [[], ["run"], ["list"], ["data"], ["data", "synth"], ["ui"]], ids=lambda v: " ".join(v) or "top"
)
def test_every_verb_has_help(verb):
    result = run_cli(*verb, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: python -m benchmark")


def test_help_imports_no_heavy_library():
    # --help must answer at once: nothing that pulls in a backend, MLflow or librosa at start-up.
    code = (
        "import sys\n"
        "from benchmark.cli import build_parser\n"
        "try:\n    build_parser().parse_args(['run', '--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = {'keras', 'tensorflow', 'jax', 'torch', 'mlflow', 'librosa', 'pandas', 'sklearn'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"



def test_unknown_model_is_one_line_exit_2():
    assert_user_error(run_cli("run", "--model", "resnet", "--experiment", "smoke"), "unknown model 'resnet'")


def test_unknown_experiment_is_one_line_exit_2():
    assert_user_error(run_cli("run", "--all", "--experiment", "nope.toml"), "experiment file not found")


def test_bad_override_is_one_line_exit_2():
    assert_user_error(
        run_cli("run", "--all", "--experiment", "smoke", "--set", "train.epochs=-1"), "train.epochs"
    )


def test_missing_data_dir_is_one_line_exit_2(tmp_path):
    result = run_cli("run", "--all", "--experiment", "smoke", "--data-dir", str(tmp_path / "missing"),
                     cwd=tmp_path)
    assert_user_error(result, "data directory not found")


def test_paper_without_data_dir_says_what_to_pass(tmp_path):
    assert_user_error(run_cli("run", "--all", "--experiment", "paper", cwd=tmp_path), "--data-dir")


def test_unreachable_tracking_server_is_one_line_exit_2(tmp_path):
    port = free_port()  # nothing listens there
    result = run_cli("run", "--all", "--experiment", "smoke", "--tracking-uri", f"http://127.0.0.1:{port}",
                     cwd=tmp_path)
    assert_user_error(result, f"cannot reach the MLflow tracking server at http://127.0.0.1:{port}")


def test_bad_synth_argument_is_one_line_exit_2(tmp_path):
    assert_user_error(run_cli("data", "synth", "--out", str(tmp_path / "s"), "--seconds", "-1"), "seconds")


def test_list_shows_models_and_experiments():
    result = run_cli("list")
    assert result.returncode == 0, result.stderr
    for name in ("fcnn", "cnn1d", "cnn2d", "crnn", "default", "smoke", "paper"):
        assert name in result.stdout


def test_missing_split_dir_is_one_line_exit_2(tone_tree, tmp_path):
    result = run_cli("run", "--all", "--experiment", "smoke", "--data-dir", str(tone_tree),
                     "--split-dir", str(tmp_path / "no-lists"), cwd=tmp_path)
    assert_user_error(result, "split folder not found")


def test_more_folds_than_tracks_is_one_line_exit_2(tone_tree, tmp_path):
    result = run_cli("run", "--all", "--experiment", "smoke", "--data-dir", str(tone_tree),
                     "--set", 'split.protocol="kfold"', "--set", "split.folds=10", cwd=tmp_path)
    assert_user_error(result, "every genre needs at least 11 tracks to be split into 10 folds")
