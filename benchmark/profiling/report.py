"""A profile as plain values (what ``--json`` writes) and as the table ``profile`` prints.

:func:`build_profile` turns the measurements into one JSON-ready dict, ratios included, and
:func:`format_table` prints from that dict alone, so the table and the file never disagree.
Every ratio is harness / floor from numbers in the same dict: fit seconds over the bare fit's
per model, extraction seconds over the FFT floor's per representation, and the harness's wall
(start-up to the last unit's end) over the sum of the bare fits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from benchmark.profiling.epochs import fit_span, steady_span, steady_state
from benchmark.profiling.floors import BareFit, FftFloor
from benchmark.profiling.gpu_busy import NO_GPU, BusySampler
from benchmark.profiling.stages import Recorder

SCHEMA_VERSION = 2  # 2: per-epoch seconds, steady state, compile time, GPU busy fraction
MB = 1024 * 1024
#: Stages about one model, shown under it; the others come first, in this order.
MODEL_STAGES = ("inputs", "fit", "evaluate", "logging")
DATA_STAGES = ("startup", "logging", "data", "extraction", "inputs")


@dataclass
class ModelMeasure:
    """One model's unit: what it trained on, for how many epochs, and its bare fit (networks)."""

    model: str
    kind: str
    train_samples: int
    #: Epochs the harness's fit ran; None for a learner without epochs.
    epochs: int | None
    bare: BareFit | None = None
    #: Each epoch of the harness's fit, (start, end) on the ``perf_counter`` clock (networks).
    windows: list[tuple[float, float]] = field(default_factory=list)


@dataclass
class Measurements:
    """Everything one profile measured, before it becomes values and ratios."""

    mode: str
    experiment: str
    seed: int
    fold: int | None
    recorder: Recorder
    #: Seconds from start-up's end to the last unit's end (start-up is added by :func:`build_profile`).
    pipeline_seconds: float
    models: list[ModelMeasure]
    #: FFT floor per extracted representation.
    fft: dict[str, FftFloor] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def build_profile(measured: Measurements, *, settings: dict[str, Any], machine: dict[str, Any],
                  per_stage_peaks: bool, children_peak_rss: int, busy: BusySampler | None = None) -> dict[str, Any]:
    """The profile as one JSON-ready dict: settings, machine, stages, models, floors, ratios.

    ``busy`` sampled the GPU while the profile ran (None: no NVIDIA GPU); each fit's and bare
    fit's busy fraction is read from it over that fit's epochs.
    """
    recorder = measured.recorder
    stages = [_stage_values(record) for record in _ordered(recorder, [m.model for m in measured.models])]
    startup = recorder.get("startup")
    harness_seconds = (startup.seconds if startup else 0.0) + measured.pipeline_seconds
    per_model = {m.model: {**_model_values(m, recorder), **_epoch_values(m.windows, busy)} for m in measured.models}
    bare = {m.model: {**_rate_values(m.bare.seconds, m.bare.epochs, m.bare.samples),
                      **_epoch_values(m.bare.windows, busy)} for m in measured.models if m.bare}
    fft = {name: {"seconds": floor.seconds, "clips": floor.clips, "frames": floor.frames,
                  "clips_per_second": _rate(floor.clips, floor.seconds)} for name, floor in measured.fft.items()}
    bare_total = sum(values["seconds"] for values in bare.values())
    return {
        "schema": SCHEMA_VERSION,
        "mode": measured.mode,
        "experiment": measured.experiment,
        "seed": measured.seed,
        "fold": measured.fold,
        **settings,
        "peak_rss_per_stage": per_stage_peaks,
        "machine": machine,
        "gpu_busy": {"sampled": busy is not None, "device": busy.device if busy else None,
                     "note": "NVML utilization.gpu, mean over each fit's epochs" if busy else NO_GPU},
        "stages": stages,
        "models": per_model,
        "floors": {"bare_fit": bare, "fft": fft},
        "harness": {
            "seconds": harness_seconds,
            # Outside every stage: MLflow runs opening and closing, provenance tags, the lease.
            "unaccounted_seconds": harness_seconds - sum(item["seconds"] for item in stages),
            "children_peak_rss_mb": children_peak_rss / MB,
        },
        "ratios": {
            "fit": {name: per_model[name]["fit_seconds"] / values["seconds"] for name, values in bare.items()},
            # Steady epoch over steady epoch: the harness's cost once both have compiled.
            "steady": {name: _ratio_of(per_model[name]["steady_seconds_per_epoch"], values["steady_seconds_per_epoch"])
                       for name, values in bare.items()},
            "extraction": {name: _stage_seconds(stages, "extraction", name) / values["seconds"]
                           for name, values in fft.items() if values["seconds"] > 0},
            "overall": harness_seconds / bare_total if bare_total > 0 else None,
        },
        "notes": measured.notes,
    }


