"""Scratch files: a batch's large arrays mapped read-only, shared with its processes by path."""

from __future__ import annotations

import gc
import multiprocessing
import os
import pickle
import subprocess
import sys
from multiprocessing.reduction import ForkingPickler

import numpy as np
import pytest

from benchmark.config import load_experiment
from benchmark.data import scratch


def mapped_copy(values: np.ndarray, *, name: str = "array") -> np.ndarray:
    return scratch.mapped_array(values.shape, values.dtype, [values[:1], values[1:]], name=name)


@pytest.fixture
def fresh_scratch(tmp_path, monkeypatch):
    """A cache of its own, and a scratch folder made anew in it."""
    monkeypatch.setenv("GENRE_BENCHMARK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(scratch, "_folder", None)
    return tmp_path / "cache" / scratch.SCRATCH


def _receive_and_describe(connection) -> None:
    array = connection.recv()
    connection.send((type(array).__name__, getattr(array, "filename", None), float(array.astype(np.float64).sum())))


def test_a_mapped_array_reaches_another_process_as_its_file_not_its_values(fresh_scratch):
    values = np.arange(256 * 1024, dtype=np.float16).reshape(256, 1024)
    mapped = mapped_copy(values, name="inputs")
    assert isinstance(mapped, np.memmap) and not mapped.flags.writeable
    np.testing.assert_array_equal(mapped, values)
    assert len(ForkingPickler.dumps(mapped)) < 1024  # its path, not its 512 kB

    ours, theirs = multiprocessing.Pipe()
    child = multiprocessing.get_context("fork").Process(target=_receive_and_describe, args=(theirs,))
    child.start()
    ours.send(mapped)
    kind, filename, total = ours.recv()
    child.join()
    assert (kind, filename) == ("memmap", mapped.filename)
    assert total == float(values.astype(np.float64).sum())


def test_anything_but_a_whole_mapped_file_crosses_by_value(fresh_scratch):
    mapped = mapped_copy(np.arange(4096, dtype=np.float32).reshape(64, 64), name="inputs")
    for part in (mapped[8:16], mapped[:, 3], mapped[[1, 5]]):
        received = pickle.loads(ForkingPickler.dumps(part))
        assert getattr(received, "filename", None) is None
        np.testing.assert_array_equal(received, part)
    # Ray and other pickling may reach another machine: they get the values too.
    assert getattr(pickle.loads(pickle.dumps(mapped)), "_mmap", None) is None


def test_a_scratch_file_goes_with_its_array_and_the_folder_with_its_process(fresh_scratch, tmp_path):
    mapped = mapped_copy(np.ones((3, 5), np.float16), name="train")
    path = mapped.filename
    assert os.path.exists(path) and os.path.dirname(path).startswith(str(fresh_scratch))
    view = mapped[1:]
    del mapped
    gc.collect()
    assert os.path.exists(path)  # a view still reads it
    del view
    gc.collect()
    assert not os.path.exists(path)

    code = ("import numpy as np; from benchmark.data import scratch; "
            "print(scratch.mapped_array((10,), np.float32, [np.zeros(10)]).filename)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, "GENRE_BENCHMARK_CACHE": str(tmp_path / "cache")})
    left = os.path.dirname(done.stdout.strip())
    assert left.startswith(str(fresh_scratch)) and not os.path.exists(left)


def test_the_folder_of_a_process_killed_outright_is_removed_by_the_next(fresh_scratch):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    stale = fresh_scratch / f"{dead.stdout.strip()}-abc123"
    stale.mkdir(parents=True)
    (stale / "train-x.npy").write_bytes(b"left behind by kill -9")
    ours = scratch.scratch_folder()
    assert not stale.exists() and ours.is_dir()


def test_an_empty_split_is_an_empty_array(fresh_scratch):
    assert mapped_copy(np.empty((0, 4, 3), np.float16)).shape == (0, 4, 3)


@pytest.mark.parametrize("normalize", ["per_clip", "standardize"])
def test_a_split_is_gathered_into_shared_read_only_files_with_the_same_values(fresh_scratch, tone_tree, normalize):
    from benchmark.data.normalize import Standardizer
    from benchmark.data.prepare import prepare_data

    config = load_experiment("smoke", [f'features.normalize="{normalize}"', 'split.protocol="kfold"',
                                       "split.folds=2", "split.valid_fraction=0.5"], data_dir=tone_tree)
    prepared = prepare_data(config, progress=False)
    data = prepared.split(0)
    rows = {name: prepared.features.rows_of(data.split.indices(name)) for name in ("train", "valid", "test")}
    # What gathering computed before, in memory: fancy indexing, then the whole-split transform.
    expected = {name: np.asarray(prepared.features.inputs)[index] for name, index in rows.items()}
    if normalize == "standardize":
        standardizer = Standardizer.fit(expected["train"])
        np.testing.assert_array_equal(data.standardizer.mean, standardizer.mean)
        expected = {name: standardizer.transform(x, dtype=x.dtype) for name, x in expected.items()}
    for name, values in expected.items():
        x = data.subset(name).x
        assert isinstance(x, np.memmap) and not x.flags.writeable
        assert len(ForkingPickler.dumps(x)) < 1024
        np.testing.assert_array_equal(x, values)
    # The next fold replaces this one's files: a k-fold batch keeps one fold on disk at a time.
    first_fold = data.subset("train").x.filename
    del data, x
    assert prepared.split(1).subset("train").x.filename != first_fold
    gc.collect()
    assert not os.path.exists(first_fold)


def test_rows_that_do_not_add_up_to_the_shape_are_an_error_and_leave_no_file(fresh_scratch):
    with pytest.raises(ValueError, match="3 rows written, 4 expected"):
        scratch.mapped_array((4, 2), np.float32, [np.zeros((3, 2))], name="short")
    with pytest.raises(ValueError, match="rows of shape"):
        scratch.mapped_array((4, 2), np.float32, [np.zeros((4, 3))], name="wide")
    assert not list(scratch.scratch_folder().iterdir())


def resident_bytes() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))


