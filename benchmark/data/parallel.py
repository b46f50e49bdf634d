"""One item at a time, in worker processes, with a progress bar: what extraction, verify and the
synthetic generator share.

Workers never outlive the command that started them. Ctrl-C belongs to the parent alone (the
workers ignore SIGINT): it cancels the items not yet started and terminates the workers, so
the command stops at once instead of finishing the items in flight. If the parent dies without
a chance to clean up (``kill -9``, an uncaught SIGTERM), each worker gets SIGTERM from the
kernel (Linux's parent-death signal; a watchdog thread on the parent's pid elsewhere). A worker
terminated in the middle of an item unwinds it first, so the item's own cleanup (removing a
half-written cache file) runs, then exits.

:func:`map_chunks_in_threads` is the in-process counterpart, for work that releases the GIL
(numpy's FFTs and BLAS, decoders, hashing, file writes): chunks of items in threads, no
start-up cost, no pickling. Ctrl-C (or an error) sets a stop flag that the chunks check
between steps, so the command stops within a step; threads cannot be killed, so what a
chunk has begun writing finishes (atomically) or is undone by its own cleanup.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, ThreadPoolExecutor, as_completed, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from benchmark.data.worker_death import WorkerDied, describe, inject_fault, signal_of

#: Seconds between a watchdog's looks at its parent, where there is no parent-death signal.
WATCHDOG_SECONDS = 1.0
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
#: glibc's ``mallopt`` parameters (<malloc.h>), and what a worker sets them to (:func:`_keep_freed_memory`).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD_BYTES, _TRIM_THRESHOLD_BYTES = 32 << 20, 64 << 20


def map_in_processes(
    function: Callable[..., Any], items: Sequence[Any], *arguments: Any, workers: int = 0,
    progress: bool = True, desc: str = "", unit: str = "file", stage: str = "",
) -> list[Any]:
    """``[function(item, *arguments) for item in items]``, in order, in ``workers`` processes.

    ``workers=0`` uses one process per CPU core; ``workers=1`` (or a single item) runs in this
    process. ``function`` must be a module-level function, so the workers can import it.
    A worker that dies (killed, or crashed in native code) ends the map with
    :class:`~benchmark.data.worker_death.WorkerDied`: one line naming the ``stage`` (default
    ``desc``), the item and the signal, not the pool's traceback.
    """
    from tqdm.auto import tqdm

    workers = workers or os.cpu_count() or 1
    results: list[Any] = [None] * len(items)
    with tqdm(total=len(items), desc=desc, unit=unit, disable=not progress) as bar:
        if workers == 1 or len(items) <= 1:
            for index, item in enumerate(items):
                results[index] = function(item, *arguments)
                bar.update()
            return results
        pool = _WorkerPool(function, items, arguments, workers, stage or desc or function.__name__)
        pool.run(results, bar)
    return results


class _WorkerPool:
    """The worker processes of one :func:`map_in_processes`, and which of them began which item."""

    def __init__(self, function: Callable[..., Any], items: Sequence[Any], arguments: tuple, workers: int,
                 stage: str):
        self.function, self.items, self.arguments, self.workers, self.stage = (
            function, items, arguments, workers, stage)

    def run(self, results: list[Any], bar) -> None:
        """Compute every item into ``results``; a worker's death raises :class:`WorkerDied`."""
        indices, done = range(len(self.items)), set()
        # Spawn, not fork: the caller (the harness, a test) may already run TensorFlow's threads,
        # and forking a multi-threaded process can deadlock the child on a lock another thread held.
        context = multiprocessing.get_context("spawn")
        started_by = context.RawArray("q", len(self.items))  # the pid of the worker that began each item
        pool = ProcessPoolExecutor(min(self.workers, len(indices)), mp_context=context,
                                   initializer=_start_worker, initargs=(os.getpid(), started_by))
        processes: dict[int, Any] = {}
        finished = False
        try:
            try:
                futures = {pool.submit(_run_item, self.function, index, self.items[index], *self.arguments): index
                           for index in indices}
                processes.update(getattr(pool, "_processes", None) or {})
                for future in as_completed(futures):
                    results[futures[future]] = future.result()
                    done.add(futures[future])
                    bar.update()
            except BrokenProcessPool:
                processes.update(getattr(pool, "_processes", None) or {})
                pool.shutdown(wait=True, cancel_futures=True)  # every worker ended: their exit codes are known
                raise self._death(processes, started_by, done) from None
            finished = True
        finally:
            if not finished:
                # An error or Ctrl-C: drop the items not yet started, and stop those in flight
                # rather than wait for them.
                _terminate_workers(pool)
            pool.shutdown(wait=True, cancel_futures=True)

    def _death(self, processes: dict[int, Any], started_by, done: set[int]) -> WorkerDied:
        """Which worker died first, of what, amid which item: the pool's own error says none of it."""
        ended = [(pid, process.exitcode) for pid, process in processes.items() if process.exitcode]
        # The pool ends the survivors with SIGTERM once one died: the one that did not die so is the cause.
        ended.sort(key=lambda entry: signal_of(entry[1]) == signal.SIGTERM)
        pid, exitcode = ended[0] if ended else (None, None)
        begun = [index for index, starter in enumerate(started_by) if starter == pid and index not in done]
        item = self.items[begun[-1]] if begun else None
        return WorkerDied(self.stage, describe(item) if item is not None else None, exitcode)


