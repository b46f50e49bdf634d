"""Whether a process (not necessarily a child of this one) lives, and waiting for it to end.

One place for what the batch watchdog (:mod:`benchmark.isolation`), ``ui``'s watcher
(:mod:`benchmark.cli.server`), dead-run reaping (:mod:`benchmark.liveness`) and stale scratch
folders (:mod:`benchmark.data.scratch`) all ask of a pid.
"""

from __future__ import annotations

import os
import select
import time
from pathlib import Path

#: Seconds between looks where the kernel cannot tell this process when another ends.
POLL_SECONDS = 0.5


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists and has not ended (a zombie has: only its parent has not
    waited for it yet); another user's process counts as alive."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        stat = ""
    if stat.rpartition(")")[2].split()[:1] == ["Z"]:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def wait_for_exit(pid: int) -> None:
    """Return once process ``pid`` has ended: at once through a pidfd (Linux >= 5.3), which is
    readable when the process ends, else by looking every :data:`POLL_SECONDS`."""
    try:
        handle = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    except (AttributeError, OSError):
        handle = None
    if handle is not None:
        select.select([handle], [], [])
        os.close(handle)
        return
    while alive(pid):
        time.sleep(POLL_SECONDS)
