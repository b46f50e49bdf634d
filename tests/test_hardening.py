"""Faults and hostile input: each case of the 40-case probe, reproduced and now handled.

Concurrent creators of one store, genre folders named like ``r&b``, a full disk and a read-only
store, killed and interrupted parents of worker processes, unsupported model URIs, truncated
audio, credentials in URLs, the served model's ``path`` input, and the small items. The cases
that are about processes or file systems use real ones (several processes, a small tmpfs, a
killed parent, dropped capabilities) and skip with a reason where this machine cannot.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import (
    PROJECT_ROOT,
    assert_user_error,
    free_port,
    run_cli,
    served_model,
    sigint_as_in_a_terminal,
    store_uri,
    write_clip,
)

#: Hostile genre folder names: the issue's, plus a backslash and a colon for ``a/b`` (a folder
#: name cannot hold ``/``, but these are the characters that become paths or separators).
HOSTILE_GENRES = ("r&b", "hip hop", "drum'n'bass", "música", "a\\b", "a:b")
#: Capabilities a root shell drops to meet file permissions as an ordinary user would.
DROPPED = "-dac_override,-dac_read_search,-fowner"
DROP_CAPABILITIES = ["setpriv", "--bounding-set", DROPPED, "--inh-caps", DROPPED]
SECRET = "s3cret-Pa55"
#: A batch's training runs (each batch also has a claims run: benchmark.claims).
TRAINING = "tags.run_kind = 'train'"


def env_with(**values) -> dict:
    return {**os.environ, **values}


def error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


# --- real file systems: a small tmpfs, a read-only folder ---------------------------------------

@contextlib.contextmanager
def small_tmpfs(folder: Path, size: str):
    """A tmpfs of ``size`` mounted at ``folder`` for the block; skips where mounting is not allowed."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip() or 'mount failed'})")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, check=False)


def as_ordinary_user() -> list[str]:
    """The prefix that makes a command meet file permissions (root drops its overriding capabilities)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: file permissions cannot be enforced")
    return DROP_CAPABILITIES


def make_read_only(folder: Path) -> None:
    for path in [folder, *folder.rglob("*")]:
        path.chmod(path.stat().st_mode & ~0o222)
    probe = subprocess.run([*as_ordinary_user(), "touch", str(folder / "probe")], capture_output=True, check=False)
    if probe.returncode == 0:
        make_writable(folder)
        pytest.skip("a read-only folder is still writable here (capabilities could not be dropped)")


def make_writable(folder: Path) -> None:
    for path in [folder, *folder.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)


def genre_tree(root: Path, genres, clips: int = 6, seconds: float = 1.0) -> Path:
    for genre_index, genre in enumerate(genres):
        for clip in range(clips):
            write_clip(root / genre / f"clip.{clip:05d}.wav", seconds=seconds,
                       frequency=200.0 * (genre_index + 1) + 10 * clip)
    return root


def truncated_copy(path: Path, keep: int = 1000) -> Path:
    """The issue's truncated WAV: a clip's first ``keep`` bytes, its header still announcing all of it."""
    source = write_clip(path.with_name("whole-" + path.name), seconds=2.0, frequency=999.0)
    path.write_bytes(source.read_bytes()[:keep])
    source.unlink()
    return path


# --- 1. two commands creating one store at once --------------------------------------------------

STORE_RACE = """
import sys, time
from pathlib import Path
barrier, uri, name = Path(sys.argv[1]), sys.argv[2] or None, sys.argv[3]
import mlflow  # imported before the barrier: what races is the first connection
from benchmark import tracking
while not barrier.exists():
    time.sleep(0.005)
uri = tracking.resolve_tracking_uri(uri)
tracking.connect(uri)
experiment_id = tracking.ensure_experiment("smoke", uri)
with tracking.tracked_run(experiment_id, name, {"run_kind": "race"}):
    tracking.log_metrics({"value": 1.0})
