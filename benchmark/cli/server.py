"""A server command (``mlflow ui``) run for as long as the verb that started it, and no longer.

``mlflow ui`` is three levels of processes: MLflow's launcher, uvicorn, and uvicorn's workers.
They run in a process group of their own, so that a terminal's Ctrl-C reaches only the verb,
which then stops the whole group (:func:`stop_process_group`). A verb killed outright
(``kill -9``, the OOM killer) can stop nothing, and the server would go on listening; so a small
watcher process (``python -m benchmark.cli.server VERB_PID GROUP``) waits for the verb's end and
then stops the group itself.

Before starting, :func:`check_port` turns a busy or impossible port into one error line: the
server would print its own traceback, and the verb would exit 0.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import time

from benchmark.errors import BenchmarkError
from benchmark.processes import wait_for_exit

#: Seconds a stopped server gets to end on SIGTERM before its group is killed.
GRACE_SECONDS = 15
HOST = "127.0.0.1"


def check_port(port: int, option: str = "--port") -> None:
    """A :class:`BenchmarkError` unless a server could listen on ``HOST:port`` now."""
    if not 1 <= port <= 65535:
        raise BenchmarkError(f"{option} {port} is not a TCP port: give one from 1 to 65535")
    with socket.socket() as probe:
        # As uvicorn binds: a port in TIME_WAIT after a recent server is free, a listening one is not.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError as error:
            reason = "in use" if error.errno == errno.EADDRINUSE else f"not available ({error.strerror})"
            raise BenchmarkError(f"port {port} on {HOST} is {reason}: pass another {option}") from None


def run_server(command: list[str]) -> int:
    """Run a server command until it exits, or until Ctrl-C or SIGTERM stops this process; its
    exit status. The server's whole process group is stopped in every case, ``kill -9`` included."""
    process = subprocess.Popen(command, start_new_session=True)
    watcher = None
    try:
        watcher = subprocess.Popen([sys.executable, "-m", __name__, str(os.getpid()), str(process.pid)],
                                   start_new_session=True)  # out of the terminal's reach: Ctrl-C is ours
        return process.wait()
    finally:  # also after the server exited by itself: its workers may linger in the group
        stop_process_group(process)
        if watcher is not None:
            watcher.kill()
            watcher.wait()


def stop_process_group(process, *, grace_seconds: float = GRACE_SECONDS) -> None:
    """Stop the process group ``process`` leads (see :func:`stop_group`), and reap ``process``."""
    stop_group(process.pid, grace_seconds, leader=process)


def stop_group(group: int, grace_seconds: float = GRACE_SECONDS, *, leader=None) -> None:
    """SIGTERM every process of process group ``group``; SIGKILL those left after ``grace_seconds``.

    Every member, not only the leader: MLflow's launcher may end first and leave uvicorn's
    workers and its job consumers behind. ``leader``, a child of this process, is reaped on the
    way, since until then it still counts as a member.
    """
    try:
        os.killpg(group, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline:
        if leader is not None:
            leader.poll()
        if not _group_alive(group):
            return
        time.sleep(0.1)
    try:
        os.killpg(group, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if leader is not None:
        leader.wait()


# --- the watcher's process ------------------------------------------------------------------------

def watch(verb_pid: int, group: int) -> None:
    """Wait until ``verb_pid`` has ended, then stop process group ``group`` (SIGTERM, then SIGKILL)."""
    wait_for_exit(verb_pid)
    stop_group(group)  # nothing left to stop where the verb stopped it before it ended


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # only the verb's end stops a watcher
    watch(int(sys.argv[1]), int(sys.argv[2]))
