"""A worker process that dies amid an item: what the error says, and the test hook that kills one.

:func:`benchmark.data.parallel.map_in_processes` turns the pool's ``BrokenProcessPool`` (which
names neither the worker, the item nor the signal) into :class:`WorkerDied`: one line, naming
them, with what to do. Where the signal is a crash of the worker's own (:data:`CRASH_SIGNALS`),
the caller may clear the harness's numba cache and retry.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from benchmark.errors import BenchmarkError

#: Test hook: ``"<signal name>:<text>"`` makes a worker end itself by that signal as it begins an
#: item whose text holds ``text``; with :data:`FAULT_ONCE_VARIABLE` naming a file, only the first time.
FAULT_SIGNAL_VARIABLE, FAULT_ONCE_VARIABLE = "GENRE_BENCHMARK_FAULT_WORKER_SIGNAL", "GENRE_BENCHMARK_FAULT_WORKER_ONCE"

#: Signals of a crash in the process itself (native code), as opposed to a kill from outside.
CRASH_SIGNALS = frozenset({signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGFPE, signal.SIGABRT})


class WorkerDied(BenchmarkError):
    """A worker process of :func:`map_in_processes` died (a signal, or an exit) amid an item."""

    def __init__(self, stage: str, item: str | None, exitcode: int | None):
        self.stage, self.item, self.exitcode = stage, item, exitcode
        self.signal = signal_of(exitcode)
        super().__init__(f"{stage}: the worker process {f'computing {item} ' if item else ''}{self._fate()}")

    @property
    def crashed(self) -> bool:
        """True where the worker crashed by itself (SIGSEGV, SIGBUS...), not killed from outside."""
        return self.signal in CRASH_SIGNALS

    def _fate(self) -> str:
        again = "run the command again once the cause is gone"
        if self.signal == signal.SIGKILL:
            return ("was killed by SIGKILL (the kernel's out-of-memory killer, or a kill -9): free memory or use "
                    "fewer workers (--workers; in an experiment, features.workers), then run the command again")
        if self.crashed:
            return (f"crashed with {self.signal.name} (a fault in native code: numba, librosa, a decoder): run the "
                    f"command again, and if the same file crashes it again, move it out of the data set and "
                    f"report it")
        if self.signal is not None:
            return f"was killed by {self.signal.name}: {again}"
        if self.exitcode is not None:
            return f"exited with status {self.exitcode}: {again}"
        return f"ended abruptly: {again}"


def signal_of(exitcode: int | None) -> signal.Signals | None:
    # multiprocessing gives -N for a process a signal ended; a worker ends itself with 128 + SIGTERM.
    number = -exitcode if exitcode is not None and exitcode < 0 else \
        signal.SIGTERM if exitcode == 128 + signal.SIGTERM else None
    try:
        return signal.Signals(number) if number is not None else None
    except ValueError:
        return None


def describe(item: Any) -> str:
    """An item as an error names it: a path as it is, anything else by its (shortened) repr."""
    return str(item) if isinstance(item, str | os.PathLike) else repr(item)[:200]


def inject_fault(item: Any) -> None:
    """The test hook :data:`FAULT_SIGNAL_VARIABLE`: a worker dying amid an item, as a real crash would."""
    fault = os.environ.get(FAULT_SIGNAL_VARIABLE)
    if not fault:
        return
    name, _, text = fault.partition(":")
    if text not in describe(item):
        return
    if once := os.environ.get(FAULT_ONCE_VARIABLE):
        try:
            os.close(os.open(once, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return
    number = getattr(signal, name)
    if number not in (signal.SIGKILL, signal.SIGSTOP):  # the two that have no handler to reset
        signal.signal(number, signal.SIG_DFL)
    os.kill(os.getpid(), number)
