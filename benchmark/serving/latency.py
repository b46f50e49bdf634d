"""``latency``: how fast each network labels audio on this machine.

For every network at an experiment's input shape it measures, with :mod:`timeit`:

- the network alone on one clip (batch 1, the median over ``repeats`` calls after warm-up),
  through the same call the audio model makes (:func:`predict_probabilities`);
- its throughput on a batch (clips per second at ``batch_size``);
- end to end, audio file to genre: the audio model saved with MLflow, loaded back as a pyfunc,
  and asked for one 10 s wav file (decode + spectrogram + network + MLflow's input checks).

Decoding and the spectrogram do not depend on the network; they are also timed on their own.
The networks are built untrained: weights do not change the arithmetic, so the timings are those
of the trained models, with no training needed first.
"""

from __future__ import annotations

import statistics
import tempfile
import timeit
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.data.gtzan import GTZAN_GENRES
from benchmark.errors import BenchmarkError

CLIP_SECONDS = 10.0
WARMUP_CALLS = 3


def median_ms(call, repeats: int) -> float:
    """Median wall time of ``call`` in milliseconds, after a few untimed warm-up calls."""
    timeit.repeat(call, repeat=WARMUP_CALLS, number=1)  # tracing, first allocations, caches
    return 1000.0 * statistics.median(timeit.repeat(call, repeat=repeats, number=1))


def measure_latency(
    experiments: Sequence[str],
    models: Sequence[str] | None = None,
    *,
    repeats: int = 30,
    batch_size: int = 32,
    end_to_end: bool = True,
) -> pd.DataFrame:
    """One row per (experiment, network): parameters and the timings described above.

    Only networks are timed (kind ``network``): they can be timed untrained. The default is the
    experiment's networks; naming a classical learner or the two-input network is an error.
    """
    from benchmark.config import load_experiment
    from benchmark.models import get_model_spec

    rows = []
    with tempfile.TemporaryDirectory(prefix="benchmark-latency-") as folder:
        for name in experiments:
            config = load_experiment(name)
            clip = _write_clip(Path(folder) / f"{config.name}.wav", config.data.sample_rate)
            preprocessing = _preprocessing_ms(config, clip, repeats)
            chosen = models or [name for name in config.run.models
                                if get_model_spec(config.architecture_of(name)).kind == "network"]
            for network in chosen:
                kind = get_model_spec(config.architecture_of(network)).kind
                if kind != "network":
                    raise BenchmarkError(f"latency times untrained networks; {network!r} is a {kind} model")
                rows.append({
                    "experiment": config.name,
                    **preprocessing,
                    **_network_row(config, network, clip, repeats=repeats, batch_size=batch_size,
                                   end_to_end=end_to_end),
                })
    return pd.DataFrame(rows)


def measure_model_latency(model_uris: Sequence[str], *, repeats: int = 30, tracking_uri: str | None = None,
                          sample_rate: int = 22050) -> pd.DataFrame:
    """One row per logged audio model (a run's, a promoted version, an ensemble's): end to end,
    a 10 s wav file to its genre through the loaded pyfunc, the median of ``repeats`` calls.

    Trained models, as served: for an ensemble, every member decodes, computes its inputs and
    scores, so this is the figure to compare with a single model's ``end_to_end_ms``.
    """
    from benchmark.serving.predict import load_audio_model

    rows = []
    with tempfile.TemporaryDirectory(prefix="benchmark-latency-") as folder:
        clip = _write_clip(Path(folder) / "clip.wav", sample_rate)
        request = pd.DataFrame({"path": [str(clip)]})
        for uri in model_uris:
            model = load_audio_model(uri, tracking_uri)
            inner = model.unwrap_python_model()
            members = getattr(inner, "members", None)
            rows.append({"model_uri": uri, "members": ", ".join(members) if members else "",
                         "end_to_end_ms": median_ms(lambda: model.predict(request), repeats)})  # noqa: B023
    return pd.DataFrame(rows)


