"""The harness's own numba cache: compiled once, by one process, and put in place whole.

librosa compiles its numba functions on first use, and some (its ``guvectorize`` kernels) as it
is imported, into a cache that numba keeps by default beside librosa's sources, in the venv's
``site-packages/librosa/**/__pycache__``. Each extraction worker compiled the same functions at
the same moment into that one cache, and a first extraction killed while they did so left a
cache that crashed every later extraction (a SIGSEGV in a gufunc) until it was deleted by hand.
numba writes an entry as two files, an index (``.nbi``: signatures to numbered data files) and
the compiled code (``.nbc``), each replaced atomically but not the two together, and the index
is read, numbered and rewritten by each writer in turn: nothing makes several writers at once,
or a writer interrupted between the two files (a worker that SIGTERM unwinds raises an exception
into whatever numba is doing), safe. Here neither happens to what extraction runs.

So the harness keeps its own cache, ``<cache root>/numba/<numba, librosa and Python versions>``,
and never lets two processes write it: before extraction's workers start, :func:`prepare` has
one process (holding a file lock) compile every function extraction uses into a temporary
folder, which is renamed into place once complete. A kill at any moment leaves no cache or a
complete one; the workers then only read it. ``$NUMBA_CACHE_DIR``, where the user set it,
wins: the functions are compiled into it in place, once and by one process too, but the
harness never removes it.

Extraction maps its clips with :func:`map_with_compiled_cache`: where a worker still dies of a
crash (SIGSEGV, SIGBUS...) with the harness's cache in use, the cache may be what crashed it,
so it is cleared and compiled again, and the map runs once more.
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from benchmark.paths import cache_root

log = logging.getLogger(__name__)

NUMBA_CACHE_ENV = "NUMBA_CACHE_DIR"
#: Written last into a compiled folder: a folder without it was never finished.
_COMPLETE = "COMPLETE"
#: Seconds the warm-up's process may take (compiling librosa's functions takes 10-60 s).
_WARM_UP_TIMEOUT = 1800


@functools.cache  # the metadata lookup takes 20 ms, and an installed version stays put while this runs
def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "none"


def harness_cache_dir() -> Path:
    """The harness's numba cache folder for the installed numba, librosa and Python.

    Keyed by their versions, so an upgrade compiles into a new folder instead of reading code
    compiled for another version (numba checks its own version, not librosa's sources' moves).
    """
    key = (f"numba-{_package_version('numba')}-librosa-{_package_version('librosa')}"
           f"-py{sys.version_info.major}{sys.version_info.minor}")
    return cache_root() / "numba" / key


#: The value this process gave ``$NUMBA_CACHE_DIR`` (:func:`point_at_cache`): the harness's, not the user's.
_pointed_at: str | None = None


def user_cache_dir() -> Path | None:
    """``$NUMBA_CACHE_DIR`` where the user set it to a folder other than the harness's; else None."""
    chosen = os.environ.get(NUMBA_CACHE_ENV)
    if not chosen or chosen == _pointed_at or Path(chosen).expanduser() == harness_cache_dir():
        return None
    return Path(chosen).expanduser()


def owns_cache() -> bool:
    """True where numba's cache is the harness's own (the user set no other)."""
    return user_cache_dir() is None


def point_at_cache() -> Path:
    """Set ``$NUMBA_CACHE_DIR`` to the harness's folder (unless the user set one), compiling nothing.

    Returns the folder numba's cache is in from now on, for the processes this one starts (and
    this one, if it has not imported numba yet).
    """
    global _pointed_at
    theirs = user_cache_dir()
    if theirs is not None:
        return theirs
    _pointed_at = os.environ[NUMBA_CACHE_ENV] = str(harness_cache_dir())
    return harness_cache_dir()


def map_with_compiled_cache(warm_up: Callable[[], None], function: Callable[..., Any], items: Sequence[Any],
                            *arguments: Any, **options: Any) -> list[Any]:
    """:func:`~benchmark.data.parallel.map_in_processes` of a ``function`` that runs librosa's compiled
    functions, with them compiled first (:func:`prepare`, by running ``warm_up``).

    Where a worker crashes (SIGSEGV, SIGBUS...) with the harness's cache in use, the cache may be
    what crashed it: it is cleared, compiled again, and the map runs once more (extraction finds
    the clips it cached meanwhile); a second crash, or a crash with the user's cache, is the
    error line.
    """
    from benchmark.data.parallel import map_in_processes
    from benchmark.data.worker_death import WorkerDied

    if items:
        prepare(warm_up)
    try:
        return map_in_processes(function, items, *arguments, **options)
    except WorkerDied as died:
        if not died.crashed or (cleared := clear()) is None:
            raise
        log.warning("%s: a worker crashed with %s%s; the harness's numba cache %s may be corrupt: cleared it, "
                    "compiling it again and running the %s once more", died.stage, died.signal.name,
                    f" computing {died.item}" if died.item else "", cleared, died.stage)
    prepare(warm_up)
    return map_in_processes(function, items, *arguments, **options)