def _ordered(recorder: Recorder, models: list[str]):
    """Data stages first (in pipeline order), then each model's fit, evaluate and logging."""
    records = list(recorder.records.values())
    first = [r for name in DATA_STAGES for r in records if r.name == name and r.key not in models]
    per_model = [r for model in models for name in MODEL_STAGES for r in records if (r.name, r.key) == (name, model)]
    rest = [r for r in records if r not in first and r not in per_model]
    return first + per_model + rest


def _stage_values(record) -> dict[str, Any]:
    return {"stage": record.name, "key": record.key, "seconds": record.seconds,
            "peak_rss_mb": record.peak_rss / MB, "entries": record.entries, "items": record.items,
            "items_per_second": None if record.items is None else _rate(record.items, record.seconds)}


def _model_values(measure: ModelMeasure, recorder: Recorder) -> dict[str, Any]:
    fit = recorder.get("fit", measure.model)
    seconds = fit.seconds if fit else 0.0
    values = {"kind": measure.kind, "fit_seconds": seconds,
              **{key: value for key, value in _rate_values(seconds, measure.epochs, measure.train_samples).items()
                 if key != "seconds"},
              "fit_peak_rss_mb": fit.peak_rss / MB if fit else None}
    for name in ("evaluate", "logging"):
        record = recorder.get(name, measure.model)
        values[f"{name}_seconds"] = record.seconds if record else None
    return values


def _epoch_values(windows, busy: BusySampler | None) -> dict[str, Any]:
    """Per-epoch seconds, steady s/epoch and compile time, and the GPU's busy fraction (None: no GPU)."""
    gpu_busy = None
    if busy is not None:
        gpu_busy = {"fit": busy.fraction(fit_span(windows)), "steady": busy.fraction(steady_span(windows))}
    return {**steady_state(windows), "gpu_busy": gpu_busy}


def _ratio_of(harness: float | None, floor: float | None) -> float | None:
    return harness / floor if harness is not None and floor else None


def _rate_values(seconds: float, epochs: int | None, samples: int) -> dict[str, Any]:
    """Seconds, epochs, samples and the rates: s/epoch and training samples/s (over every epoch)."""
    return {"seconds": seconds, "epochs": epochs, "train_samples": samples,
            "seconds_per_epoch": seconds / epochs if epochs else None,
            "samples_per_second": _rate(samples * (epochs or 1), seconds)}


def _rate(count: float, seconds: float) -> float | None:
    return count / seconds if seconds > 0 else None


def _stage_seconds(stages: list[dict], name: str, key: str | None) -> float:
    return sum(item["seconds"] for item in stages if (item["stage"], item["key"]) == (name, key))


# --- the printed table ---------------------------------------------------------------------------

_COLUMNS = ("stage", "for", "seconds", "peak RSS", "throughput", "floor", "ratio")


def format_table(profile: dict[str, Any]) -> str:
    """The profile as a header and a table: one row per stage, each ratio beside its floor."""
    rows = [_row(item, profile) for item in profile["stages"]]
    harness = profile["harness"]
    rows.append(("other", "", _seconds(harness["unaccounted_seconds"]), "", "", "", ""))
    bare_total = sum(item["seconds"] for item in profile["floors"]["bare_fit"].values())
    overall = profile["ratios"]["overall"]
    rows.append(("harness wall", "", _seconds(harness["seconds"]), "", "",
                 f"sum of bare fits {bare_total:.1f} s" if overall is not None else "", _ratio(overall)))
    lines = [_header(profile), "", *_grid([_COLUMNS, *rows], numeric={2, 3, 6})]
    steady = _steady_rows(profile)
    if steady:
        lines += ["", *_grid([_STEADY_COLUMNS, *steady], numeric=set(range(1, len(_STEADY_COLUMNS))))]
    lines += ["", *_footnotes(profile)]
    return "\n".join(lines)


def _grid(rows: list[tuple], *, numeric: set[int]) -> list[str]:
    """Rows as aligned text: numeric columns right-aligned, the others left."""
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(str(cell).rjust(width) if index in numeric else str(cell).ljust(width)
                      for index, (cell, width) in enumerate(zip(row, widths, strict=True))).rstrip()
            for row in rows]


