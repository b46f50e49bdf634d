"""The audio-in model: an MLflow pyfunc that turns audio files into genres.

Every training run logs one beside its fitted model (artifact path ``audio_model``, run tag
``audio_model_uri``); ``promote``, ``predict`` and ``mlflow models serve`` use it. It bundles
all that labelling a new file needs and nothing of the training data:

- ``model.<suffix>``: the fitted estimator as it saves itself (``model.keras`` for a network),
  loaded back by :func:`benchmark.models.load_estimator`;
- ``preprocessing.json``: the feature parameters it was trained on (representation, sample
  rate, n_fft, hop, mel bands, frames, hence the clip length), the normalisation and the
  segmenting;
- ``labels.json``: the class names in the label encoder's order (its ``classes_``), so column
  ``i`` of the network's output is ``classes[i]``;
- the ``benchmark`` package itself (MLflow ``code_paths``), so the model preprocesses with the
  very code it was trained with, even where the project is not installed.

Input: a DataFrame with a ``path`` column (files this process can read) and/or an ``audio``
column (the file's bytes, base64); a row uses ``audio`` where it is set, else ``path``.

``path`` is for local use only: ``predict``, or Python code that loads the model itself.
Served over REST (``mlflow models serve``), a ``path`` row is refused with the same error
whatever it names, before the file system is touched, so a client cannot learn which files
exist on the server; clients send ``audio``. The server is told apart by the flag MLflow's
scoring server sets in its process (``_MLFLOW_IS_IN_SERVING_ENVIRONMENT``); a model served by
other means treats ``path`` as local use and must not be exposed to untrusted clients.
Each clip goes through :func:`benchmark.data.tracks.load_audio` and
:class:`benchmark.data.preprocessing.Preprocessing`, exactly as in training: decoded to mono at
the training rate, spectrogram, normalised (per clip, or with the training split's per-bin
statistics), padded or trimmed to the training length or cut into segments, whose predictions
are then voted as the test set's were.

Output: one row per input row: ``genre`` (the clip's label), ``probability`` (its score),
``p_<genre>`` for every class (the probabilities; with segments, their mean, or the share of
segments voting for it under a majority vote), and ``error``: ``None``, or why that row could not
be labelled (not audio, empty, missing, bad base64), in which case its ``genre`` and
probabilities are ``None`` too (``null`` over REST; the probability columns are then of object
dtype). A bad row never fails the rest of the batch, on the command line or over REST; an input
with neither column fails the whole call (REST: 400).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import tempfile
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd

from benchmark.data.inputs import concatenate, count, take
from benchmark.data.preprocessing import Preprocessing, bundled_files
from benchmark.data.tracks import load_audio
from benchmark.errors import BenchmarkError
from benchmark.evaluate import aggregate_clips
from benchmark.provenance import pinned_requirements

INPUT_COLUMNS = ("path", "audio")
#: Clips per network call: bounds memory at the study's input size (5.4 MB a spectrogram).
PREDICT_BATCH = 32
_PACKAGE_DIR = Path(__file__).resolve().parent
#: What the model needs to load and run, besides the estimator's own packages and the Keras backend.
_REQUIRED_PACKAGES = ("mlflow", "numpy", "pandas", "librosa", "soundfile", "cloudpickle")


class AudioGenreModel(mlflow.pyfunc.PythonModel):
    """Audio files in, genres out: see the module docstring for the columns."""

    def load_context(self, context) -> None:
        from benchmark.models import load_estimator

        artifacts = context.artifacts
        self.preprocessing = Preprocessing.from_config(json.loads(Path(artifacts["preprocessing"]).read_text()),
                                                       files=artifacts)
        self.params = self.preprocessing.params
        self.class_names = json.loads(Path(artifacts["labels"]).read_text())["classes"]
        self.estimator = load_estimator(artifacts["estimator"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        """Label every row of ``model_input``; rows that cannot be decoded get an ``error``."""
        frame = checked_input(model_input)
        inputs, owners, errors = [], [], []
        for row, (path, encoded) in enumerate(input_rows(frame)):
            try:
                clip = self.preprocessing.inputs(self.decode(path, encoded))
            except (BenchmarkError, OSError) as error:
                errors.append(str(error))
                continue
            errors.append(None)
            inputs.append(clip)
            owners.append(np.full(count(clip), row))
        probabilities, best = self.score_rows(inputs, owners, len(frame))
        return result_frame(probabilities, errors, self.class_names, best=best)

    def score_rows(self, inputs: list, owners: list, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
        """Per row: scores (NaN for a row with no inputs) and label, from each row's inputs.

        Every row's segments (one input per row without segments) go through the estimator in
        one pass, then a vote per row, exactly as the test set was scored.
        """
        probabilities = np.full((n_rows, len(self.class_names)), np.nan)
        best = np.zeros(n_rows, dtype=np.int64)
        if inputs:
            owner = np.concatenate(owners)
            rows, groups = np.unique(owner, return_inverse=True)
            scores, labels = aggregate_clips(predict_probabilities(self.estimator, concatenate(inputs)),
                                             groups, len(rows), self.preprocessing.vote)
            probabilities[rows], best[rows] = scores, labels
        return probabilities, best

    def decode(self, path: object, encoded: object) -> np.ndarray:
        """One row's samples: from the base64 ``audio`` value if given, else from ``path``."""
        if _is_set(encoded):
            return _decode_base64_audio(str(encoded), self.params.sample_rate)
        if not _is_set(path):
            raise BenchmarkError("row has neither a path nor audio")
        if is_served():
            raise BenchmarkError(SERVED_PATH_REFUSED)  # one answer for every path: no file-existence oracle
        file = Path(str(path)).expanduser()
        if not file.is_file():
            raise BenchmarkError(f"no such file: {file}")
        if file.stat().st_size == 0:
            raise BenchmarkError(f"empty file: {file}")
        return load_audio(file, self.params.sample_rate)