def test_reading_a_mapped_array_leaves_nothing_resident_once_its_pages_are_released(fresh_scratch):
    mb = 1 << 20
    before = resident_bytes()
    mapped = scratch.mapped_array((64, mb), np.uint8, (np.full((1, mb), row % 251, np.uint8) for row in range(64)))
    written = resident_bytes()
    assert written - before < 16 * mb  # written through the file, not a mapping: nothing resident
    assert int(mapped[:, ::4096].sum(dtype=np.int64)) == sum(row % 251 for row in range(64)) * (mb // 4096)
    assert resident_bytes() - written > 48 * mb  # every page read is mapped in
    scratch.release_pages(mapped)
    assert resident_bytes() - written < 16 * mb
    np.testing.assert_array_equal(mapped[5, :3], [5, 5, 5])  # and read again, from the page cache


def test_a_full_disk_is_one_error_naming_the_folder_and_leaves_no_file(fresh_scratch, monkeypatch):
    import errno

    from benchmark.errors import BenchmarkError

    real_fdopen = os.fdopen

    class FullDisk:
        def __init__(self, handle, mode):
            self.file = real_fdopen(handle, mode)

        def __enter__(self):
            return self

        def __exit__(self, *exc_info):
            self.file.close()

        def write(self, data):
            if getattr(data, "nbytes", len(data)) > 1000:  # the header goes through; the rows do not
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.file.write(data)

    folder = scratch.scratch_folder()
    monkeypatch.setattr(scratch.os, "fdopen", FullDisk)
    with pytest.raises(BenchmarkError, match=f"cannot write the train inputs to {folder}: No space left"):
        scratch.mapped_array((4, 1024), np.float32, [np.zeros((4, 1024))], name="train")
    assert not list(folder.iterdir())


def test_a_new_cache_or_a_removed_folder_gets_a_new_scratch_folder(fresh_scratch, tmp_path, monkeypatch):
    import shutil

    first = scratch.scratch_folder()
    shutil.rmtree(first)  # a profile's temporary cache, removed at its end
    second = scratch.scratch_folder()
    assert second != first and second.is_dir()
    monkeypatch.setenv("GENRE_BENCHMARK_CACHE", str(tmp_path / "elsewhere"))
    assert scratch.scratch_folder().parent == tmp_path / "elsewhere" / scratch.SCRATCH
    assert mapped_copy(np.ones(3)).sum() == 3.0