"""


@pytest.mark.parametrize("where", ["tracking-uri", "default-mlruns"])
def test_commands_starting_together_on_a_new_store_all_record_their_runs(tmp_path, where):
    # Before: "duplicate column name: step", "table secrets already exists" or alembic's
    # CommandError in all but one of them, and their runs lost.
    uri = store_uri(tmp_path / "store") if where == "tracking-uri" else ""
    barrier = tmp_path / "go"
    workdir = tmp_path / "clone"
    workdir.mkdir()
    processes = [subprocess.Popen([sys.executable, "-c", STORE_RACE, str(barrier), uri, f"racer-{index}"],
                                  cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env=env_with(PYTHONPATH=str(PROJECT_ROOT)))
                 for index in range(4)]
    time.sleep(0.5)  # not an assertion: lets every racer reach the barrier before it opens
    barrier.touch()
    outputs = [process.communicate(timeout=300) for process in processes]
    for process, (_, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr[-3000:]
        assert "Traceback" not in stderr and "database is locked" not in stderr
    from mlflow import MlflowClient

    client = MlflowClient(uri or store_uri(workdir))
    [experiment] = [item for item in client.search_experiments() if item.name == "smoke"]
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(run.info.run_name for run in runs) == [f"racer-{index}" for index in range(4)]
    assert {run.info.status for run in runs} == {"FINISHED"}


@pytest.mark.slow
@pytest.mark.batches  # concurrency: in the `batches` env, to keep the default suite near 15 minutes
def test_two_run_commands_started_together_on_a_new_store_both_finish(tmp_path, shared_cache):
    # The reproduction: `run ... & run ... --seeds 1 & wait` on an empty folder.
    uri = f"sqlite:///{tmp_path / 'x' / 'mlflow.db'}"
    (tmp_path / "x").mkdir()
    commands = [["--seeds", "0"], ["--seeds", "1"]]
    processes = [subprocess.Popen([sys.executable, "-m", "benchmark", "run", "--model", "cnn2d", "--experiment",
                                   "smoke", "--tracking-uri", uri, "--no-progress", *seeds],
                                  cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env=env_with(GENRE_BENCHMARK_CACHE=str(shared_cache)))
                 for seeds in commands]
    for process in processes:
        _, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, stderr[-3000:]
        assert "Traceback" not in stderr
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("smoke").experiment_id], filter_string=TRAINING)
    assert sorted((run.info.run_name, run.info.status) for run in runs) == [
        ("cnn2d-seed0", "FINISHED"), ("cnn2d-seed1", "FINISHED")]


# --- 2. genre names are user data ----------------------------------------------------------------

def test_genre_names_map_to_unique_names_mlflow_accepts():
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    from benchmark.evaluate import classification_metrics
    from benchmark.genre_names import metric_names

    names = [*HOSTILE_GENRES, "r_b", "rock", "..", "★"]
    mapping = metric_names(names)
    assert mapping["rock"] == "rock" and mapping["r_b"] == "r_b"  # plain names never change
    assert mapping["r&b"] == "r_b_2"  # the plain "r_b" keeps its name; the mapped one steps aside
    assert mapping["música"] == "musica" and mapping["hip hop"] == "hip_hop"
    assert mapping["a\\b"] != mapping["a:b"] and len(set(mapping.values())) == len(names)
    assert mapping == metric_names(reversed(names))  # depends on the set of names alone
    labels = list(range(len(names)))
    metrics = classification_metrics(labels, labels, names)
    # A real store validates every name: before, "test_precision_r&b" failed the run after training.
    uri = store_uri(Path.cwd())
    (Path.cwd() / "mlruns").mkdir()
    client = MlflowClient(uri)
    run = client.create_run(client.create_experiment("names"))
    client.log_batch(run.info.run_id, metrics=[Metric(f"test_{key}", value, 0, 0) for key, value in metrics.items()])
    logged = client.get_run(run.info.run_id).data.metrics
    assert {f"test_f1_{mapping[name]}" for name in names} <= set(logged)


def test_verify_flags_genre_names_that_metrics_spell_otherwise(tmp_path):
    root = genre_tree(tmp_path / "data", ["rock", "r&b", "música"], clips=10)
    result = run_cli("data", "verify", str(root), "--workers", "1", "--no-progress")
    assert result.returncode == 1, result.stdout + result.stderr  # before: 0, "clean"
    assert "not possible" not in result.stdout and "undecodable" not in result.stdout  # the names alone
    assert "WARNING: genre 'r&b' is named 'r_b' in metric names" in result.stdout
    assert "WARNING: genre 'música' is named 'musica' in metric names" in result.stdout
    assert "'rock'" not in result.stdout


@pytest.mark.slow
def test_run_on_hostile_genre_names_and_truncated_audio(tmp_path, shared_cache):
    """Items 2 and 7 end to end: the run finishes, names are safe, reasons match verify's."""
    from mlflow import MlflowClient

    from benchmark.genre_names import metric_names

    root = genre_tree(tmp_path / "data", HOSTILE_GENRES, clips=8)
    truncated_copy(root / "r&b" / "cut.wav")
    write_clip(root / "hip hop" / "short.wav", seconds=0.3, frequency=777.0)
    (root / "música" / "notes.wav").write_text("not audio\n")
    env = env_with(GENRE_BENCHMARK_CACHE=str(shared_cache))
    verify = run_cli("data", "verify", str(root), "--workers", "1", "--no-progress", "--experiment", "smoke",
                     env=env)
    assert verify.returncode == 1, verify.stderr
    result = run_cli("run", "--model", "cnn1d", "--experiment", "smoke", "--data-dir", str(root),
                     "--no-progress", cwd=tmp_path, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(store_uri(tmp_path))
    [run] = client.search_runs([client.get_experiment_by_name("smoke").experiment_id], filter_string=TRAINING)
    assert run.info.status == "FINISHED"
    mapping = metric_names(HOSTILE_GENRES)
    assert {f"test_f1_{name}" for name in mapping.values()} <= set(run.data.metrics)
    artifacts = Path(client.download_artifacts(run.info.run_id, "", str(tmp_path / "artifacts")))
    labels = json.loads((artifacts / "labels.json").read_text())
    assert labels == {"classes": sorted(HOSTILE_GENRES), "metric_names": {name: mapping[name]
                                                                          for name in sorted(HOSTILE_GENRES)}}
    assert json.loads((artifacts / "confusion_matrix.json").read_text())["labels"] == sorted(HOSTILE_GENRES)
    with (artifacts / "predictions.csv").open() as handle:
        assert {f"p_{name}" for name in HOSTILE_GENRES} <= set(next(csv.reader(handle)))
    # The run skips exactly what verify reports, with verify's words (before: "EOFError" in the
    # run, "Format not recognised" in verify, and the truncated and short clips accepted by both).
    with (artifacts / "skipped_files.csv").open() as handle:
        skipped = {row["relative_path"]: row["reason"] for row in csv.DictReader(handle)}
    reported = {line.split(": ", 1)[0].strip(): line.split(": ", 1)[1]
                for line in verify.stdout.splitlines() if line.startswith("  ") and ": " in line}
    assert skipped == {path: reported[path] for path in skipped}
    assert set(skipped) == {"r&b/cut.wav", "hip hop/short.wav", "música/notes.wav"}
    assert skipped["r&b/cut.wav"].startswith("truncated: its header announces 44100 frames")
    assert skipped["hip hop/short.wav"].startswith("too short: 0.30 s")
    assert skipped["música/notes.wav"] == "cannot decode: Format not recognised"


# --- 3. a full disk, a read-only store, a read-only cache ----------------------------------------

@pytest.mark.slow
def test_full_disk_during_a_run_is_one_line_and_the_run_ends_failed(tmp_path, shared_cache):
    with small_tmpfs(tmp_path / "T", "3m") as disk:
        uri = f"sqlite:///{disk / 'mlruns' / 'mlflow.db'}"
        result = run_cli("run", "--model", "cnn1d", "--experiment", "smoke", "--tracking-uri", uri,
                         "--no-progress", cwd=tmp_path, env=env_with(GENRE_BENCHMARK_CACHE=str(shared_cache)),
                         timeout=600)
        # Before: exit 1, MLflow tracebacks, the run left RUNNING and a cut-off model.keras.
        assert_user_error(result, "No space left on device")
        assert len(error_lines(result)) == 1
        assert "is marked FAILED" in result.stderr
        from mlflow import MlflowClient

        client = MlflowClient(uri)
        runs = client.search_runs([client.get_experiment_by_name("smoke").experiment_id], filter_string=TRAINING)
        assert [run.info.status for run in runs] == ["FAILED"]
        database = sqlite3.connect(disk / "mlruns" / "mlflow.db")
        assert database.execute("pragma integrity_check").fetchall() == [("ok",)]
        database.close()
        assert not list(disk.rglob("model.keras"))  # nothing half-written left behind


def test_full_cache_disk_is_one_line_naming_the_file(tmp_path):
    with small_tmpfs(tmp_path / "T", "1m") as disk:
        result = run_cli("run", "--model", "cnn1d", "--experiment", "smoke", "--no-progress", cwd=tmp_path,
                         env=env_with(GENRE_BENCHMARK_CACHE=str(disk / "cache")))
        assert_user_error(result, "No space left on device")  # before: a libsndfile "System error." traceback
        assert str(disk / "cache") in error_lines(result)[0]
        assert not [path for path in disk.rglob("*") if path.suffix in (".tmp", ".part")]


def test_read_only_store_fails_before_the_slow_part_and_is_left_untouched(tmp_path):
    from benchmark import tracking

    uri = store_uri(tmp_path / "store")
    tracking.connect(uri)
    with tracking.tracked_run(tracking.ensure_experiment("smoke", uri), "earlier", {}):
        tracking.log_metrics({"value": 1.0})
    database = tmp_path / "store" / "mlruns" / "mlflow.db"
    before = database.read_bytes()
    make_read_only(tmp_path / "store")
    try:
        result = subprocess.run(
            [*as_ordinary_user(), sys.executable, "-m", "benchmark", "run", "--model", "cnn1d", "--experiment",
             "smoke", "--tracking-uri", uri, "--no-progress"],
            cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    finally:
        make_writable(tmp_path / "store")
    # Before: a traceback ("attempt to write a readonly database") after the data was prepared.
    assert_user_error(result, f"cannot write to the tracking store folder {database.parent}")
    assert "data:" not in result.stderr and "training" not in result.stderr  # nothing slow started
    assert database.read_bytes() == before


def test_read_only_cache_fails_before_the_slow_part(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    make_read_only(cache)
    try:
        result = subprocess.run(
            [*as_ordinary_user(), sys.executable, "-m", "benchmark", "run", "--model", "cnn1d", "--experiment",
             "smoke", "--no-progress"],
            cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
            env=env_with(GENRE_BENCHMARK_CACHE=str(cache)))
    finally:
        make_writable(cache)
    assert_user_error(result, f"cannot write to the cache folder {cache}")
    assert "GENRE_BENCHMARK_CACHE" in error_lines(result)[0]
    assert not list(cache.iterdir())


# --- 4 and 5. worker processes: killed parents, Ctrl-C -------------------------------------------

def slow_item(item: int, folder: str) -> int:
    """A worker's item that takes far longer than any test waits: it never ends on its own here."""
    folder = Path(folder)
    (folder / f"started-{item}-{os.getpid()}").touch()
    partial = folder / f"partial-{item}"
    partial.touch()
    try:
        time.sleep(600)
        (folder / f"done-{item}").touch()
    finally:
        partial.unlink()  # the item's own cleanup, which a terminated worker must still run
    return item


POOL_DRIVER = """
import sys
from benchmark.data.parallel import map_in_processes
from tests.test_hardening import slow_item
try:
    map_in_processes(slow_item, list(range(40)), sys.argv[1], workers=2, progress=False)
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(130)
"""


def start_pool(folder: Path) -> subprocess.Popen:
    """A process mapping ``slow_item`` over two workers, once both workers have started an item."""
    folder.mkdir()
    process = subprocess.Popen([sys.executable, "-c", POOL_DRIVER, str(folder)], cwd=PROJECT_ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True, preexec_fn=sigint_as_in_a_terminal)
    deadline = time.monotonic() + 120
    while len(list(folder.glob("started-*"))) < 2:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the workers never started: {process.communicate()[1][-3000:]}")
        time.sleep(0.1)
    return process


def children_of(pid: int) -> list[int]:
    """Every process whose parent is ``pid`` (the workers and the resource tracker)."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        with contextlib.suppress(OSError):
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
            if int(fields["PPid"]) == pid:
                found.append(int(status.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")  # a zombie has exited; only its parent's bookkeeping is left


def wait_until_gone(pids: list[int], seconds: float = 60) -> list[int]:
    """The pids still alive after waiting up to ``seconds`` for all to exit (a bound, not a measure)."""
    deadline = time.monotonic() + seconds
    while (left := [pid for pid in pids if alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to find the workers")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "sigterm"])
def test_workers_die_with_their_parent(tmp_path, sig):
    folder = tmp_path / "items"
    process = start_pool(folder)
    children = children_of(process.pid)
    assert len(children) >= 2  # two workers (and the resource tracker)
    process.send_signal(sig)
    process.communicate(timeout=60)
    # Before: both workers and the resource tracker ran on for as long as their items (minutes).
    left = wait_until_gone(children)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert left == []
    assert not list(folder.glob("done-*")) and not list(folder.glob("partial-*"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to find the workers")
def test_ctrl_c_stops_the_workers_at_once(tmp_path):
    folder = tmp_path / "items"
    process = start_pool(folder)
    children = children_of(process.pid)
    os.killpg(process.pid, signal.SIGINT)  # a terminal's Ctrl-C: the whole process group
    # Before: the parent waited for the items in flight (and one queued) to finish; these never do.
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130 and stdout.strip() == "interrupted", stderr[-3000:]
    assert "Traceback" not in stderr  # the workers ignore SIGINT: no KeyboardInterrupt in each
    assert wait_until_gone(children) == []
    assert not list(folder.glob("done-*")) and not list(folder.glob("partial-*"))
    assert len(list(folder.glob("started-*"))) <= 3  # the rest were cancelled, never started


# --- 6. model URIs -------------------------------------------------------------------------------

@pytest.mark.parametrize("uri", ["http://127.0.0.1:1/model", "https://example.invalid/model", "s3://bucket/model",
                                 "gs://bucket/model", "ftp://127.0.0.1/model", " "])
def test_unsupported_model_uris_are_refused_with_one_line(tmp_path, uri):
    clip = write_clip(tmp_path / "song.wav")
    result = run_cli("predict", str(clip), "--model-uri", uri, cwd=tmp_path)
    # Before: http(s) a ValueError traceback, s3/gs a ModuleNotFoundError traceback, exit 1.
    assert_user_error(result, "--model-uri")
    assert "models:/NAME@ALIAS" in error_lines(result)[0]


def test_model_uri_password_is_not_echoed(tmp_path):
    clip = write_clip(tmp_path / "song.wav")
    result = run_cli("predict", str(clip), "--model-uri", f"http://user:{SECRET}@127.0.0.1:1/model", cwd=tmp_path)
    assert_user_error(result, "user:***@127.0.0.1")
    assert SECRET not in result.stderr + result.stdout


# --- 7. truncated and short audio ---------------------------------------------------------------

def test_truncated_and_short_clips_are_skipped_by_runs_with_verifys_reasons(tmp_path, capsys):
    from benchmark.config import load_experiment
    from benchmark.data.features import FeatureParams, extract_features
    from benchmark.data.tracks import discover_tracks
    from benchmark.data.verify import verify_dataset

    root = genre_tree(tmp_path / "data", ["blues", "jazz"], clips=3)
    truncated_copy(root / "jazz" / "cut.wav")
    short = write_clip(root / "blues" / "short.wav", seconds=0.3, frequency=777.0)
    (root / "blues" / "notes.wav").write_text("not audio\n")
    params = FeatureParams.from_config(load_experiment("smoke"))
    # An older run cached the short clip (no threshold then): the cached entry must not let it in.
    extract_features([t for t in discover_tracks(root) if t.path == short], params, tmp_path / "cache",
                     workers=1, progress=False)
    features = extract_features(discover_tracks(root), params, tmp_path / "cache", workers=1, progress=False,
                                min_seconds=0.5)
    report = verify_dataset(root, workers=1, progress=False, min_seconds=0.5)
    verified = dict(zip(report.undecodable["relative_path"], report.undecodable["error"]))
    assert {item.relative_path: item.reason for item in features.skipped} == verified
    assert set(verified) == {"jazz/cut.wav", "blues/short.wav", "blues/notes.wav"}
    assert verified["jazz/cut.wav"] == ("truncated: its header announces 44100 frames (2.00 s), "
                                        "the file holds 478 (0.02 s)")
    assert verified["blues/short.wav"] == "too short: 0.30 s, under data.min_seconds = 0.5 s"
    assert verified["blues/notes.wav"] == "cannot decode: Format not recognised"  # not audioread's "EOFError"
    text = "\n".join(report.summary_lines())
    assert "undecodable files (1):" in text and "truncated or too short files (2):" in text


def test_verify_cli_reports_a_truncated_wav_and_min_seconds_is_a_config_key(tmp_path):
    root = genre_tree(tmp_path / "data", ["blues", "jazz"], clips=10)
    truncated_copy(root / "jazz" / "cut.wav")
    result = run_cli("data", "verify", str(root), "--workers", "1", "--no-progress", "--set", "data.min_seconds=0.01")
    assert result.returncode == 1, result.stderr  # before: 0, the cut clip counted as 0.0 s of jazz
    assert "not possible" not in result.stdout
    assert "jazz/cut.wav: truncated: its header announces 44100 frames" in result.stdout


def test_predict_reports_a_truncated_wav_as_an_error_row(champion, tmp_path):
    good = write_clip(tmp_path / "good.wav", seconds=2.0)
    cut = truncated_copy(tmp_path / "cut.wav")
    result = run_cli("predict", str(good), str(cut), "--format", "json", "--tracking-uri", champion["uri"],
                     "--no-progress", cwd=tmp_path)
    assert result.returncode == 1, result.stderr  # before: 0, the 0.02 s clip labelled like any other
    records = {Path(record["path"]).name: record for record in json.loads(result.stdout)}
    assert records["good.wav"]["status"] == "ok"
    assert records["cut.wav"]["status"] == "error"
    assert "truncated: its header announces 44100 frames" in records["cut.wav"]["error"]


# --- 8. credentials -------------------------------------------------------------------------------

def test_redact_hides_passwords_and_keeps_the_rest():
    from benchmark.redaction import redact

    assert redact(f"postgresql+psycopg2://user:{SECRET}@db.example:5432/optuna") == \
        "postgresql+psycopg2://user:***@db.example:5432/optuna"
    assert redact(f"cannot open http://u:p@ss:{SECRET}@h:5000/x and https://h/y?token={SECRET}&a=1") == \
        "cannot open http://u:***@h:5000/x and https://h/y?token=***&a=1"
    for plain in ("sqlite:////tmp/x/mlflow.db", "http://127.0.0.1:5000/path", "postgresql://user@host/db",
                  "models:/genre-classifier@champion", "/data/r&b/a:b.wav"):
        assert redact(plain) == plain


def test_tune_error_line_hides_the_storage_password(tmp_path):
    storage = f"postgresql+psycopg2://user:{SECRET}@127.0.0.1:{free_port()}/optuna"
    result = run_cli("tune", "--model", "cnn2d", "--experiment", "smoke", "--trials", "1", "--storage", storage,
                     cwd=tmp_path)
    assert_user_error(result, "cannot open Optuna storage postgresql+psycopg2://user:***@127.0.0.1")
    assert SECRET not in result.stderr + result.stdout  # before: the password in the error line


def test_tracking_uri_password_is_redacted_in_the_error_line(tmp_path):
    result = run_cli("run", "--model", "cnn1d", "--experiment", "smoke", "--tracking-uri",
                     f"http://user:{SECRET}@127.0.0.1:{free_port()}", cwd=tmp_path)
    assert_user_error(result, "cannot reach the MLflow tracking server at http://user:***@127.0.0.1")
    assert SECRET not in result.stderr + result.stdout


def _postgres_bin() -> Path | None:
    import glob

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


@pytest.fixture
def postgres_with_password(tmp_path_factory):
    """A real PostgreSQL server on 127.0.0.1 that demands a password; yields its URL."""
    bindir = _postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server not installed (Debian package postgresql; .ci/run installs it)")
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="pg-secret-", dir="/tmp"))  # the postgres user cannot enter pytest's
    as_postgres = []
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    (folder / "pw").write_text(SECRET + "\n")
    if as_postgres:
        shutil.chown(folder / "pw", "postgres")
    data, port = folder / "data", free_port()

    def pg(*command, **env):
        subprocess.run([*as_postgres, *command], check=True, capture_output=True, timeout=120,
                       env=env_with(**env))

    try:
        pg(str(bindir / "initdb"), "-D", str(data), "-A", "scram-sha-256", "-U", "postgres",
           f"--pwfile={folder / 'pw'}")
        pg(str(bindir / "pg_ctl"), "-D", str(data), "-w", "-l", str(folder / "log"), "-o",
           f"-p {port} -k {folder} -c listen_addresses=127.0.0.1", "start")
        try:
            pg(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "optuna",
               PGPASSWORD=SECRET)
            yield f"postgresql+psycopg2://postgres:{SECRET}@127.0.0.1:{port}/optuna"
        finally:
            pg(str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.server
def test_tune_on_a_password_storage_never_stores_or_prints_the_password(tmp_path, postgres_with_password,
                                                                         shared_cache):
    from mlflow import MlflowClient

    result = run_cli("tune", "--model", "cnn2d", "--experiment", "smoke", "--trials", "1",
                     "--storage", postgres_with_password, "--set", "tuning.pruner=none", cwd=tmp_path,
                     env=env_with(GENRE_BENCHMARK_CACHE=str(shared_cache)), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert SECRET not in result.stdout + result.stderr
    client = MlflowClient(store_uri(tmp_path))
    runs = client.search_runs([client.get_experiment_by_name("smoke-tuning").experiment_id])
    parent = next(run for run in runs if run.data.tags.get("run_kind") == "tune")
    # Before: the tag held the URL verbatim, and so did the exported file's header.
    assert parent.data.tags["storage"] == postgres_with_password.replace(SECRET, "***")
    for run in runs:
        assert SECRET not in json.dumps([run.data.tags, run.data.params])
    exported = (tmp_path / "experiments" / "tuned-cnn2d.toml").read_text()
    assert SECRET not in exported and "postgres:***@127.0.0.1" in exported


# --- 9. the served model and the path input ------------------------------------------------------

def test_path_input_is_refused_when_served_whatever_the_path(champion, tmp_path, monkeypatch):
    import mlflow
    import pandas as pd

    from benchmark.audio_model import SERVED_PATH_REFUSED, SERVING_FLAG

    mlflow.set_tracking_uri(champion["uri"])
    model = mlflow.pyfunc.load_model("models:/genre-classifier@champion")
    clip = write_clip(tmp_path / "song.wav", seconds=2.0)
    rows = pd.DataFrame({"path": [str(clip), str(tmp_path / "gone.wav"), "/etc/passwd", ""],
                         "audio": ["", "", "", base64.b64encode(clip.read_bytes()).decode()]})
    local = model.predict(rows)
    assert local["error"][0] is None and local["error"][1].startswith("no such file")  # local use: paths work
    monkeypatch.setenv(SERVING_FLAG, "true")
    served = model.predict(rows)
    assert list(served["error"][:3]) == [SERVED_PATH_REFUSED] * 3  # one answer: no file-existence oracle
    assert served["error"][3] is None and served["genre"][3] == local["genre"][3]


@pytest.mark.slow
@pytest.mark.server
def test_mlflow_models_serve_refuses_path_rows_and_labels_audio(champion, tmp_path):
    import requests

    from benchmark.audio_model import SERVED_PATH_REFUSED

    clip = write_clip(tmp_path / "song.wav", seconds=2.0)
    with served_model("models:/genre-classifier@champion", champion["uri"], tmp_path) as url:
        rows = [[str(clip), None], [str(tmp_path / "gone.wav"), None],
                [None, base64.b64encode(clip.read_bytes()).decode()]]
        response = requests.post(f"{url}/invocations", timeout=120,
                                 json={"dataframe_split": {"columns": ["path", "audio"], "data": rows}})
    assert response.status_code == 200, response.text
    existing, missing, uploaded = response.json()["predictions"]
    # Before: "no such file: ..." for one and a genre for the other told a client which files exist.
    assert existing == missing and existing["error"] == SERVED_PATH_REFUSED and existing["genre"] is None
    assert uploaded["error"] is None and uploaded["genre"]


# --- 10. the smaller items ------------------------------------------------------------------------

def test_verify_exits_1_when_the_split_check_is_not_possible(tmp_path):
    root = genre_tree(tmp_path / "data", ["blues", "jazz", "rock"], clips=2)
    result = run_cli("data", "verify", str(root), "--workers", "1", "--no-progress")
    assert result.returncode == 1, result.stdout  # before: 0
    assert "split check (paper) not possible: " in result.stdout


@pytest.mark.parametrize("verb", [["data", "verify"], ["run", "--model", "cnn1d", "--experiment", "smoke",
                                                       "--data-dir"]], ids=["verify", "run"])
def test_a_file_given_as_the_data_folder_says_so(tmp_path, verb):
    clip = write_clip(tmp_path / "song.wav")
    result = run_cli(*verb, str(clip), cwd=tmp_path)
    assert_user_error(result, f"data directory {clip} is a file")  # before: "not found"


def test_set_errors_name_set_and_file_errors_name_the_file(tmp_path):
    result = run_cli("run", "--all", "--experiment", "smoke", "--set", "train.epochs=-1", cwd=tmp_path)
    assert_user_error(result, "with --set train.epochs=-1: train.epochs")
    bad = tmp_path / "bad.toml"
    bad.write_text('extends = "smoke"\n[train]\nepochs = -1\n')
    result = run_cli("run", "--all", "--experiment", str(bad), "--set", "train.batch_size=8", cwd=tmp_path)
    assert_user_error(result, f"{bad}: train.epochs")
    assert "--set" not in error_lines(result)[0]  # the file's mistake is not blamed on --set


@pytest.mark.parametrize("timeout", ["0", "-5"])
def test_tune_refuses_a_timeout_that_starts_no_trial(tmp_path, timeout):
    result = run_cli("tune", "--model", "cnn2d", "--experiment", "smoke", "--timeout", timeout, cwd=tmp_path)
    assert_user_error(result, "--timeout must be a positive number of seconds")  # before: "Empty DataFrame"
    assert "Empty DataFrame" not in result.stdout
