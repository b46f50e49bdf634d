"""One unit per model through the harness's own pipeline, then the floors of the same work.

The units run as ``run`` runs them (:func:`benchmark.data.prepare.prepare_models`, then
:meth:`benchmark.runner.BatchContext.run` per model, each in its MLflow run), restricted to
the first seed and the first split, so the stage hooks of the pipeline time the real code.
The floors run afterwards in the same process, on the very arrays the units trained on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from benchmark import interrupts
from benchmark.config import ExperimentConfig
from benchmark.profiling.epochs import epoch_clock
from benchmark.profiling.floors import FftFloor, bare_fit, fft_floor
from benchmark.profiling.report import Measurements, ModelMeasure
from benchmark.profiling.stages import Recorder, stage

log = logging.getLogger(__name__)

#: Where a network's fit is compared with a bare ``model.fit``: registered models of this kind.
NETWORK = "network"


def profile_pipeline(config: ExperimentConfig, models: Sequence[str], recorder: Recorder, *, tracking_uri: str,
                     progress: bool = True, floors: bool = True) -> Measurements:
    """Run one unit per model (first seed, first split) into ``tracking_uri``, then (``floors``) measure
    the floors."""
    from benchmark import tracking
    from benchmark.data.prepare import prepare_models
    from benchmark.runner import BatchContext, UnitFailed
    from benchmark.unit import Unit, kind_of, model_setup

    seed = config.run.seeds[0]
    started = time.perf_counter()
    with stage("logging", "store"):  # run opens the store first too: a bad URI fails before the data
        tracking.connect(tracking_uri)
        experiment_id = tracking.ensure_experiment(config.name, tracking_uri)
    setups = {name: model_setup(config, name) for name in models}
    prepared = prepare_models(config, models, progress=progress)
    context = BatchContext(config, prepared, setups, experiment_id, tracking.new_batch_id(), tracking_uri,
                           list(models), {})
    runs, windows = {}, {name: [] for name in models}
    for name in models:
        interrupts.check()
        clock = [epoch_clock(windows[name])] if kind_of(setups[name].architecture) == NETWORK else []
        try:
            runs[name] = context.run(Unit(name, seed, 0), callbacks=clock)
        except UnitFailed as failed:
            raise failed.error from None
    pipeline_seconds = time.perf_counter() - started

    if floors:
        log.info("floors: a bare fit of each network, then a plain STFT of the clips")
    measures = []
    for name in models:
        data = prepared[name].split(0)  # gathered already: the same arrays the unit trained on
        train, valid = data.subset("train"), data.subset("valid")
        setup = setups[name]
        epochs = _epochs_run(runs[name].run_id) if "epochs" in setup.training_keys else None
        measure = ModelMeasure(name, kind_of(setup.architecture), len(train.y), epochs, windows=windows[name])
        if floors and measure.kind == NETWORK and measure.epochs:
            interrupts.check()
            measure.bare = bare_fit(setup.architecture, dict(setup.hyperparameters), setup.training, train.x, train.y,
                                    valid.x, valid.y, n_classes=len(prepared[name].class_names), seed=seed,
                                    epochs=measure.epochs)
        measures.append(measure)
    fold = prepared[models[0]].split(0).fold
    return Measurements("pipeline", config.name, seed, fold, recorder, pipeline_seconds, measures,
                        fft=_fft_floors(config, prepared.values()) if floors else {})


def _fft_floors(config: ExperimentConfig, prepared) -> dict[str, FftFloor]:
    """The FFT floor of each representation extracted, computed once per distinct STFT."""
    params_of = {}
    for data in prepared:
        params_of[data.params.representation] = (data.params, data.features.tracks)
        if data.handcrafted is not None:  # the combined model's second input is extracted too
            params_of["handcrafted"] = (data.params.as_handcrafted(), data.features.tracks)
    floors, by_stft = {}, {}
    for representation, (params, tracks) in params_of.items():
        stft = (params.sample_rate, params.n_fft, params.hop_length, params.n_samples)
        if stft not in by_stft:
            interrupts.check()
            by_stft[stft] = fft_floor([track.path for track in tracks], sample_rate=params.sample_rate,
                                      n_fft=params.n_fft, hop_length=params.hop_length, n_samples=params.n_samples,
                                      min_seconds=config.data.min_seconds)
        floors[representation] = by_stft[stft]
    return floors


def _epochs_run(run_id: str) -> int | None:
    """The epochs the unit's fit ran, as its run recorded them (early stopping may end it sooner)."""
    from mlflow import MlflowClient

    epochs = MlflowClient().get_run(run_id).data.metrics.get("epochs_run")
    return int(epochs) if epochs else None
