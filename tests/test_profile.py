"""``python -m benchmark profile``: every stage and floor measured, ratios from the profile's own
numbers, nothing left in the user's store or feature cache, mistakes as one line.

No assertion here says that anything is fast: the numbers depend on the machine and its load.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.helpers import sigint_as_in_a_terminal, write_clip

SMOKE_MODELS = ("cnn1d", "crnn")


def _profile(*arguments: str) -> int:
    from benchmark.cli import main

    return main(["profile", "--experiment", "smoke", "--no-progress", *arguments])


def _stage(profile: dict, name: str, key: str | None = None) -> dict:
    (found,) = [item for item in profile["stages"] if (item["stage"], item["key"]) == (name, key)]
    return found


@pytest.fixture(scope="module")
def smoke_profile(tmp_path_factory, shared_cache):
    """One profile of two smoke networks, 1 epoch, into JSON (shared by the tests that read it)."""
    folder = tmp_path_factory.mktemp("profile")
    patch = pytest.MonkeyPatch()
    patch.chdir(folder)
    patch.setenv("GENRE_BENCHMARK_CACHE", str(shared_cache))
    patch.delenv("MLFLOW_TRACKING_URI", raising=False)
    try:
        status = _profile("--models", *SMOKE_MODELS, "--epochs", "1", "--json", str(folder / "profile.json"))
    finally:
        patch.undo()
    assert status == 0
    return folder, json.loads((folder / "profile.json").read_text())


def test_every_stage_is_measured(smoke_profile):
    _, profile = smoke_profile
    assert profile["mode"] == "pipeline" and profile["experiment"] == "smoke" and profile["epochs"] == 1
    expected = [("startup", None), ("logging", "store"), ("data", None), ("extraction", "logmel"),
                ("inputs", "logmel")] + [(name, model) for model in SMOKE_MODELS
                                         for name in ("fit", "evaluate", "logging")]
    assert [(item["stage"], item["key"]) for item in profile["stages"]] == expected
    for item in profile["stages"]:
        assert item["seconds"] > 0 and item["peak_rss_mb"] > 0, item
    extraction = _stage(profile, "extraction", "logmel")
    assert extraction["items"] == 80 and extraction["items_per_second"] > 0  # 10 genres x 8 clips
    assert profile["harness"]["unaccounted_seconds"] >= 0  # stages never overlap, nor outlast the wall


def test_every_model_and_floor_is_measured(smoke_profile):
    _, profile = smoke_profile
    assert set(profile["models"]) == set(SMOKE_MODELS)
    for model in SMOKE_MODELS:
        values = profile["models"][model]
        assert values["kind"] == "network" and values["epochs"] == 1 and values["train_samples"] > 0
        assert values["fit_seconds"] == _stage(profile, "fit", model)["seconds"]
        assert values["seconds_per_epoch"] > 0 and values["samples_per_second"] > 0
        assert values["evaluate_seconds"] > 0 and values["logging_seconds"] > 0
        bare = profile["floors"]["bare_fit"][model]
        assert bare["seconds"] > 0 and bare["epochs"] == 1 and bare["train_samples"] == values["train_samples"]
    fft = profile["floors"]["fft"]["logmel"]
    assert fft["seconds"] > 0 and fft["clips"] == 80 and fft["frames"] > 0


def test_ratios_are_harness_over_floor_from_the_profile_itself(smoke_profile):
    _, profile = smoke_profile
    ratios, floors = profile["ratios"], profile["floors"]
    for model in SMOKE_MODELS:
        expected = profile["models"][model]["fit_seconds"] / floors["bare_fit"][model]["seconds"]
        assert ratios["fit"][model] == pytest.approx(expected)
    bare_total = sum(values["seconds"] for values in floors["bare_fit"].values())
    assert ratios["overall"] == pytest.approx(profile["harness"]["seconds"] / bare_total)
    assert ratios["extraction"]["logmel"] == pytest.approx(
        _stage(profile, "extraction", "logmel")["seconds"] / floors["fft"]["logmel"]["seconds"])


def test_profile_records_the_machine_and_leaves_no_trace(smoke_profile, shared_cache):
    folder, profile = smoke_profile
    machine = profile["machine"]
    assert machine["cpu_count"] >= 1 and machine["python"] and machine["keras"] and machine["backend"]
    assert machine["git_commit"]
    assert profile["cache"] == {"features": "cold", "root": None}
    assert profile["tracking"]["throwaway"] is True
    assert not (folder / "mlruns").exists()  # the user's store (the working directory's) untouched
    assert os.environ["GENRE_BENCHMARK_CACHE"] == str(shared_cache)  # the cache variable restored


def test_the_table_shows_each_ratio_beside_its_floor(smoke_profile, capsys):
    folder, _ = smoke_profile
    from benchmark.profiling.report import format_table

    table = format_table(json.loads((folder / "profile.json").read_text()))
    rows = {line.split()[0] + " " + line.split()[1]: line for line in table.splitlines() if line.count("  ") > 2}
    for model in SMOKE_MODELS:
        assert "bare fit" in rows[f"fit {model}"] and rows[f"fit {model}"].rstrip().endswith("x")
    assert "FFT" in rows["extraction logmel"] and "clips/s" in rows["extraction logmel"]
    assert any(line.startswith("harness wall") and "sum of bare fits" in line for line in table.splitlines())


def test_synthetic_inputs_time_the_networks_without_audio(tmp_path):
    path = tmp_path / "synthetic.json"
    status = _profile("--synthetic-inputs", "--models", "fcnn", "cnn2d", "--set", "features.n_mels=16",
                      "--set", "features.frames=32", "--clips", "8", "--epochs", "2", "--json", str(path))
    assert status == 0
    profile = json.loads(path.read_text())
    assert profile["mode"] == "synthetic-inputs" and profile["clips"] == 8
    assert {item["stage"] for item in profile["stages"]} == {"startup", "inputs", "fit"}
    for name in ("fcnn", "cnn2d"):
        model = profile["models"][name]
        assert model["epochs"] == 2 and model["train_samples"] == 8 and model["seconds_per_epoch"] > 0
        bare = profile["floors"]["bare_fit"][name]
        assert bare["seconds"] > 0 and bare["epochs"] == 2
        assert profile["ratios"]["fit"][name] == pytest.approx(model["fit_seconds"] / bare["seconds"])
    assert profile["floors"]["fft"] == {} and not (tmp_path / "mlruns").exists()


def test_synthetic_input_shape_follows_the_experiment(tmp_path):
    from benchmark.config import load_experiment
    from benchmark.profiling.synthetic import input_shape

    assert input_shape(load_experiment("paper", data_dir=tmp_path), "cnn2d") == (1025, 1320)
    assert input_shape(load_experiment("smoke"), "crnn") == (48, 64)


def test_ctrl_c_leaves_no_running_run(tmp_path, monkeypatch):
    import benchmark.evaluate
    from benchmark.interrupts import Interrupted
    from tests.helpers import client_for

    def interrupted(*_args, **_kwargs):
        raise Interrupted(signal.SIGINT)

    monkeypatch.setattr(benchmark.evaluate, "evaluate_model", interrupted)
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    assert _profile("--models", "cnn1d", "--epochs", "1", "--tracking-uri", uri) == 128 + signal.SIGINT
    runs = client_for(uri).search_runs([experiment.experiment_id
                                        for experiment in client_for(uri).search_experiments()])
    assert [run.info.status for run in runs] == ["KILLED"]


@pytest.mark.parametrize(("arguments", "fragment"), [
    (["--models", "resnet"], "unknown model 'resnet'"),
    (["--experiment", "nope.toml"], "experiment file not found"),
    (["--epochs", "0"], "--epochs must be at least 1"),
    (["--synthetic-inputs", "--clips", "0"], "--clips must be at least 1"),
    (["--synthetic-inputs", "--warm-cache"], "--synthetic-inputs reads no audio"),
    (["--synthetic-inputs", "--models", "svm", "--set", "model.svm.features.representation='handcrafted'"],
     "none of the models given is one"),
])
def test_mistakes_are_one_line_exit_2(arguments, fragment, capsys):
    from benchmark.cli import main

    assert main(["profile", "--no-progress", *arguments]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith("error: ") and fragment in lines[-1], lines


# --- the parts -------------------------------------------------------------------------------------

def test_stages_cost_nothing_unless_recorded():
    from benchmark.profiling import memory, recording, stage

    assert stage("fit", "cnn2d") is stage("data")  # one shared null context
    with recording() as recorder:
        with stage("fit", "a"):
            block = b"\x01" * (256 * 1024 * 1024)  # resident, then returned: a peak of the outer stage
            del block
            with stage("inner"):  # resets the peak: the outer stage's must survive it
                pass
        with stage("fit", "a", items=3):
            pass
    outer, inner = recorder.get("fit", "a"), recorder.get("inner")
    assert outer.entries == 2 and outer.items == 3 and outer.seconds >= inner.seconds
    if memory.peak_is_per_stage():
        assert outer.peak_rss - inner.peak_rss > 200 * 1024 * 1024
    with stage("ignored"):
        pass
    assert recorder.get("ignored") is None  # recording ended with the block


def test_cold_cache_shares_all_but_the_features(shared_cache):
    from benchmark.paths import cache_root
    from benchmark.profiling.cache import profile_workspace

    (shared_cache / "features").mkdir(exist_ok=True)
    with profile_workspace(cold_cache=True, tracking_uri=None) as workspace:
        assert cache_root() == workspace.cache_root != shared_cache
        assert (workspace.cache_root / "synthetic").resolve() == (shared_cache / "synthetic").resolve()
        assert not (workspace.cache_root / "features").exists()
        assert workspace.tracking_uri.startswith("sqlite:///") and workspace.throwaway_store
    assert cache_root() == shared_cache and not workspace.cache_root.exists()


def test_fft_floor_frames_clips_as_extraction_does(tmp_path):
    from benchmark.profiling.floors import fft_floor

    clips = [write_clip(tmp_path / f"{index}.wav", seconds=1.0, frequency=300.0 + index) for index in range(3)]
    floor = fft_floor(clips, sample_rate=22050, n_fft=2048, hop_length=512, n_samples=22050)
    assert floor.clips == 3 and floor.frames == 3 * (1 + 22050 // 512) and floor.seconds > 0


def test_profile_has_help(capsys):
    from benchmark.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["profile", "--help"])
    assert exited.value.code == 0
    help_text = capsys.readouterr().out
    assert help_text.startswith("usage: python -m benchmark profile") and "--synthetic-inputs" in help_text


def test_tree_memory_counts_the_processes_time_cannot_see_and_passes_on_the_exit_status(tmp_path):
    """A grandchild allocates 200 MB: /usr/bin/time -v would report the parent's few MB."""
    grandchild = "import numpy, time; a = numpy.ones(200_000_000 // 8); time.sleep(1.5)"
    child = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {grandchild!r}]); sys.exit(3)"
    report = tmp_path / "tree.json"
    done = subprocess.run([sys.executable, "-m", "benchmark.profiling.tree_memory", "--json", str(report), "--",
                           sys.executable, "-c", child], capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, done.stderr
    assert "process tree:" in done.stderr and "peak PSS" in done.stderr
    peak = json.loads(report.read_text())
    assert peak["processes"] >= 2 and peak["exit_status"] == 3
    assert peak["largest_anonymous"] >= 190e6 and peak["anonymous"] >= 190e6 and peak["pss"] >= 190e6


def test_tree_memory_without_a_command_is_a_usage_error():
    done = subprocess.run([sys.executable, "-m", "benchmark.profiling.tree_memory"], capture_output=True, text=True)
    assert done.returncode == 2 and "give the command to measure" in done.stderr


def test_tree_memory_interrupted_stops_its_command_and_says_so_in_one_line():
    command = [sys.executable, "-m", "benchmark.profiling.tree_memory", "--", sys.executable, "-c",
               "import time; time.sleep(60)"]
    # SIGINT at its default whatever this test run inherited (a background job starts it ignored).
    sampler = subprocess.Popen(command, stderr=subprocess.PIPE, text=True,
                               preexec_fn=sigint_as_in_a_terminal)
    time.sleep(1.5)
    sampler.send_signal(signal.SIGINT)  # the sampler alone: it passes the interrupt on
    _, stderr = sampler.communicate(timeout=30)
    assert sampler.returncode == 130
    assert stderr.strip().splitlines()[-1] == "error: interrupted"
    assert "KeyboardInterrupt" in stderr  # the command's own: the interrupt reached it


# --- steady state apart from start-up; the GPU's busy fraction ---------------------------------------

def assert_steady_state_is_consistent(values: dict, epochs: int) -> None:
    """Per-epoch seconds, steady s/epoch (median of 2..n) and compile (first minus steady) agree."""
    import statistics

    seconds = values["epoch_seconds"]
    assert len(seconds) == epochs and all(value > 0 for value in seconds)
    assert values["first_epoch_seconds"] == seconds[0]
    assert sum(seconds) <= values.get("fit_seconds", values.get("seconds"))  # epochs lie inside the fit
    if epochs == 1:
        assert values["steady_seconds_per_epoch"] is None and values["compile_seconds"] is None
    else:
        assert values["steady_seconds_per_epoch"] == pytest.approx(statistics.median(seconds[1:]))
        assert values["compile_seconds"] == pytest.approx(seconds[0] - values["steady_seconds_per_epoch"])


def test_a_pipeline_profile_times_each_epoch_of_each_network(smoke_profile):
    _, profile = smoke_profile
    for model in SMOKE_MODELS:
        assert_steady_state_is_consistent(profile["models"][model], 1)
        assert_steady_state_is_consistent(profile["floors"]["bare_fit"][model], 1)
        assert profile["ratios"]["steady"][model] is None  # one epoch: no steady state to compare


NO_NVIDIA_DEVICE = not list(__import__("pathlib").Path("/dev").glob("nvidia[0-9]*"))


def test_synthetic_inputs_tell_steady_state_from_start_up(tmp_path, capsys):
    path = tmp_path / "steady.json"
    status = _profile("--synthetic-inputs", "--models", "fcnn", "--set", "features.n_mels=16", "--set",
                      "features.frames=32", "--set", "model.fcnn.units=32", "--clips", "8", "--epochs", "3",
                      "--json", str(path))
    assert status == 0
    profile = json.loads(path.read_text())
    harness, bare = profile["models"]["fcnn"], profile["floors"]["bare_fit"]["fcnn"]
    assert_steady_state_is_consistent(harness, 3)
    assert_steady_state_is_consistent(bare, 3)
    assert profile["ratios"]["steady"]["fcnn"] == pytest.approx(
        harness["steady_seconds_per_epoch"] / bare["steady_seconds_per_epoch"])
    assert profile["machine"]["device"]
    table = capsys.readouterr().out
    assert "steady s/epoch" in table and "compile" in table
    if NO_NVIDIA_DEVICE:
        assert harness["gpu_busy"] is None and bare["gpu_busy"] is None
        assert profile["gpu_busy"] == {"sampled": False, "device": None, "note": "no NVIDIA GPU"}
        assert "no NVIDIA GPU" in table and profile["machine"]["device"] == "cpu"
    else:
        assert 0 <= harness["gpu_busy"]["steady"] <= 1


def test_the_busy_sampler_averages_the_samples_inside_a_window():
    from benchmark.profiling.gpu_busy import BusySampler

    readings = iter([0.0, 1.0] * 1000)
    with BusySampler(lambda: next(readings), device="fake", interval=0.001) as sampler:
        while len(sampler.samples) < 20:
            time.sleep(0.01)
    assert len(sampler.samples) >= 20 and sampler.device == "fake"
    times = [when for when, _ in sampler.samples]
    assert times == sorted(times)
    assert sampler.fraction((times[0], times[3])) == pytest.approx(0.5)  # 0, 1, 0, 1
    assert sampler.fraction((times[1], times[1])) == 1.0
    assert sampler.fraction((times[-1] + 1, times[-1] + 2)) is None  # no sample there
    assert sampler.fraction(None) is None


def test_a_failing_read_is_a_missed_sample_not_a_failure():
    from benchmark.profiling.gpu_busy import BusySampler

    calls = []

    def read():
        calls.append(1)
        if len(calls) % 2:
            raise RuntimeError("driver busy")
        return 0.25

    with BusySampler(read, device="fake", interval=0.001) as sampler:
        while len(sampler.samples) < 5:
            time.sleep(0.01)
    assert {busy for _, busy in sampler.samples} == {0.25}


@pytest.mark.skipif(not NO_NVIDIA_DEVICE, reason="a machine with an NVIDIA GPU samples it")
def test_without_an_nvidia_gpu_there_is_no_sampler():
    from benchmark.profiling.gpu_busy import nvml_sampler

    assert nvml_sampler() is None


def test_steady_state_of_epoch_windows():
    from benchmark.profiling.epochs import fit_span, steady_span, steady_state

    windows = [(0.0, 10.0), (10.0, 12.0), (12.0, 15.0), (15.0, 17.0)]  # 10, 2, 3, 2 seconds
    assert steady_state(windows) == {"epoch_seconds": [10.0, 2.0, 3.0, 2.0], "first_epoch_seconds": 10.0,
                                     "steady_seconds_per_epoch": 2.0, "compile_seconds": 8.0}
    assert steady_span(windows) == (10.0, 17.0) and fit_span(windows) == (0.0, 17.0)
    assert steady_state([]) == {"epoch_seconds": [], "first_epoch_seconds": None,
                                "steady_seconds_per_epoch": None, "compile_seconds": None}
    assert steady_span(windows[:1]) is None and fit_span([]) is None