def checked_input(model_input) -> pd.DataFrame:
    """The input as a frame with a ``path`` or ``audio`` column; else the whole call fails (REST: 400)."""
    frame = pd.DataFrame(model_input)
    if not set(INPUT_COLUMNS) & set(frame.columns):
        from mlflow.exceptions import MlflowException

        # The whole request is malformed (REST answers 400), unlike one bad row.
        raise MlflowException.invalid_parameter_value(
            "the input needs a 'path' column (file paths) or an 'audio' column (base64 file bytes)"
        )
    return frame


def input_rows(frame: pd.DataFrame):
    """``(path, audio)`` per row, None where the column is absent."""
    paths = frame["path"] if "path" in frame else [None] * len(frame)
    audio = frame["audio"] if "audio" in frame else [None] * len(frame)
    return zip(paths, audio)


#: What a served model says to every ``path`` row.
SERVED_PATH_REFUSED = ("the 'path' input is not accepted when the model is served: send the file's bytes, "
                       "base64-encoded, in the 'audio' column")
#: The flag MLflow's scoring server sets in its own process (``mlflow.pyfunc.scoring_server.init``).
SERVING_FLAG = "_MLFLOW_IS_IN_SERVING_ENVIRONMENT"


def is_served() -> bool:
    """True inside MLflow's model server, where input comes from REST clients."""
    return os.environ.get(SERVING_FLAG, "").strip().lower() in ("true", "1")


def _is_set(value: object) -> bool:
    return isinstance(value, str) and value != ""


def _decode_base64_audio(encoded: str, sample_rate: int) -> np.ndarray:
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise BenchmarkError("the audio value is not valid base64") from None
    if not data:
        raise BenchmarkError("the audio value is empty")
    # The decoders (soundfile, then audioread) read files: hand them one.
    with tempfile.TemporaryDirectory(prefix="benchmark-audio-") as folder:
        file = Path(folder) / "upload"
        file.write_bytes(data)
        try:
            return load_audio(file, sample_rate)
        except BenchmarkError as error:
            raise BenchmarkError(str(error).replace(str(file), "the uploaded audio")) from None


def predict_probabilities(estimator, features) -> np.ndarray:
    """The estimator's class probabilities for a stack of inputs, float64, a batch at a time."""
    return np.concatenate([
        estimator.predict_proba(take(features, slice(start, start + PREDICT_BATCH)), batch_size=PREDICT_BATCH)
        for start in range(0, count(features), PREDICT_BATCH)
    ])


def result_frame(probabilities: np.ndarray, errors: list[str | None], class_names: list[str],
                 best: np.ndarray | None = None) -> pd.DataFrame:
    """The output columns from per-row scores (NaN rows where ``errors`` says why they failed).

    ``best`` is each row's label index where the vote decided it (a majority tie is broken by
    the mean probability, not by the vote shares); by default, the highest score.
    """
    if best is None:
        best = np.argmax(np.nan_to_num(probabilities, nan=-1.0), axis=1)
    genres = [None if error else class_names[index] for index, error in zip(best, errors)]
    frame = pd.DataFrame({
        "genre": pd.Series(genres, dtype=object),
        "probability": probabilities[np.arange(len(probabilities)), best],
        **{f"p_{name}": probabilities[:, column] for column, name in enumerate(class_names)},
        "error": pd.Series(errors, dtype=object),
    })
    if any(errors):
        # A failed row has no probabilities: None, which JSON writes as null (NaN is not JSON).
        frame = frame.astype(object).where(frame.notna(), None)
    return frame


def signature(class_names: list[str]):
    """The model's signature: string ``path``/``audio`` in; genre, probabilities, error out."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    inputs = Schema([ColSpec("string", name, required=False) for name in INPUT_COLUMNS])
    # Every output may be null: the error of a row that failed, the rest of a row that did.
    outputs = Schema([
        ColSpec(kind, name, required=False)
        for kind, name in [("string", "genre"), ("double", "probability"),
                           *(("double", f"p_{genre}") for genre in class_names), ("string", "error")]
    ])
    return ModelSignature(inputs=inputs, outputs=outputs)


def requirements(estimator) -> list[str]:
    """Pinned pip requirements of the audio model of ``estimator``."""
    return pinned_requirements(*_REQUIRED_PACKAGES, *estimator.requirements)


def audio_model_arguments(folder: Path, estimator, preprocessing: dict, class_names: list[str]) -> dict:
    """Keyword arguments of ``mlflow.pyfunc.log_model``/``save_model`` for a fitted ``estimator``.

    Writes the bundle's files into ``folder``, which MLflow copies into the model: the folder
    may be deleted once the model is logged or saved.
    """
    folder = Path(folder)
    saved = estimator.save(folder)
    (folder / "preprocessing.json").write_text(json.dumps(preprocessing, indent=2))
    (folder / "labels.json").write_text(json.dumps({"classes": [str(n) for n in class_names]}, indent=2))
    return {
        # Models from code: MLflow runs this file at load time instead of unpickling an object.
        "python_model": str(_PACKAGE_DIR / "audio_model_code.py"),
        "artifacts": {
            "estimator": str(saved),
            "preprocessing": str(folder / "preprocessing.json"),
            "labels": str(folder / "labels.json"),
            **bundled_files(preprocessing),  # a pretrained network's weights: served with no fetch
        },
        "code_paths": [str(_PACKAGE_DIR)],
        "signature": signature(list(class_names)),
        "input_example": pd.DataFrame({"path": ["song.wav"]}),
        "pip_requirements": requirements(estimator),
    }

