"""The command line: help everywhere, light start-up, user errors as one line and exit 2."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import PROJECT_ROOT, assert_user_error, free_port, run_cli, write_clip


@pytest.mark.parametrize(
    "verb",
    [[], ["run"], ["tune"], ["list"], ["data"], ["data", "synth"], ["data", "verify"], ["data", "download"], ["data", "features"],
     ["ui"]],
    ids=lambda v: " ".join(v) or "top",
)
def test_every_verb_has_help(verb):
    result = run_cli(*verb, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(" ".join(["usage: python -m benchmark", *verb]))


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


@pytest.mark.parametrize(("arguments", "fragment"), [
    (["--experiment", "smoke"], "say which models: --all, --model NAME ..., or --resume a batch"),
    (["--all", "--latest"], "--latest goes with --resume"),
    (["--resume", "20250101-120000-ab12cd", "--latest"], "one batch, not both"),
    (["--resume", "no such batch!"], "not a batch id"),
    (["--resume"], "no tracking store"),
    (["--all", "--max-concurrent", "2"], "go with --executor ray"),
    (["--all", "--executor", "ray", "--cpus-per-unit", "0"], "--cpus-per-unit must be above 0"),
])
def test_run_option_mistakes_are_one_line_exit_2(arguments, fragment, capsys):
    from benchmark.cli import main

    assert main(["run", *arguments]) == 2  # in this process: no start-up cost per case
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith("error: ") and fragment in lines[-1], lines


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
    assert_user_error(result, "every genre needs at least 10 tracks to be split into 10 folds")


# --- tune, latency and predict: mistakes are one line and exit 2, before any work ---------------
# In process (``main``, as ``python -m benchmark`` calls it): these verbs import Keras before they
# check anything, which a subprocess per case would pay for again and again.

def main_user_error(capsys, fragment, *args):
    """``main(args)`` returns 2 and its stderr ends in one ``error:`` line naming ``fragment``."""
    from benchmark.cli import main

    code = main(list(args))
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert lines[-1].startswith("error: ") and fragment in lines[-1], err


@pytest.mark.parametrize(("args", "fragment"), [
    (["--model", "cnn2d", "--trials", "0"], "--trials and --jobs must be at least 1"),
    (["--model", "cnn2d", "--jobs", "0"], "--trials and --jobs must be at least 1"),
    (["--model", "resnet"], "unknown model 'resnet'"),
], ids=["no-trials", "no-jobs", "unknown-model"])
def test_tune_mistakes_are_one_line_exit_2(tmp_path, capsys, args, fragment):
    main_user_error(capsys, fragment, "tune", "--experiment", "smoke", *args)
    assert not (tmp_path / "mlruns").exists()  # refused before any study, store or data was touched


def test_tune_with_a_storage_it_cannot_open_is_one_line_exit_2(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'no' / 'such' / 'folder' / 'optuna.db'}"
    main_user_error(capsys, f"cannot open Optuna storage {url}: ", "tune", "--experiment", "smoke",
                    "--model", "cnn2d", "--storage", url)


def test_latency_mistakes_are_one_line_exit_2(capsys):
    main_user_error(capsys, "--repeats and --batch-size must be at least 1",
                    "latency", "--experiment", "smoke", "--repeats", "0")
    # The names are checked before any experiment is read or network built: the model is named,
    # although the experiment does not exist either.
    main_user_error(capsys, "unknown model 'resnet'", "latency", "--model", "resnet", "--experiment", "nope.toml")


def test_predict_with_a_folder_that_is_not_an_audio_model_is_one_line_exit_2(tmp_path, capsys):
    import mlflow.sklearn
    from sklearn.dummy import DummyClassifier

    clip = write_clip(tmp_path / "clip.wav")
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    main_user_error(capsys, f"cannot load model {empty}", "predict", str(clip), "--model-uri", str(empty))
    # A real MLflow model, of another flavour: it loads, but it is not audio in, genres out.
    other = tmp_path / "sklearn-model"
    mlflow.sklearn.save_model(DummyClassifier().fit([[0.0], [1.0]], [0, 1]), str(other), pip_requirements=[])
    main_user_error(capsys, f"{other} is not an audio model", "predict", str(clip), "--model-uri", str(other))


# --- ui: the port is checked first, and the server goes with the command ----------------------------

@pytest.mark.parametrize("port", ["99999", "0"])
def test_ui_on_a_port_that_does_not_exist_is_one_line_exit_2(tmp_path, port):
    # Before: an OverflowError traceback from the server and exit status 0 (99999), or a server
    # on a random port that the printed address does not name (0).
    result = run_cli("ui", "--port", port, cwd=tmp_path, timeout=120)
    assert_user_error(result, f"--port {port} is not a TCP port: give one from 1 to 65535")
    assert result.stdout == ""


def test_ui_on_a_busy_port_is_one_line_exit_2_before_the_address(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        # Before: the address printed, then the server's "Address already in use", and exit status 0.
        result = run_cli("ui", "--port", str(port), cwd=tmp_path, timeout=120)
    assert_user_error(result, f"port {port} on 127.0.0.1 is in use: pass another --port")
    assert result.stdout == ""


def _process_group_members(group: int) -> list[int]:
    """The live processes of process group ``group``, from /proc."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()  # state, ppid, pgrp, ...
            if int(fields[2]) == group and fields[0] not in ("Z", "X"):
                members.append(int(stat.parent.name))
    return members


@pytest.mark.batches  # a real server, killed: tens of seconds
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to find the server's processes")
def test_kill_9_of_ui_takes_the_server_and_its_workers_down(tmp_path):
    import signal

    from tests.helpers import sigint_as_in_a_terminal, wait_for_http

    port = free_port()
    log = tmp_path / "ui.log"
    with log.open("w") as sink:
        ui = subprocess.Popen([sys.executable, "-m", "benchmark", "ui", "--port", str(port)], cwd=tmp_path,
                              stdout=sink, stderr=subprocess.STDOUT, preexec_fn=sigint_as_in_a_terminal)
    group = None
    try:
        wait_for_http(f"http://127.0.0.1:{port}/health", ui, what="benchmark ui", output=log.read_text)
        # The server leads a process group of its own (the launcher, uvicorn and its workers).
        group = next(pid for pid in _children(ui.pid) if b"mlflow" in Path(f"/proc/{pid}/cmdline").read_bytes())
        assert os.getpgid(group) == group
        server = _process_group_members(group)
        assert len(server) >= 3
        ui.send_signal(signal.SIGKILL)
        ui.wait(timeout=60)
        # Before: the server and its 4 workers went on listening (HTTP 200) for good.
        deadline = time.monotonic() + 60  # a bound, not a measure
        while _process_group_members(group) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _process_group_members(group) == []
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0  # nothing listens there any more
    finally:
        ui.kill()
        if group is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)


def _children(pid: int) -> list[int]:
    return [int(child) for task in Path(f"/proc/{pid}/task").iterdir()
            for child in (task / "children").read_text().split()]
