"""Steady state apart from start-up: each epoch's seconds, and what they say about a fit.

A network's first epoch pays for tracing and compiling (XLA, ``jit_compile``), the later ones
only for training, so a fit's seconds per epoch mix two costs that scale differently (the
paper's 100 epochs pay the first once). :func:`epoch_clock` is a Keras callback that times
each epoch from its start to its end; it has epoch hooks only, so Keras keeps dispatching
batches asynchronously (a batch hook would make it wait for every batch's logs). Its windows
(``perf_counter`` start and end of each epoch) also say when to read the GPU's busy samples.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import Any

#: One epoch: its start and end on the :func:`time.perf_counter` clock.
Window = tuple[float, float]


def epoch_clock(windows: list[Window]) -> Any:
    """A Keras callback appending each epoch's (start, end) to ``windows`` (imports Keras)."""
    import keras

    class EpochClock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self._started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            windows.append((self._started, time.perf_counter()))

    return EpochClock()


def steady_state(windows: Sequence[Window]) -> dict[str, Any]:
    """Each epoch's seconds, the first's, the steady s/epoch and the start-up it leaves.

    Steady: the median of epochs 2..n (a median: one slow epoch, a garbage collection, does not
    move it). Compile: the first epoch minus the steady one, the tracing and compiling that only
    the first pays. Both None with fewer than two epochs.
    """
    seconds = [end - start for start, end in windows]
    steady = statistics.median(seconds[1:]) if len(seconds) > 1 else None
    return {
        "epoch_seconds": seconds,
        "first_epoch_seconds": seconds[0] if seconds else None,
        "steady_seconds_per_epoch": steady,
        "compile_seconds": seconds[0] - steady if steady is not None else None,
    }


def steady_span(windows: Sequence[Window]) -> Window | None:
    """From the second epoch's start to the last one's end: where steady state is read; None
    with fewer than two epochs."""
    return (windows[1][0], windows[-1][1]) if len(windows) > 1 else None


def fit_span(windows: Sequence[Window]) -> Window | None:
    """From the first epoch's start to the last one's end; None without an epoch."""
    return (windows[0][0], windows[-1][1]) if windows else None
