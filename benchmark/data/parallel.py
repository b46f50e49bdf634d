"""One item at a time, in worker processes, with a progress bar: what extraction, verify and the
synthetic generator share.

Workers never outlive the command that started them. Ctrl-C belongs to the parent alone (the
workers ignore SIGINT): it cancels the items not yet started and terminates the workers, so
the command stops at once instead of finishing the items in flight. If the parent dies without
a chance to clean up (``kill -9``, an uncaught SIGTERM), each worker gets SIGTERM from the
kernel (Linux's parent-death signal; a watchdog thread on the parent's pid elsewhere). A worker
terminated in the middle of an item unwinds it first, so the item's own cleanup (removing a
half-written cache file) runs, then exits.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

#: Seconds between a watchdog's looks at its parent, where there is no parent-death signal.
WATCHDOG_SECONDS = 1.0
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def map_in_processes(
    function: Callable[..., Any], items: Sequence[Any], *arguments: Any, workers: int = 0,
    progress: bool = True, desc: str = "", unit: str = "file",
) -> list[Any]:
    """``[function(item, *arguments) for item in items]``, in order, in ``workers`` processes.

    ``workers=0`` uses one process per CPU core; ``workers=1`` (or a single item) runs in this
    process. ``function`` must be a module-level function, so the workers can import it.
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
        # Spawn, not fork: the caller (the harness, a test) may already run TensorFlow's threads,
        # and forking a multi-threaded process can deadlock the child on a lock another thread held.
        context = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(min(workers, len(items)), mp_context=context,
                                   initializer=_start_worker, initargs=(os.getpid(),))
        finished = False
        try:
            futures = {pool.submit(_run_item, function, item, *arguments): index
                       for index, item in enumerate(items)}
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                bar.update()
            finished = True
        finally:
            if not finished:
                # An error or Ctrl-C: drop the items not yet started, and stop those in flight
                # rather than wait for them.
                _terminate_workers(pool)
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


def _start_worker(parent_pid: int) -> None:
    """Initializer of every worker: leave Ctrl-C to the parent, die with it, exit cleanly on SIGTERM."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_terminate)
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))
        if os.getppid() != parent_pid:  # the parent died before the signal was armed
            os.kill(os.getpid(), signal.SIGTERM)
    else:
        threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()


def _watch_parent(parent_pid: int) -> None:
    # Reparented once the parent is gone: getppid() no longer answers its pid.
    while os.getppid() == parent_pid:
        threading.Event().wait(WATCHDOG_SECONDS)
    os.kill(os.getpid(), signal.SIGTERM)


def _on_terminate(signum, frame) -> None:
    if _busy:
        raise _Terminated  # unwound by _run_item, which then exits
    os._exit(128 + signum)


def _run_item(function: Callable[..., Any], item: Any, *arguments: Any) -> Any:
    """Run one item in a worker; a SIGTERM meanwhile lets its ``finally``/``except`` blocks run, then exits."""
    global _busy
    try:
        try:
            _busy = True
            return function(item, *arguments)
        finally:
            _busy = False
    except _Terminated:  # also when the signal lands inside the ``finally`` above
        os._exit(128 + signal.SIGTERM)
