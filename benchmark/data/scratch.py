"""A batch's large arrays as read-only files, mapped rather than held, and shared by path.

Why: a batch's model inputs (every clip's, then one split's train, validation and test arrays)
went to each unit's process by pickle, so each unit held a private copy of them and gathered
its split again: 170 MB per unit at the default input, 5.4 GB at the study's 1025 x 1320 input
on 1,000 clips. Written once into a scratch file and mapped read-only (``np.memmap``), they live
in the page cache: a unit's process maps them in milliseconds and reads only what it touches,
every process reads the same pages, and the kernel can drop clean pages under pressure rather
than swap them.

Scratch files sit in ``<cache>/scratch/<pid>-<token>/`` (on disk, beside the feature cache; not
in ``/tmp``, which may be memory). A file is removed once its array is garbage collected, the
folder when the process that made it exits; a folder whose process died without that (``kill
-9``) is removed by the next process that makes one.

Sharing by path applies to multiprocessing's pickling (:class:`multiprocessing.reduction.ForkingPickler`:
unit processes, process pools), which only ever reaches processes on this machine. Other
pickling (Ray's, to workers that may run elsewhere) still copies the values.
"""

from __future__ import annotations

import atexit
import errno
import logging
import mmap
import os
import shutil
import tempfile
import weakref
from collections.abc import Iterable
from multiprocessing.reduction import ForkingPickler
from pathlib import Path

import numpy as np

from benchmark.errors import BenchmarkError
from benchmark.paths import CACHE_ENV, writable_cache_root
from benchmark.processes import alive

log = logging.getLogger(__name__)

SCRATCH = "scratch"

_folder: Path | None = None
_folder_pid: int | None = None


def scratch_folder() -> Path:
    """This process's scratch folder in the current cache, made on first use (and stale folders
    of dead processes removed); made anew where the cache moved or the folder was removed (a
    ``profile`` extracts into a temporary cache, removed at its end)."""
    global _folder, _folder_pid
    root = writable_cache_root() / SCRATCH
    if _folder is None or _folder_pid != os.getpid() or _folder.parent != root or not _folder.is_dir():
        root.mkdir(exist_ok=True)
        _remove_stale(root)
        _folder = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=root))
        _folder_pid = os.getpid()
        atexit.register(_remove_own, _folder, _folder_pid)
    return _folder


def mapped_array(shape: tuple[int, ...], dtype, chunks: Iterable[np.ndarray], *, name: str = "array") -> np.ndarray:
    """A read-only array of ``shape`` and ``dtype`` backed by a scratch file, its rows the ``chunks``'.

    ``chunks`` yields the rows in order, a few at a time (a clip, a batch of inputs), so that no
    copy of the whole array is ever in memory; they are written to the file, not through a
    mapping, so the written pages never count as this process's memory (they stay in the page
    cache). The file is removed once the returned array (and every view of it) is garbage
    collected.
    """
    dtype, shape = np.dtype(dtype), tuple(int(size) for size in shape)
    handle, path = tempfile.mkstemp(prefix=f"{name}-", suffix=".npy", dir=scratch_folder())
    try:
        with os.fdopen(handle, "wb") as file:
            np.lib.format.write_array_header_1_0(
                file, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape})
            rows = 0
            for chunk in chunks:
                chunk = np.ascontiguousarray(chunk, dtype=dtype)
                if chunk.shape[1:] != shape[1:]:
                    raise ValueError(f"{name}: rows of shape {chunk.shape[1:]}, expected {shape[1:]}")
                file.write(chunk.data)
                rows += len(chunk)
        if rows != shape[0]:
            raise ValueError(f"{name}: {rows} rows written, {shape[0]} expected")
        # np.memmap cannot map an empty array: that one is read (it is a header alone).
        array = np.load(path, mmap_mode="r" if rows else None, allow_pickle=False)
    except OSError as error:
        _unlink(path)
        if error.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise BenchmarkError(f"cannot write the {name} inputs to {Path(path).parent}: "
                             f"{error.strerror or error}; free some space there or set {CACHE_ENV} "
                             "to a folder with room") from None
    except BaseException:
        _unlink(path)
        raise
    weakref.finalize(array, _unlink, path)
    return array


def release_pages(array) -> None:
    """Unmap from this process the pages of a read-only map that reading it mapped in.

    Pages of a file that a process has read through a mapping count towards its resident memory
    until unmapped, so reading a map once through would leave the process as large as the file.
    ``MADV_DONTNEED`` drops them from this process alone: the page cache keeps them (the next
    read is from memory, not disk) and the kernel may reclaim them. Only for mode ``r``: on a
    copy-on-write (``c``) map it would discard the process's own changes. Anything else: no-op.
    """
    mapping = getattr(array, "_mmap", None)
    if isinstance(mapping, mmap.mmap) and getattr(array, "mode", None) == "r" and hasattr(mmap, "MADV_DONTNEED"):
        mapping.madvise(mmap.MADV_DONTNEED)


def _reduce_memmap(array: np.memmap):
    """Pickle a whole-file read-only map as its path, for processes on this machine; copy anything else."""
    whole_file = (array.base is not None and array.base is getattr(array, "_mmap", None)
                  and array.mode == "r" and array.filename is not None)
    if whole_file:
        order = "F" if array.flags.f_contiguous and not array.flags.c_contiguous else "C"
        return _open_mapped, (array.filename, array.dtype.str, array.shape, array.offset, order)
    return np.asarray, (array.view(np.ndarray),)  # a slice or a writable map: its values, as plain pickling


def _open_mapped(path: str, dtype: str, shape: tuple[int, ...], offset: int, order: str) -> np.ndarray:
    return np.memmap(path, dtype=np.dtype(dtype), mode="r", shape=shape, offset=offset, order=order)


ForkingPickler.register(np.memmap, _reduce_memmap)


def _unlink(path: str | Path) -> None:
    try:
        os.unlink(path)
    except OSError:  # gone already (its folder removed at exit), or the cache was cleared
        pass


def _remove_own(folder: Path, pid: int) -> None:
    if os.getpid() == pid:  # not in a forked child that inherited the atexit hook
        shutil.rmtree(folder, ignore_errors=True)


def _remove_stale(root: Path) -> None:
    """Remove the scratch folders of processes that no longer run (killed before they could)."""
    for folder in root.iterdir():
        owner = folder.name.partition("-")[0]
        if owner.isdigit() and not alive(int(owner)):
            log.debug("removing %s, left by process %s", folder, owner)
            shutil.rmtree(folder, ignore_errors=True)
    return True
