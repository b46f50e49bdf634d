"""Choosing the Keras backend: ``select_backend``, ``run.backend`` and ``--backend``.

Keras is imported with TensorFlow in this test process, so selecting another backend here must
fail; a backend that is not installed is faked by patching ``importlib.util.find_spec``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.backend import BACKENDS, current_backend, select_backend
from benchmark.config import load_experiment
from benchmark.errors import BenchmarkError
from tests.helpers import PROJECT_ROOT, assert_user_error, client_for, run_cli, store_uri


@pytest.fixture(autouse=True)
def keep_keras_backend(monkeypatch):
    """select_backend writes KERAS_BACKEND: put it back after each test."""
    monkeypatch.setenv("KERAS_BACKEND", os.environ.get("KERAS_BACKEND", "tensorflow"))


def fake_find_spec(monkeypatch, *, missing=(), present=()):
    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        if name in missing:
            return None
        if name in present:
            return importlib.machinery.ModuleSpec(name, None)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def test_the_backends_are_the_three_keras_ones():
    assert BACKENDS == ("tensorflow", "jax", "torch")


def test_an_unknown_backend_is_an_error_naming_it_and_the_known_ones(monkeypatch):
    with pytest.raises(BenchmarkError, match="unknown Keras backend 'nonsense'") as error:
        select_backend("nonsense")
    assert all(name in str(error.value) for name in BACKENDS)
    assert os.environ["KERAS_BACKEND"] == "tensorflow"  # unchanged


def test_an_unknown_backend_in_the_environment_is_an_error_too(monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "theano")
    with pytest.raises(BenchmarkError, match="unknown Keras backend 'theano'"):
        select_backend(None)


@pytest.mark.parametrize("name", ["jax", "torch"])
def test_a_backend_that_is_not_installed_says_how_to_install_it(monkeypatch, name):
    fake_find_spec(monkeypatch, missing=(name,))
    with pytest.raises(BenchmarkError) as error:
        select_backend(name)
    message = str(error.value)
    assert f"'{name}' is not installed" in message
    assert f"pip install 'genre-benchmark[{name}]'" in message
    assert os.environ["KERAS_BACKEND"] == "tensorflow"


def test_tensorflow_not_installed_is_an_error_without_an_extra_to_install(monkeypatch):
    fake_find_spec(monkeypatch, missing=("tensorflow",))
    with pytest.raises(BenchmarkError, match="'tensorflow' is not installed") as error:
        select_backend("tensorflow")
    assert "genre-benchmark[" not in str(error.value)


def test_switching_after_keras_was_imported_with_another_backend_is_an_error(monkeypatch):
    import keras

    assert keras.backend.backend() == "tensorflow"
    fake_find_spec(monkeypatch, present=("jax",))  # installed or not, Keras cannot switch
    with pytest.raises(BenchmarkError) as error:
        select_backend("jax")
    message = str(error.value)
    assert "already runs on 'tensorflow'" in message and "'jax'" in message
    assert "KERAS_BACKEND=jax" in message  # what to do instead
    assert os.environ["KERAS_BACKEND"] == "tensorflow"


def test_selecting_the_running_backend_sets_keras_backend(monkeypatch):
    import keras  # noqa: F401  the running backend is TensorFlow

    monkeypatch.delenv("KERAS_BACKEND")
    assert current_backend() == "tensorflow"
    assert select_backend("tensorflow") == "tensorflow"
    assert os.environ["KERAS_BACKEND"] == "tensorflow"
    monkeypatch.delenv("KERAS_BACKEND")
    assert select_backend(None) == "tensorflow"  # unset: the default, written down for child processes
    assert os.environ["KERAS_BACKEND"] == "tensorflow"


def test_run_backend_is_validated_with_its_key():
    assert load_experiment("smoke").run.backend is None
    assert load_experiment("smoke", ["run.backend=jax"]).run.backend == "jax"
    with pytest.raises(BenchmarkError, match=r"run\.backend"):
        load_experiment("smoke", ["run.backend=theano"])


def test_the_backend_is_part_of_a_units_settings(monkeypatch):
    from benchmark.batch import config_hash, unit_settings

    config = load_experiment("smoke")
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    tensorflow = unit_settings(config, "cnn2d")
    assert tensorflow["backend"] == "tensorflow"
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    jax = unit_settings(config, "cnn2d")
    assert jax["backend"] == "jax"
    assert config_hash(jax) != config_hash(tensorflow)


# --- the command line ------------------------------------------------------------------------------

def parsed_overrides(*arguments):
    """The overrides `run` applies for these options: ``--set``'s, then ``--backend``'s."""
    from benchmark.cli import build_parser
    from benchmark.cli.options import experiment_overrides

    return experiment_overrides(build_parser().parse_args(["run", "--model", "fcnn", *arguments]))


def test_backend_option_is_an_override_of_run_backend():
    assert parsed_overrides("--backend", "tensorflow") == ["run.backend=tensorflow"]
    assert parsed_overrides("--set", "train.epochs=2", "--backend", "jax") == ["train.epochs=2", "run.backend=jax"]
    assert parsed_overrides() == []


@pytest.mark.parametrize("order", ["flag first", "flag last"])
def test_backend_option_wins_over_a_set_of_run_backend_wherever_it_stands(order):
    # Explicit CLI flags win over --set (benchmark.config's merge order); the help says --backend
    # "overrides run.backend".
    flag, setting = ["--backend", "tensorflow"], ["--set", "run.backend=jax"]
    arguments = [*flag, *setting] if order == "flag first" else [*setting, *flag]
    assert load_experiment("smoke", parsed_overrides(*arguments)).run.backend == "tensorflow"


def test_unknown_backend_option_is_an_argparse_error():
    result = run_cli("run", "--backend", "nonsense", "--experiment", "smoke", "--model", "fcnn", timeout=120)
    assert result.returncode == 2, result.stderr
    assert "invalid choice: 'nonsense'" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_backend_that_is_not_installed_is_one_error_line(tmp_path):
    if importlib.util.find_spec("torch") is not None:
        pytest.skip("torch is installed in this environment")
    result = run_cli("run", "--backend", "torch", "--experiment", "smoke", "--model", "fcnn", "--in-process",
                     "--no-progress", cwd=tmp_path, timeout=300)
    assert_user_error(result, "the Keras backend 'torch' is not installed (pip install 'genre-benchmark[torch]')")
    assert not (tmp_path / "mlruns").exists()  # failed before any work


def test_the_backend_is_chosen_before_keras_is_imported(tmp_path):
    """Keras reads KERAS_BACKEND once, at import: `run` must choose the backend before anything
    imports Keras, or `--backend jax` (or `run.backend = "jax"`) can never take effect."""
    probe = (
        "import sys\n"
        "import benchmark.backend as backend\n"
        "def select_backend(name):\n"
        "    print('keras imported:', 'keras' in sys.modules, flush=True)\n"
        "    raise SystemExit(0)\n"
        "backend.select_backend = select_backend\n"
        "from benchmark.cli import main\n"
        "main(['run', '--experiment', 'smoke', '--model', 'fcnn', '--in-process', '--no-progress'])\n"
    )
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path,
                            env=env, timeout=300, check=False)
    assert "keras imported:" in result.stdout, result.stderr[-3000:]
    assert "keras imported: False" in result.stdout


def test_a_run_records_its_backend_in_tags_and_unit_record(tmp_path, monkeypatch):
    from benchmark.cli import main

    uri = store_uri(tmp_path)
    status = main(["run", "--backend", "tensorflow", "--in-process", "--experiment", "smoke", "--model", "fcnn",
                   "--set", "model.fcnn.units=32", "--set", "model.fcnn.n_layers=1", "--no-progress",
                   "--tracking-uri", uri])
    assert status == 0
    assert os.environ["KERAS_BACKEND"] == "tensorflow"
    client = client_for(uri)
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()],
                                filter_string="tags.run_kind = 'train'")
    assert run.data.tags["keras_backend"] == "tensorflow"
    record = json.loads(Path(client.download_artifacts(run.info.run_id, "unit.json")).read_text())
    assert record["settings"]["backend"] == "tensorflow"
    assert record["experiment"]["run"]["backend"] == "tensorflow"  # a resume selects it again


NO_NVIDIA_DEVICE = not list(Path("/dev").glob("nvidia[0-9]*"))


@pytest.mark.skipif(not NO_NVIDIA_DEVICE or importlib.util.find_spec("tensorflow") is None,
                    reason="needs TensorFlow on a machine without an NVIDIA device")
def test_without_a_gpu_tensorflow_logs_no_failed_cuinit_error_in_each_training_process():
    env = {name: value for name, value in os.environ.items() if name != "TF_CPP_MIN_LOG_LEVEL"}
    code = "import benchmark, tensorflow as tf; tf.constant(1.0) + 1.0"
    chatty = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**env, "TF_CPP_MIN_LOG_LEVEL": "0"}, timeout=120)  # the user's level wins
    if "cuInit" not in chatty.stderr:
        pytest.skip("this TensorFlow build does not probe CUDA")
    quiet = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert quiet.returncode == 0, quiet.stderr
    assert "cuInit" not in quiet.stderr


def test_ray_forwards_only_the_users_own_tensorflow_log_level(monkeypatch):
    import benchmark
    from benchmark.distributed import _runtime_env

    monkeypatch.setattr(benchmark, "USER_TF_LOG_LEVEL", None)
    assert "TF_CPP_MIN_LOG_LEVEL" not in _runtime_env()["env_vars"]  # each node picks its own
    monkeypatch.setattr(benchmark, "USER_TF_LOG_LEVEL", "1")
    assert _runtime_env()["env_vars"]["TF_CPP_MIN_LOG_LEVEL"] == "1"


# --- on a GPU: memory policy, quiet logs, the device -------------------------------------------------

def test_the_memory_policy_lets_processes_share_a_gpu_and_the_users_values_win():
    from benchmark.backend import memory_policy, with_memory_policy

    assert memory_policy({}, "jax") == {"XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
    assert memory_policy({}, "tensorflow") == {"TF_FORCE_GPU_ALLOW_GROWTH": "true"}
    assert memory_policy({}, "torch") == {}
    assert memory_policy({"KERAS_BACKEND": "jax"}) == {"XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
    assert memory_policy({}) == {"TF_FORCE_GPU_ALLOW_GROWTH": "true"}  # the default backend's
    assert memory_policy({"XLA_PYTHON_CLIENT_MEM_FRACTION": ".45"}, "jax") == {}  # a policy of the user's
    own = {"TF_FORCE_GPU_ALLOW_GROWTH": "false"}
    assert with_memory_policy(own, "tensorflow") == own


def test_selecting_a_backend_sets_its_memory_policy_where_the_user_set_none(monkeypatch):
    import keras  # noqa: F401  the running backend is TensorFlow

    monkeypatch.delenv("TF_FORCE_GPU_ALLOW_GROWTH", raising=False)
    select_backend("tensorflow")
    assert os.environ["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
    monkeypatch.setenv("TF_FORCE_GPU_ALLOW_GROWTH", "false")
    select_backend("tensorflow")
    assert os.environ["TF_FORCE_GPU_ALLOW_GROWTH"] == "false"


def test_ray_tasks_get_the_memory_policy_or_the_users_own(monkeypatch):
    from benchmark.distributed import _runtime_env

    for name in ("XLA_PYTHON_CLIENT_PREALLOCATE", "XLA_PYTHON_CLIENT_MEM_FRACTION", "TF_FORCE_GPU_ALLOW_GROWTH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    assert _runtime_env()["env_vars"]["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"
    monkeypatch.setenv("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.4")
    forwarded = _runtime_env()["env_vars"]
    assert forwarded["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.4" and "XLA_PYTHON_CLIENT_PREALLOCATE" not in forwarded


def test_quiet_backend_logs_hide_probes_and_int64_truncation_but_keep_warnings(recwarn):
    import logging
    import warnings

    from benchmark.backend import quiet_backend_logs

    quiet_backend_logs()
    probe = logging.getLogger("jax._src.xla_bridge")
    assert not probe.isEnabledFor(logging.INFO)  # "Unable to initialize backend 'tpu'" is an INFO line
    assert probe.isEnabledFor(logging.WARNING)  # "CUDA backend failed to initialize" still shows
    warnings.warn("Explicitly requested dtype int64 requested in asarray is not available, and will be "
                  "truncated to dtype int32. To enable more dtypes, set the jax_enable_x64 ...", UserWarning, stacklevel=1)
    warnings.warn("something else", UserWarning, stacklevel=1)
    assert [str(warning.message) for warning in recwarn] == ["something else"]


@pytest.mark.skipif(not NO_NVIDIA_DEVICE, reason="a machine with an NVIDIA device names it")
def test_without_a_gpu_the_device_in_use_is_the_cpu():
    import keras  # noqa: F401  TensorFlow here; JAX's answer is checked in test_isolation

    from benchmark.backend import device_in_use

    assert device_in_use("tensorflow") == "cpu"
