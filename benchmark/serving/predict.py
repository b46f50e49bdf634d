"""``predict``: genres of audio files and folders, through an audio model from MLflow.

The files go through the model's own pyfunc ``predict`` (what ``mlflow models serve`` runs),
a chunk at a time, so a file that cannot be decoded becomes an error row while the others are
labelled. The result is one row per file: its top-k genres with probabilities, or its error.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd

from benchmark.data.tracks import AUDIO_SUFFIXES, printable_name
from benchmark.errors import BenchmarkError
from benchmark.redaction import redact

DEFAULT_MODEL_URI = "models:/genre-classifier@champion"
#: Files per call of the model: the progress bar moves per chunk, and memory stays bounded.
CHUNK = 16


def collect_audio_files(paths: Sequence[str | Path]) -> tuple[list[Path], list[Path]]:
    """The files to label, and the given paths that do not exist.

    A folder contributes its audio files (by suffix), recursively and sorted; a file named
    explicitly is tried whatever its suffix, since the decoder, not the name, decides. Nothing
    to label at all is a :class:`BenchmarkError`.
    """
    files, missing = [], []
    for given in map(Path, paths):
        if given.is_dir():
            files.extend(sorted(
                path for path in given.expanduser().rglob("*")
                if path.is_file() and path.suffix.lower() in AUDIO_SUFFIXES
            ))
        elif given.expanduser().exists():
            files.append(given)
        else:
            missing.append(given)
    if not files and missing:
        raise BenchmarkError(f"no such file or directory: {', '.join(map(printable_name, missing))}")
    if not files:
        raise BenchmarkError(
            f"no audio files ({', '.join(sorted(AUDIO_SUFFIXES))}) under {', '.join(map(str, paths))}"
        )
    return files, missing


#: Model URI schemes resolved through the tracking store (``--tracking-uri``).
TRACKED_SCHEMES = ("models", "runs", "mlflow-artifacts")
#: Every form ``--model-uri`` takes, as the error for any other names them.
MODEL_URI_FORMS = ("models:/NAME@ALIAS, models:/NAME/VERSION, runs:/RUN_ID/audio_model, "
                   "mlflow-artifacts:/... (with an http(s) --tracking-uri), a local model folder or file:// URI")


def check_model_uri(model_uri: str) -> str:
    """The scheme of a model URI this command supports (``""`` for a local path); else one clear error.

    MLflow would try any scheme it has an artifact repository for, and fail on most of them
    with a traceback (``http://``: a ValueError; ``s3://``, ``gs://``: a missing package);
    cloud stores are reached through a tracking server's ``mlflow-artifacts:`` instead.
    """
    if not model_uri.strip():
        raise BenchmarkError(f"--model-uri is empty; it takes {MODEL_URI_FORMS}")
    scheme = urlparse(model_uri).scheme.lower()
    if len(scheme) == 1:  # a Windows drive letter: a path
        scheme = ""
    if scheme not in (*TRACKED_SCHEMES, "file", ""):
        raise BenchmarkError(f"unsupported model URI {redact(model_uri)!r} (scheme {scheme}:); "
                             f"--model-uri takes {MODEL_URI_FORMS}")
    return scheme


def load_audio_model(model_uri: str, tracking_uri: str | None = None):
    """The pyfunc audio model at ``model_uri``; any failure to load it is one clear error."""
    from benchmark import tracking

    if check_model_uri(model_uri) in TRACKED_SCHEMES:
        # Only these are resolved through a tracking store, which predict only reads.
        tracking.open_existing_store(tracking_uri, writable=False)
    import mlflow.pyfunc
    from mlflow.exceptions import MlflowException

    from benchmark.audio_model import AudioGenreModel
    from benchmark.tracking import quiet_mlflow

    try:
        with quiet_mlflow():
            model = mlflow.pyfunc.load_model(model_uri)
    except (MlflowException, OSError) as error:
        message = getattr(error, "message", None) or str(error)
        hint = "; promote a run first: python -m benchmark promote" if model_uri == DEFAULT_MODEL_URI else ""
        reason = message.strip().splitlines()[0]
        raise BenchmarkError(f"cannot load model {redact(model_uri)}: {redact(reason)}{hint}") from None
    try:
        is_audio_model = isinstance(model.unwrap_python_model(), AudioGenreModel)
    except MlflowException:  # Another flavour, such as the run's Keras network.
        is_audio_model = False
    if not is_audio_model:
        raise BenchmarkError(
            f"{model_uri} is not an audio model (use a run's audio_model_uri tag or a promoted version)"
        )
    return model


def predict_files(model, files: Sequence[Path], *, progress: bool = True) -> pd.DataFrame:
    """The model's output row for each file (``genre``, ``probability``, ``p_*``, ``error``)."""
    from tqdm.auto import tqdm

    chunks = []
    with tqdm(total=len(files), desc="predict", unit="file", disable=not progress or len(files) < 2) as bar:
        for start in range(0, len(files), CHUNK):
            chunk = files[start:start + CHUNK]
            chunks.append(model.predict(model_input(chunk)))
            bar.update(len(chunk))
    outputs = pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame()
    outputs.insert(0, "path", [printable_name(path) for path in files])
    return outputs


def model_input(files: Sequence[Path]) -> pd.DataFrame:
    """The model's input rows for ``files``: each file's path, or its bytes where its name is not UTF-8.

    A path reaches the model as text, which such a name cannot be (pandas refuses its lone
    surrogates), so its row carries the file's bytes, base64, in the ``audio`` column instead.
    """
    paths, audio = [], []
    for path in files:
        if printable_name(path) == str(path):
            paths.append(str(path))
            audio.append(None)
        else:
            paths.append(None)
            audio.append(base64.b64encode(Path(path).read_bytes()).decode("ascii"))
    columns = {"path": paths} | ({"audio": audio} if any(audio) else {})
    return pd.DataFrame(columns)


def top_k_table(outputs: pd.DataFrame, missing: Sequence[Path], k: int) -> pd.DataFrame:
    """One row per file: ``path``, ``status``, ``genre_1``, ``probability_1`` ... ``genre_k``, ``error``."""
    genres = [column.removeprefix("p_") for column in outputs.columns if column.startswith("p_")]
    k = min(k, len(genres))
    rows = []
    for record in outputs.to_dict("records"):
        row = {"path": record["path"], "status": "error" if _is_error(record["error"]) else "ok"}
        ranked = (sorted(genres, key=lambda genre: record[f"p_{genre}"], reverse=True)
                  if row["status"] == "ok" else [None] * k)
        for rank, genre in enumerate(ranked[:k], start=1):
            row[f"genre_{rank}"] = genre
            row[f"probability_{rank}"] = record[f"p_{genre}"] if genre else None
        row["error"] = record["error"] if row["status"] == "error" else ""
        rows.append(row)
    rows += [{"path": printable_name(path), "status": "error",
              "error": f"no such file or directory: {printable_name(path)}"} for path in missing]
    columns = ["path", "status", *(f"{name}_{rank}" for rank in range(1, k + 1)
                                   for name in ("genre", "probability")), "error"]
    return pd.DataFrame(rows, columns=columns)


def _is_error(value) -> bool:
    return isinstance(value, str) and value != ""


def render(table: pd.DataFrame, fmt: str) -> str:
    """The table as text: aligned columns, JSON records with a ranked ``top`` list, or CSV."""
    if fmt == "csv":
        return table.to_csv(index=False, float_format="%.6f")
    if fmt == "json":
        return json.dumps([_json_record(row) for row in table.to_dict("records")], indent=2)
    shown = table.drop(columns=["error"]) if (table["status"] == "ok").all() else table.copy()
    for column in shown.columns:
        if column.startswith("probability_"):
            shown[column] = [f"{value:.3f}" if pd.notna(value) else "" for value in shown[column]]
    # Error rows have no genres: blank cells rather than None/NaN.
    return shown.astype(object).where(shown.notna(), "").to_string(index=False)


def _json_record(row: dict) -> dict:
    record = {"path": row["path"], "status": row["status"]}
    if row["status"] == "ok":
        ranks = sorted(int(key.rsplit("_", 1)[1]) for key in row if key.startswith("genre_"))
        record["top"] = [{"genre": row[f"genre_{rank}"], "probability": row[f"probability_{rank}"]}
                         for rank in ranks]
    else:
        record["error"] = row["error"]
    return record