class Stopped(Exception):
    """Raised by :meth:`StopFlag.check` in a chunk once the map is being abandoned."""


class StopFlag:
    """Set by :func:`map_chunks_in_threads` on Ctrl-C or an error; chunks call :meth:`check` between steps."""

    def __init__(self):
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise Stopped


#: Seconds the main thread waits for a chunk before it looks for a swallowed Ctrl-C again.
_POLL_SECONDS = 0.2


def map_chunks_in_threads(
    function: Callable[..., list[Any]], items: Sequence[Any], *arguments: Any, chunk_size: int, workers: int = 0,
    progress: bool = True, desc: str = "", unit: str = "file", first_chunk_size: int | None = None,
) -> list[Any]:
    """``[result for chunk in chunks(items) for result in function(chunk, *arguments, stop=flag)]``, in order.

    Chunks of ``chunk_size`` items (the first of ``first_chunk_size``, so the bar moves at once)
    run in ``workers`` threads (``0``: one per CPU core), at most ``workers + 1`` at a time
    begun or queued, so memory stays bounded. ``function`` returns one result per item and
    should call ``stop.check()`` between steps: on Ctrl-C or an error in any chunk, the flag is
    set, chunks not yet begun are cancelled, the running ones are awaited (they stop at their
    next check), and the exception propagates. The bar counts items.
    """
    from tqdm.auto import tqdm

    from benchmark import interrupts

    workers = max(1, workers or os.cpu_count() or 1)
    first = max(1, min(first_chunk_size or chunk_size, chunk_size))
    bounds: list[tuple[int, int]] = []
    while (start := bounds[-1][1] if bounds else 0) < len(items):
        bounds.append((start, min(start + (chunk_size if bounds else first), len(items))))
    results: list[Any] = [None] * len(items)
    stop = StopFlag()
    with tqdm(total=len(items), desc=desc, unit=unit, disable=not progress) as bar:
        pool = ThreadPoolExecutor(workers, thread_name_prefix=desc or "chunk")
        try:
            queued = iter(bounds)
            running: dict[Any, tuple[int, int]] = {}

            def submit_next() -> None:
                bound = next(queued, None)
                if bound is not None:
                    running[pool.submit(function, items[bound[0]:bound[1]], *arguments, stop=stop)] = bound

            for _ in range(workers + 1):
                submit_next()
            while running:
                done, _ = wait(running, timeout=_POLL_SECONDS, return_when=FIRST_COMPLETED)
                interrupts.check()  # a Ctrl-C the handler raised where it got lost
                for future in done:
                    start, stop_index = running.pop(future)
                    chunk_results = future.result()
                    if len(chunk_results) != stop_index - start:
                        raise RuntimeError(f"{function.__name__} returned {len(chunk_results)} results "
                                           f"for {stop_index - start} items")
                    results[start:stop_index] = chunk_results
                    bar.update(stop_index - start)
                    submit_next()
        except BaseException:
            stop.set()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    return results