def _write_clip(path: Path, sample_rate: int) -> Path:
    """A 10 s synthetic rock clip as 16-bit wav: what an upload would be."""
    import soundfile

    from benchmark.data.synth.clip import synthesize_clip

    audio = synthesize_clip("rock", 0, seconds=CLIP_SECONDS, sample_rate=sample_rate)
    soundfile.write(path, audio, sample_rate, subtype="PCM_16")
    return path


def _preprocessing_ms(config, clip: Path, repeats: int) -> dict:
    from benchmark.data.features import FeatureParams, compute_features
    from benchmark.data.tracks import load_audio

    params = FeatureParams.from_config(config)
    audio = load_audio(clip, params.sample_rate)
    return {
        "input": "x".join(map(str, params.shape)),
        "decode_ms": median_ms(lambda: load_audio(clip, params.sample_rate), repeats),
        "features_ms": median_ms(lambda: compute_features(audio, params), repeats),
    }


def _network_row(config, name: str, clip: Path, *, repeats: int, batch_size: int, end_to_end: bool) -> dict:
    import keras

    from benchmark.audio_model import predict_probabilities
    from benchmark.data.features import FeatureParams
    from benchmark.models import create_estimator, resolve_hyperparameters

    keras.utils.clear_session(free_memory=True)
    params = FeatureParams.from_config(config, name)
    architecture = config.architecture_of(name)
    hyperparameters = resolve_hyperparameters(architecture, config.model_settings(name).hyperparameters)
    # Built untrained: its ``predict_proba`` is the very call the audio model makes.
    network = create_estimator(architecture, params.shape, len(GTZAN_GENRES), **hyperparameters)
    rng = np.random.default_rng(0)
    one = rng.random((1, *params.shape), dtype=np.float32)
    batch = rng.random((batch_size, *params.shape), dtype=np.float32)
    batch_ms = median_ms(lambda: predict_probabilities(network, batch), max(3, repeats // 5))
    row = {
        "network": name,
        "parameters": int(network.count_params()),
        "network_ms": median_ms(lambda: predict_probabilities(network, one), repeats),
        f"clips_per_s_batch{batch_size}": 1000.0 * batch_size / batch_ms,
    }
    if end_to_end:
        row["end_to_end_ms"] = _end_to_end_ms(network, params, clip, repeats)
    return row


def _end_to_end_ms(network, params, clip: Path, repeats: int) -> float:
    """One file through the audio model as MLflow serves it: saved, loaded, ``predict``."""
    import mlflow.pyfunc

    from benchmark.audio_model import audio_model_arguments
    from benchmark.data.preprocessing import preprocessing_config
    from benchmark.tracking import quiet_mlflow

    # Its own folder, deleted at once: at the study's size one fcnn model is 2.8 GB.
    with tempfile.TemporaryDirectory(prefix="benchmark-latency-model-") as folder, quiet_mlflow():
        bundle, saved = Path(folder) / "bundle", Path(folder) / "model"
        bundle.mkdir()
        arguments = audio_model_arguments(bundle, network, preprocessing_config(params), list(GTZAN_GENRES))
        mlflow.pyfunc.save_model(str(saved), **arguments)
        model = mlflow.pyfunc.load_model(str(saved))
        request = pd.DataFrame({"path": [str(clip)]})
        return median_ms(lambda: model.predict(request), repeats)


def render_latency(table: pd.DataFrame) -> str:
    """The table as aligned text, times in ms to one decimal, parameters with separators."""
    if "model_uri" in table:  # logged models (``--model-uri``)
        return table.to_string(index=False, formatters={"end_to_end_ms": "{:,.1f}".format})
    leading = ["experiment", "input", "network", "parameters"]
    ordered = table[leading + [column for column in table.columns if column not in leading]]
    formatters = {column: "{:,.1f}".format for column in ordered.columns
                  if column.endswith("_ms") or column.startswith("clips_per_s")}
    return ordered.to_string(index=False, formatters=formatters | {"parameters": "{:,}".format})
