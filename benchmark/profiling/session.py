"""One ``profile`` command: start-up, the measurements of its mode, the machine, the result dict.

Kept apart from the command line so a test (or CI script) can profile in-process with the
same code path: :func:`run_profile` takes a loaded experiment and returns the JSON-ready dict.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from benchmark.config import ExperimentConfig
from benchmark.profiling import memory
from benchmark.profiling.stages import Recorder, recording


@dataclass(frozen=True)
class ProfileOptions:
    """What ``profile`` was asked for besides the experiment and models."""

    epochs: int
    synthetic_inputs: bool = False
    clips: int = 256
    warm_cache: bool = False
    tracking_uri: str | None = None
    progress: bool = True
    #: Measure the floors (bare fits, FFT) too; False: the harness alone.
    floors: bool = True
    #: The experiment's options as given (experiment, models, --set, ...), recorded in the JSON.
    arguments: dict[str, Any] = field(default_factory=dict)


def run_profile(config: ExperimentConfig, models: Sequence[str], options: ProfileOptions, *,
                started: float, from_process_start: bool = True) -> dict[str, Any]:
    """Profile ``models`` of ``config`` as ``options`` say; returns the profile (see :mod:`.report`).

    ``started`` (on the :func:`time.perf_counter` clock) is when start-up began: the process's
    start, or the command's where that is unknown (``from_process_start=False``). Start-up ends
    once the pipeline's libraries are imported.
    """
    from benchmark.profiling.gpu_busy import nvml_sampler
    from benchmark.profiling.machine import load_average, machine_info
    from benchmark.profiling.report import build_profile

    load_at_start = load_average()
    busy = nvml_sampler()  # None without an NVIDIA GPU (or without nvidia-ml-py)
    with recording() as recorder, busy or contextlib.nullcontext():
        _record_startup(recorder, started)
        per_stage_peaks = memory.peak_is_per_stage()  # after start-up: the probe resets the peak
        if options.synthetic_inputs:
            from benchmark.profiling.synthetic import profile_synthetic

            measured = profile_synthetic(config, models, recorder, clips=options.clips, floors=options.floors)
            settings = {"cache": None, "tracking": None}
        else:
            measured, settings = _profile_pipeline(config, models, recorder, options)
    if not from_process_start:
        measured.notes.append("start-up counts from the command's start: this system does not tell a process's age")
    return build_profile(measured, settings={"arguments": options.arguments, "epochs": options.epochs,
                                             "clips": options.clips if options.synthetic_inputs else None,
                                             "floors": options.floors,
                                             **settings},
                         machine={**machine_info(), "load_average_at_start": load_at_start},
                         per_stage_peaks=per_stage_peaks,
                         children_peak_rss=memory.children_peak_rss(), busy=busy)


def _profile_pipeline(config, models, recorder: Recorder, options: ProfileOptions):
    from benchmark.profiling.cache import profile_workspace
    from benchmark.profiling.pipeline import profile_pipeline
    from benchmark.redaction import redact

    with profile_workspace(cold_cache=not options.warm_cache, tracking_uri=options.tracking_uri) as workspace:
        measured = profile_pipeline(config, models, recorder, tracking_uri=workspace.tracking_uri,
                                    progress=options.progress, floors=options.floors)
    measured.notes.append(
        "features extracted into an empty temporary cache (cold); --warm-cache uses the user's cache"
        if workspace.cold_cache else f"features read from the user's cache {workspace.cache_root} (warm, if filled)")
    measured.notes.append("runs logged to a temporary tracking store, removed after" if workspace.throwaway_store
                          else f"runs logged to {redact(workspace.tracking_uri)}")
    measured.notes.append(("bare fits and FFT floors ran after the units, in the same process; the units too "
                           if options.floors else "no floors measured (--no-floors); the units ran in one process ")
                          + "(run trains each in a fresh process); extraction worker processes (handcrafted "
                          "statistics), if any, peak at harness.children_peak_rss_mb")
    settings = {"cache": {"features": "cold" if workspace.cold_cache else "warm",
                          "root": None if workspace.cold_cache else str(workspace.cache_root)},
                "tracking": {"uri": redact(workspace.tracking_uri), "throwaway": workspace.throwaway_store}}
    return measured, settings


def _record_startup(recorder: Recorder, started: float) -> None:
    """Start-up: from ``started`` until the pipeline's libraries are imported.

    The pipeline imports Keras, MLflow, librosa and scikit-learn lazily, inside its first
    stages; importing them here keeps that cost in start-up, where ``run`` pays it too,
    rather than in whichever stage happened to touch each first.
    """
    import keras  # noqa: F401
    import librosa  # noqa: F401
    import mlflow  # noqa: F401
    import sklearn  # noqa: F401

    import benchmark.models  # noqa: F401  every registered model, as run imports them
    import benchmark.runner  # noqa: F401
    import benchmark.tracking  # noqa: F401

    seconds = time.perf_counter() - started
    recorder.add("startup", None, seconds, memory.peak_rss())  # not reset yet: the peak since the process began
