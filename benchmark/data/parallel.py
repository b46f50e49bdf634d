"""One item at a time, in worker processes, with a progress bar: what extraction, verify and the
synthetic generator share."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any


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
        pool = ProcessPoolExecutor(min(workers, len(items)), mp_context=context)
        try:
            futures = {pool.submit(function, item, *arguments): index for index, item in enumerate(items)}
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                bar.update()
        finally:
            # On an error or Ctrl-C, drop the items not yet started instead of working through them.
            pool.shutdown(wait=True, cancel_futures=True)
    return results