def prepare(warm_up: Callable[[], None]) -> Path:
    """The numba cache this process and its workers use, compiled before they start.

    Sets ``$NUMBA_CACHE_DIR`` to the harness's folder (unless the user set one), so that the
    processes started from here on read it; numba reads the variable as it is first imported,
    so a process that imported librosa already keeps its own cache. If the functions are not
    compiled yet, one process compiles them (running ``warm_up``, a module-level function that
    calls each of them as extraction does) while any other waits on the lock: into a scratch
    folder renamed into place (the harness's, :func:`_compile_whole`), or in place, once, with a
    mark beside them (the user's, :func:`_compile_in_place`).
    """
    folder = point_at_cache()
    if folder != harness_cache_dir():
        _compile_in_place(folder, warm_up)
    elif not (folder / _COMPLETE).is_file():
        _compile_whole(folder, warm_up)
    return folder


def clear() -> Path | None:
    """Remove the harness's numba cache (a crash suggests it is corrupt); the user's is left alone.

    Returns the folder removed, or None where the cache is the user's. Holds the lock, so a
    process compiling it is never cut short; the next :func:`prepare` compiles it afresh.
    """
    if not owns_cache():
        return None
    folder = harness_cache_dir()
    with _lock(folder.parent / f"{folder.name}.lock"):
        _remove(folder)
    return folder


def _compile_whole(folder: Path, warm_up: Callable[[], None]) -> None:
    """Compile into ``<folder>.tmp-<pid>`` in a process of its own, then rename it to ``folder``.

    Under the lock, so one process compiles while the others wait and then find it done.
    Folders left by a compile that was killed are removed first.
    """
    _ensure_writable(folder.parent)
    with _lock(folder.parent / f"{folder.name}.lock"):
        if (folder / _COMPLETE).is_file():
            return
        for stale in folder.parent.glob(f"{folder.name}.tmp-*"):
            _remove(stale)
        _remove(folder)  # a folder without the mark was never finished (put there by hand?)
        scratch = folder.parent / f"{folder.name}.tmp-{os.getpid()}"
        log.info("compiling librosa's numba functions once into %s", folder)
        try:
            _compile(scratch, warm_up)
            (scratch / _COMPLETE).write_text("compiled whole by genre-benchmark\n")
            _put_in_place(scratch, folder)
        finally:
            _remove(scratch)


def _compile_in_place(folder: Path, warm_up: Callable[[], None]) -> None:
    """Compile into the user's ``folder`` once per numba, librosa and Python version, one process at a time.

    numba writes each entry's files atomically (a killed compile leaves an entry it ignores),
    so what breaks a cache is two writers at once, or an exception raised into numba as it
    writes: this compile is the only writer, and a signal ends it without unwinding.
    """
    mark = folder / f".genre-benchmark-{harness_cache_dir().name}"
    if mark.is_file():
        return
    _ensure_writable(folder)
    with _lock(folder / ".genre-benchmark.lock"):
        if not mark.is_file():
            log.info("compiling librosa's numba functions once into %s (%s)", folder, NUMBA_CACHE_ENV)
            _compile(folder, warm_up)
            mark.write_text("librosa's functions compiled by genre-benchmark\n")


def _compile(folder: Path, warm_up: Callable[[], None]) -> None:
    """Run ``warm_up`` in a process of its own, compiling into ``folder``; Ctrl-C or a failure here ends it."""
    from benchmark.errors import BenchmarkError

    process = multiprocessing.get_context("spawn").Process(target=_compile_into, name="numba-warm-up",
                                                           args=(str(folder), os.getpid(), warm_up))
    try:
        process.start()
        process.join(_WARM_UP_TIMEOUT)
        if process.exitcode != 0:
            raise BenchmarkError(f"compiling librosa's numba functions into {folder} failed (exit status "
                                 f"{process.exitcode}); run the command again, or set {NUMBA_CACHE_ENV} to "
                                 f"another folder")
    finally:
        if process.is_alive():
            process.terminate()
            process.join()


def _ensure_writable(folder: Path) -> None:
    from benchmark.paths import ensure_writable_folder

    ensure_writable_folder(folder, "numba cache folder",
                           hint=f"set GENRE_BENCHMARK_CACHE to a writable folder, or {NUMBA_CACHE_ENV} to your own")


def _compile_into(folder: str, parent_pid: int, warm_up: Callable[[], None]) -> None:
    """In a fresh process: ``warm_up`` compiling (and caching) into ``folder``.

    Ctrl-C is left to the parent, and the process dies with it, as extraction's workers do.
    """
    os.environ[NUMBA_CACHE_ENV] = folder  # before numba is imported, which reads it once
    from benchmark.data.parallel import tie_to_parent

    tie_to_parent(parent_pid)
    warm_up()


def _put_in_place(scratch: Path, folder: Path) -> None:
    try:
        os.replace(scratch, folder)
    except OSError:  # a process that only decoded filled the folder meanwhile (point_at_cache): replace it
        _remove(folder)
        os.replace(scratch, folder)


def _lock(path: Path):
    from filelock import FileLock

    return FileLock(str(path))


def _remove(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
