"""Named stages of the pipeline, timed with their peak memory while a profile records them.

The pipeline marks its stages where they happen (``with stage("fit", unit.model):`` in
:mod:`benchmark.unit`, ``stage("extraction", ...)`` in :mod:`benchmark.data.prepare`, ...), so
``profile`` measures the harness exactly as ``run`` executes it. When nothing records, which
is every command but ``profile``, :func:`stage` returns one shared null context: the hooks cost
a global lookup and a call. Standard library only: the pipeline imports this module.

A stage entered several times under one (name, key) adds up its seconds and items and keeps
the largest peak. Stages may nest: an inner stage's peak also counts for the outer one.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass

from benchmark.profiling import memory

_NOT_RECORDING = contextlib.nullcontext()
_recorder: Recorder | None = None


@dataclass
class StageRecord:
    """One stage's totals: seconds, peak resident bytes, how often entered, items handled."""

    name: str
    #: What the stage was about: a model (fit, evaluate, logging), a representation (extraction).
    key: str | None
    seconds: float = 0.0
    peak_rss: int = 0
    entries: int = 0
    #: Items handled (clips extracted), where the stage counts them; None otherwise.
    items: int | None = None


class Recorder:
    """The stages recorded while :func:`recording` is active, in the order first entered."""

    def __init__(self) -> None:
        self.records: dict[tuple[str, str | None], StageRecord] = {}
        #: Peak resident bytes seen so far by each open stage, innermost last.
        self._open_peaks: list[int] = []

    @contextlib.contextmanager
    def measure(self, name: str, key: str | None, items: int | None) -> Iterator[StageRecord]:
        """Time the block and track its peak memory as stage (name, key)."""
        record = self.records.setdefault((name, key), StageRecord(name, key))
        if self._open_peaks:  # the reset below would erase the outer stage's peak: keep it first
            self._open_peaks[-1] = max(self._open_peaks[-1], memory.peak_rss())
        memory.reset_peak()
        self._open_peaks.append(0)
        started = time.perf_counter()
        try:
            yield record
        finally:
            seconds = time.perf_counter() - started
            peak = max(self._open_peaks.pop(), memory.peak_rss())
            if self._open_peaks:
                self._open_peaks[-1] = max(self._open_peaks[-1], peak)
            record.seconds += seconds
            record.peak_rss = max(record.peak_rss, peak)
            record.entries += 1
            if items is not None:
                record.items = (record.items or 0) + items

    def add(self, name: str, key: str | None, seconds: float, peak_rss: int) -> StageRecord:
        """Record a stage measured by other means (start-up, which begins before any code runs)."""
        record = self.records.setdefault((name, key), StageRecord(name, key))
        record.seconds += seconds
        record.peak_rss = max(record.peak_rss, peak_rss)
        record.entries += 1
        return record

    def get(self, name: str, key: str | None = None) -> StageRecord | None:
        """Stage (name, key), or None where it never ran."""
        return self.records.get((name, key))


def stage(name: str, key: str | None = None, *, items: int | None = None):
    """A context manager recording the block as stage ``name`` (about ``key``) while a profile records.

    ``items`` counts what the block handles (clips), for a throughput. Not recording: a null context.
    """
    if _recorder is None:
        return _NOT_RECORDING
    return _recorder.measure(name, key, items)


@contextlib.contextmanager
def recording() -> Iterator[Recorder]:
    """Record every stage entered in the block (this process, this thread of control)."""
    global _recorder
    previous, _recorder = _recorder, Recorder()
    try:
        yield _recorder
    finally:
        _recorder = previous
