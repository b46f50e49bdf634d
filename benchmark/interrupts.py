"""Ctrl-C and SIGTERM as one exception that is never lost.

Python raises a signal handler's exception wherever the main thread happens to be; inside a
weak-reference callback or a ``__del__`` (SQLAlchemy has both) it is printed and dropped, and
the command would go on as if nothing happened. So the handler also records the signal, and
long loops call :func:`check` at safe points (every training batch, every unit), which raises
it again if it was swallowed. Commands get this through :func:`handled`.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_pending: int | None = None


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) or SIGTERM: the command stops as it does for Ctrl-C, with status 128 + signum."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextmanager
def handled() -> Iterator[None]:
    """SIGINT and SIGTERM raise :class:`Interrupted` in the main thread for the block."""
    global _pending
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers (a test calling the CLI from a thread)
        return
    _pending = None
    # A SIGINT ignored at start (a command started in the background, or under nohup) stays ignored.
    signals = [signum for signum in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(signum) is not signal.SIG_IGN]
    previous = {signum: signal.signal(signum, _on_signal) for signum in signals}
    previous_hook, sys.unraisablehook = sys.unraisablehook, _quiet_about_swallowed(sys.unraisablehook)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        sys.unraisablehook = previous_hook
        _pending = None


def check() -> None:
    """Raise the signal received since :func:`handled` began, if any (it may have been swallowed)."""
    if _pending is not None:
        raise Interrupted(_pending)


def _quiet_about_swallowed(hook):
    """Python prints an exception raised where it cannot propagate (``Exception ignored in``,
    with a traceback); an interruption is raised again by :func:`check`, so it goes unprinted."""

    def quiet(unraisable) -> None:
        if not isinstance(unraisable.exc_value, Interrupted):
            hook(unraisable)

    return quiet


def _on_signal(signum, frame) -> None:
    global _pending
    if signum == signal.SIGTERM:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process at once
    _pending = signum
    raise Interrupted(signum)
