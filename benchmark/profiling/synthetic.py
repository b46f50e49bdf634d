"""``profile --synthetic-inputs``: each network's fit speed on random inputs of the experiment's shape.

No audio, no extraction, no tracking: random float16 inputs (what the feature cache holds) of
the shape the experiment's features give each model, for a number of clips chosen on the
command line, so a GPU machine measures the study's paper-size seconds per epoch in one short
command without the data set. Each network is fitted by the harness's estimator (as ``run``
fits it, its stage timed) and then bare (:func:`benchmark.profiling.floors.bare_fit`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np

from benchmark import interrupts
from benchmark.config import ExperimentConfig
from benchmark.profiling.epochs import epoch_clock
from benchmark.profiling.floors import bare_fit
from benchmark.profiling.pipeline import NETWORK
from benchmark.profiling.report import Measurements, ModelMeasure
from benchmark.profiling.stages import Recorder, stage
from benchmark.unit import kind_of

log = logging.getLogger(__name__)

#: Classes of the random labels: GTZAN's ten genres.
CLASSES = 10
#: Validation clips per training clip (the harness always watches a validation split).
VALID_FRACTION = 0.25


def input_shape(config: ExperimentConfig, model: str):
    """The shape of one input of ``model`` under ``config``'s features (a dict for a two-part input)."""
    from benchmark.data.features import FeatureParams
    from benchmark.data.inputs import FRAMES, HANDCRAFTED
    from benchmark.data.prepare import segmenting_of

    features = config.features_for(model)
    params = FeatureParams.from_features(features, config.data.sample_rate)
    segmenting = segmenting_of(features, config.data.sample_rate)
    shape = params.shape if params.is_vector or segmenting is None else (params.bins, segmenting.frames)
    if features.add_handcrafted:
        return {FRAMES: shape, HANDCRAFTED: params.as_handcrafted().shape}
    return shape


def random_inputs(shape, count: int, rng: np.random.Generator):
    """``count`` random float16 inputs in [0, 1) of ``shape`` (or of each part of a dict of shapes)."""
    if isinstance(shape, dict):
        return {name: random_inputs(part, count, rng) for name, part in shape.items()}
    inputs = np.empty((count, *shape), dtype=np.float16)
    for row in range(count):  # a row at a time: no float32 copy of the whole set (GBs at paper size)
        inputs[row] = rng.random(shape, dtype=np.float32)
    return inputs


def profile_synthetic(config: ExperimentConfig, models: Sequence[str], recorder: Recorder, *,
                      clips: int, floors: bool = True) -> Measurements:
    """Fit each network of ``models`` on ``clips`` random inputs, by the harness and (``floors``)
    bare; skip the others."""
    from benchmark.models import create_estimator
    from benchmark.unit import model_setup

    seed = config.run.seeds[0]
    rng = np.random.default_rng(seed)
    measures, notes, harness_seconds = [], [], 0.0
    valid_clips = max(1, round(clips * VALID_FRACTION))
    for name in models:
        setup = model_setup(config, name)
        if kind_of(setup.architecture) != NETWORK:
            notes.append(f"{name} skipped: --synthetic-inputs times networks only")
            continue
        interrupts.check()
        shape = input_shape(config, name)
        started = time.perf_counter()
        with stage("inputs", name):
            x_train, x_valid = random_inputs(shape, clips, rng), random_inputs(shape, valid_clips, rng)
            y_train, y_valid = (rng.permutation(np.arange(count) % CLASSES) for count in (clips, valid_clips))
        estimator = create_estimator(setup.architecture, shape, CLASSES, **setup.hyperparameters)
        windows: list = []
        with stage("fit", name):
            fit = estimator.fit(x_train, y_train, x_valid, y_valid, training=setup.training, seed=seed, label=name,
                                callbacks=[epoch_clock(windows)])
        harness_seconds += time.perf_counter() - started
        bare = None
        if floors:
            log.info("%s: bare fit", name)
            bare = bare_fit(setup.architecture, dict(setup.hyperparameters), setup.training, x_train, y_train,
                            x_valid, y_valid, n_classes=CLASSES, seed=seed, epochs=fit.epochs_run)
        measures.append(ModelMeasure(name, NETWORK, clips, fit.epochs_run, bare, windows))
        del x_train, x_valid  # before the next model's inputs: paper-size inputs are GBs
    if not measures:
        from benchmark.errors import BenchmarkError

        raise BenchmarkError("--synthetic-inputs times networks, and none of the models given is one")
    notes.append(f"random float16 inputs, {clips} training and {valid_clips} validation clips per network; "
                 "no audio, extraction, evaluation or tracking" + ("" if floors else "; no bare fits (--no-floors)"))
    return Measurements("synthetic-inputs", config.name, seed, None, recorder, harness_seconds, measures, notes=notes)