def _terminate_workers(pool: ProcessPoolExecutor) -> None:
    # Python 3.14 has ProcessPoolExecutor.terminate_workers(); before it, the pool's own table.
    if hasattr(pool, "terminate_workers"):
        pool.terminate_workers()
        return
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        if process.is_alive():
            process.terminate()


# --- in the worker -------------------------------------------------------------------------------

class _Terminated(BaseException):
    """Raised in a worker by SIGTERM while it works on an item: unwinds the item, then exits."""


_busy = False
#: Shared with the parent: the pid of the worker that began each item (see :meth:`_WorkerPool._death`).
_started_by = None


def _start_worker(parent_pid: int, started_by=None) -> None:
    """Initializer of every worker: leave Ctrl-C to the parent, die with it, exit cleanly on SIGTERM."""
    global _started_by
    _started_by = started_by
    tie_to_parent(parent_pid)


def tie_to_parent(parent_pid: int) -> None:
    """In a process the harness started: Ctrl-C is the parent's, SIGTERM exits cleanly, and the
    process dies with its parent (``parent_pid``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_terminate)
    sys.unraisablehook = _exit_where_termination_was_swallowed
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))
        if os.getppid() != parent_pid:  # the parent died before the signal was armed
            os.kill(os.getpid(), signal.SIGTERM)
        _keep_freed_memory(libc)
    else:
        threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()


def _keep_freed_memory(libc) -> None:
    """Let a worker reuse the memory it frees for its next item, rather than fault in fresh pages.

    An item's arrays (a clip's spectrograms, megabytes each) are freed when it ends, and glibc
    gives blocks that large back to the kernel (unmapped, or trimmed off the heap's top): the
    next item faults in zeroed pages again, 14,000 faults and 20 ms of system time for each
    handcrafted clip, 15% of its cost. Served from the heap up to 32 MiB and trimmed only past
    64 MiB free, the same pages serve every item. glibc's ``mallopt``; elsewhere (musl) a no-op.
    """
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is not None:
        mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES)
        mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD_BYTES)


def _watch_parent(parent_pid: int) -> None:
    # Reparented once the parent is gone: getppid() no longer answers its pid.
    while os.getppid() == parent_pid:
        threading.Event().wait(WATCHDOG_SECONDS)
    os.kill(os.getpid(), signal.SIGTERM)


def _on_terminate(signum, frame) -> None:
    if _busy:
        raise _Terminated  # unwound by _run_item, which then exits
    os._exit(128 + signum)


def _exit_where_termination_was_swallowed(unraisable) -> None:
    """``sys.unraisablehook`` of a worker: a :class:`_Terminated` that cannot unwind exits at once.

    SIGTERM's handler raises wherever the worker is, and inside a callback from native code
    (llvmlite calls one as numba loads compiled code) Python can only print the exception
    ("Exception ignored on calling ctypes callback function", a traceback on the command's
    stderr) and carry on with the item. The worker is being terminated: it exits, silently.
    """
    if isinstance(unraisable.exc_value, _Terminated):
        os._exit(128 + signal.SIGTERM)
    sys.__unraisablehook__(unraisable)


def _run_item(function: Callable[..., Any], index: int, item: Any, *arguments: Any) -> Any:
    """Run one item in a worker; a SIGTERM meanwhile lets its ``finally``/``except`` blocks run, then exits."""
    global _busy
    if _started_by is not None:
        _started_by[index] = os.getpid()
    inject_fault(item)
    try:
        try:
            _busy = True
            return function(item, *arguments)
        finally:
            _busy = False
    except _Terminated:  # also when the signal lands inside the ``finally`` above
        os._exit(128 + signal.SIGTERM)
