"""``scripts/gpu-figures.sh``: every GPU figure of one run, kept runnable on this CPU machine.

The script is meant for a GPU machine lent for minutes; here its dry run checks each step's
command, and its tiny mode (``GPU_FIGURES_TINY=1``) runs every step at the smoke size, so a
change to the commands it calls breaks a test rather than the next GPU session.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.helpers import PROJECT_ROOT

SCRIPT = PROJECT_ROOT / "scripts" / "gpu-figures.sh"


def run_script(out, cache, **variables):
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable, "PYTHONPATH": str(PROJECT_ROOT),
           "GENRE_BENCHMARK_CACHE": str(cache), **variables}
    env.pop("KERAS_BACKEND", None)  # the script's own default: JAX
    return subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=env, cwd=out,
                          timeout=3000, check=False)


def test_the_dry_run_names_every_step_each_with_a_timeout_and_its_log_under_out(tmp_path):
    from benchmark.config import FEEDS

    done = run_script(tmp_path, tmp_path / "cache", GPU_FIGURES_DRY_RUN="1")
    assert done.returncode == 0, done.stderr
    commands = [line for line in done.stdout.splitlines() if line.startswith("timeout ")]
    for command in commands:
        assert command.startswith("timeout --signal=INT --kill-after=15 ")
        assert f"> {tmp_path}/" in command and " -m benchmark " in command
    profile, run = commands[0], commands[1]
    assert "profile --synthetic-inputs --experiment paper --epochs 6 --clips 512 --backend jax" in profile
    assert f"--json {tmp_path}/profile-auto.json" in profile
    assert "run --experiment default --all --seeds 0 --backend jax" in run
    assert any("train.mixed_precision=" in command for command in commands)
    for feed in set(FEEDS) - {"auto"}:
        assert any(f"train.feed={feed} " in command for command in commands), feed
    assert not list(tmp_path.glob("*.json"))  # nothing ran


@pytest.mark.slow  # every step for real, at the smoke size: several minutes on a shared CPU
@pytest.mark.skipif(__import__("importlib").util.find_spec("jax") is None, reason="the script runs JAX")
def test_tiny_mode_runs_every_step_and_summarises_the_figures(tmp_path, shared_cache):
    done = run_script(tmp_path, shared_cache, GPU_FIGURES_TINY="1")
    assert done.returncode == 0, done.stdout + done.stderr
    steps = [line.split("\t") for line in (tmp_path / "steps.tsv").read_text().splitlines()[1:]]
    names = [step[0] for step in steps]
    assert names[:2] == ["profile-auto", "run-default"] and "run-default-rest" in names
    assert any(name.startswith("precision-") for name in names) and any(name.startswith("feed-") for name in names)
    assert [(step[0], step[1]) for step in steps if step[1] != "0"] == [], done.stdout
    profile = json.loads((tmp_path / "profile-auto.json").read_text())
    assert profile["models"]["fcnn"]["steady_seconds_per_epoch"] is not None
    assert profile["floors"]["bare_fit"]["fcnn"]["steady_seconds_per_epoch"] is not None
    (feed,) = [path for path in tmp_path.glob("profile-feed-*.json")][:1]
    assert json.loads(feed.read_text())["floors"]["bare_fit"] == {}  # --no-floors: the harness alone
    summary = (tmp_path / "summary.md").read_text()
    assert "| fcnn |" in summary and "extrapolated" in summary
    assert "out-of-memory lines: 0" in summary and "device line(s): ['cpu (Keras backend jax)']" in summary
    assert "backend probe lines: 0" in summary
