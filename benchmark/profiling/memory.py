"""Peak resident memory per stage, and how long this process has existed (Linux ``/proc``).

Writing ``5`` to ``/proc/self/clear_refs`` resets the kernel's high-water mark of resident
memory (``VmHWM``) to the current resident size, so reading ``VmHWM`` at a stage's end gives
that stage's own peak. Where ``/proc`` is missing or read-only, the fallback is
``getrusage``'s ``ru_maxrss``: the peak since the process started, so a stage shows the
largest peak so far rather than its own (:func:`peak_is_per_stage` says which).
"""

from __future__ import annotations

import functools
import os
import resource
import sys
import time
from pathlib import Path

_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")
#: ``clear_refs`` value that resets the peak resident size (see proc(5)).
_RESET_PEAK = "5"


def reset_peak() -> bool:
    """Reset this process's peak resident size to its current size; False where that is impossible."""
    try:
        _CLEAR_REFS.write_text(_RESET_PEAK)
    except OSError:
        return False
    return True


@functools.cache
def peak_is_per_stage() -> bool:
    """True where stage peaks are each stage's own (the reset works), False where cumulative."""
    return reset_peak() and _vm_hwm() is not None


def peak_rss() -> int:
    """This process's peak resident size in bytes since the last :func:`reset_peak` (or its start)."""
    hwm = _vm_hwm()
    if hwm is not None:
        return hwm
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss if sys.platform == "darwin" else maxrss * 1024  # macOS counts bytes, Linux KiB


def children_peak_rss() -> int:
    """The largest peak resident size of any finished child process (extraction workers), bytes."""
    maxrss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return maxrss if sys.platform == "darwin" else maxrss * 1024


def _vm_hwm() -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # "VmHWM:   123456 kB"
    except (OSError, ValueError, IndexError):
        return None
    return None


def process_started_at() -> float | None:
    """When this process started, on the :func:`time.perf_counter` clock; None without ``/proc``."""
    age = process_age()
    return None if age is None else time.perf_counter() - age


def process_age() -> float | None:
    """Seconds since this process started (interpreter start-up included); None without ``/proc``.

    ``/proc/self/stat``'s 22nd field is the start time in clock ticks after boot, and
    ``/proc/uptime`` the seconds since boot: both on the same clock, also inside a container.
    """
    try:
        stat = Path("/proc/self/stat").read_text()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    # The command name (2nd field) is in parentheses and may hold spaces: count after its end.
    fields = stat[stat.rindex(")") + 2:].split()
    started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22 is the 20th after the name
    return max(uptime - started, 0.0)