_STEADY_COLUMNS = ("steady state", "first epoch", "steady s/epoch", "compile", "bare steady", "bare compile",
                   "steady ratio", "GPU busy")


def _steady_rows(profile: dict[str, Any]) -> list[tuple]:
    """Per network: first epoch, steady s/epoch and compile, the bare fit's two, their ratio, GPU busy."""
    rows = []
    for name, model in profile["models"].items():
        if not model.get("epoch_seconds"):
            continue
        bare = profile["floors"]["bare_fit"].get(name) or {}  # none with --no-floors
        rows.append((name, _maybe_seconds(model["first_epoch_seconds"]), _maybe_seconds(model["steady_seconds_per_epoch"]),
                     _maybe_seconds(model["compile_seconds"]), _maybe_seconds(bare.get("steady_seconds_per_epoch")),
                     _maybe_seconds(bare.get("compile_seconds")), _ratio(profile["ratios"]["steady"].get(name)),
                     _busy(model["gpu_busy"], bare.get("gpu_busy"))))
    return rows


def _busy(harness: dict | None, bare: dict | None) -> str:
    """GPU busy over the steady epochs (all epochs with one), harness / bare; "n/a" without a GPU."""
    def one(values):
        value = values["steady"] if values["steady"] is not None else values["fit"]
        return "?" if value is None else f"{value:.0%}"
    if harness is None:
        return "n/a"
    return one(harness) + (f" / {one(bare)}" if bare is not None else "")


def _maybe_seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def _row(item: dict[str, Any], profile: dict[str, Any]) -> tuple:
    name, key = item["stage"], item["key"]
    throughput = floor = ratio = ""
    if name == "extraction" and item["items_per_second"] is not None:
        throughput = f"{item['items_per_second']:.1f} clips/s"
        fft = profile["floors"]["fft"].get(key)
        if fft is not None:
            floor = f"FFT {fft['seconds']:.2f} s ({fft['clips_per_second'] or 0:.0f} clips/s)"
            ratio = _ratio(profile["ratios"]["extraction"].get(key))
    elif name == "fit" and key in profile["models"]:
        model = profile["models"][key]
        throughput = _fit_rate(model)
        bare = profile["floors"]["bare_fit"].get(key)
        if bare is not None:
            floor = f"bare fit {bare['seconds']:.2f} s ({_fit_rate(bare)})"
            ratio = _ratio(profile["ratios"]["fit"].get(key))
    return (name, key or "", _seconds(item["seconds"]), f"{item['peak_rss_mb']:.0f} MB", throughput, floor, ratio)


def _fit_rate(values: dict[str, Any]) -> str:
    if values.get("seconds_per_epoch") is None:
        return f"{values['samples_per_second'] or 0:.0f} samples/s"
    return f"{values['seconds_per_epoch']:.2f} s/epoch, {values['samples_per_second'] or 0:.0f} samples/s"


def _header(profile: dict[str, Any]) -> str:
    machine = profile["machine"]
    where = f"split {profile['fold']}" if profile["fold"] is not None else "the only split"
    load = machine.get("load_average_at_start") or machine.get("load_average")
    parts = [
        f"profile of experiment {profile['experiment']!r} ({profile['mode']}): seed {profile['seed']}, {where}, "
        f"{profile['epochs']} epoch{'s' if profile['epochs'] != 1 else ''}",
        f"{machine['backend']} {machine['backend_version'] or ''} (Keras {machine['keras']}), "
        f"{machine['usable_cpus']} CPUs{', ' + ', '.join(machine['accelerators']) if machine['accelerators'] else ''}"
        + (f", device {machine['device']}" if machine.get("device") else "")
        + (f", load {' '.join(f'{value:.2f}' for value in load)} at start" if load else "")
        + f", commit {machine['git_commit'][:12]}",
    ]
    return "\n".join(parts)


def _footnotes(profile: dict[str, Any]) -> list[str]:
    notes = list(profile["notes"])
    if any(model.get("epoch_seconds") for model in profile["models"].values()):
        busy = profile["gpu_busy"]
        notes.append("steady s/epoch: median of epochs 2..n; compile: first epoch minus steady; GPU busy: "
                     + (f"{busy['device']}, steady epochs, harness / bare" if busy["sampled"] else busy["note"]))
    if not profile["peak_rss_per_stage"]:
        notes.append("peak RSS is the process's peak so far (per-stage reset unavailable here)")
    return [f"- {note}" for note in notes]


def _seconds(value: float) -> str:
    return f"{value:.2f}"


def _ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}x"
