"""The ensemble's audio-in model: its members' audio models in one MLflow pyfunc.

Same input and output as :mod:`benchmark.audio_model` (a ``path`` or base64 ``audio`` column
in; ``genre``, ``probability``, ``p_<genre>``, ``error`` out), so ``promote``, ``predict`` and
``mlflow models serve`` treat it as any run's model. It bundles, per weighted member, the files
of that member's own audio model (estimator, ``preprocessing.json``, labels, bundled weights)
and ``ensemble.json`` (weights, classes). For each file it decodes the audio once per sample
rate and computes each distinct input (members sharing a ``preprocessing.json`` share it) once;
each member scores and votes as it does alone, and the row's probabilities are the weighted mean
of the members', as the ensemble's test predictions were.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

from benchmark.audio_model import (
    AudioGenreModel,
    checked_input,
    input_rows,
    result_frame,
    signature,
)
from benchmark.data.inputs import count
from benchmark.errors import BenchmarkError

#: Inside each member's folder: its audio model's artifact names and their relative paths.
MEMBER_FILES = "member_artifacts.json"
_PACKAGE_DIR = Path(__file__).resolve().parent.parent


class EnsembleAudioModel(AudioGenreModel):
    """Audio files in, genres out, from the weighted members' audio models."""

    def load_context(self, context) -> None:
        record = json.loads(Path(context.artifacts["ensemble"]).read_text())
        self.weights, self.class_names = record["weights"], record["classes"]
        self.members, self.preprocessing_keys = {}, {}
        for name in self.weights:
            folder = Path(context.artifacts[f"member.{name}"])
            files = json.loads((folder / MEMBER_FILES).read_text())
            member = AudioGenreModel()
            member.load_context(SimpleNamespace(artifacts={key: str(folder / path) for key, path in files.items()}))
            self.members[name] = member
            self.preprocessing_keys[name] = (folder / files["preprocessing"]).read_text()

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        """Label every row; a row that cannot be decoded gets an ``error`` (as a single model's)."""
        frame = checked_input(model_input)
        inputs = {name: [] for name in self.members}
        owners = {name: [] for name in self.members}
        errors = []
        for row, (path, encoded) in enumerate(input_rows(frame)):
            try:
                per_member = self._member_inputs(path, encoded)
            except (BenchmarkError, OSError) as error:
                errors.append(str(error))
                continue
            errors.append(None)
            for name, clip in per_member.items():
                inputs[name].append(clip)
                owners[name].append(np.full(count(clip), row))
        total = np.zeros((len(frame), len(self.class_names)))
        for name, member in self.members.items():
            probabilities, _ = member.score_rows(inputs[name], owners[name], len(frame))
            total += self.weights[name] * probabilities  # NaN rows (errors) stay NaN
        return result_frame(total / sum(self.weights.values()), errors, self.class_names)

    def _member_inputs(self, path: object, encoded: object) -> dict[str, object]:
        """Each member's inputs for one file: decoded once per rate, each distinct input computed once."""
        samples, computed, inputs = {}, {}, {}
        for name, member in self.members.items():
            rate = member.params.sample_rate
            if rate not in samples:
                samples[rate] = member.decode(path, encoded)
            key = self.preprocessing_keys[name]
            if key not in computed:
                computed[key] = member.preprocessing.inputs(samples[rate])
            inputs[name] = computed[key]
        return inputs


def bundle_member(source: Path, destination: Path) -> None:
    """Copy a member's downloaded audio model's files into ``destination``, with their names."""
    from mlflow.models import Model

    flavour = Model.load(str(source)).flavors["python_function"]
    shutil.copytree(source / "artifacts", destination / "artifacts")
    files = {key: value["path"] for key, value in flavour["artifacts"].items()}
    (destination / MEMBER_FILES).write_text(json.dumps(files, indent=2))


def ensemble_model_arguments(folder: Path, members: dict[str, Path], weights: dict[str, float],
                             class_names: list[str]) -> dict:
    """Keyword arguments of ``mlflow.pyfunc.log_model`` for the ensemble of downloaded ``members``.

    ``members`` maps each weighted member to its downloaded audio model's folder.
    """
    folder = Path(folder)
    artifacts = {}
    requirements: dict[str, str] = {}
    for name, source in members.items():
        bundle_member(Path(source), folder / name)
        artifacts[f"member.{name}"] = str(folder / name)
        for line in (Path(source) / "requirements.txt").read_text().splitlines():
            package = line.split("==")[0].strip().lower()
            if package and not package.startswith("#"):
                requirements.setdefault(package, line.strip())
    (folder / "ensemble.json").write_text(json.dumps({"weights": weights, "classes": class_names}, indent=2))
    return {
        "python_model": str(Path(__file__).resolve().parent / "audio_model_code.py"),
        "artifacts": {"ensemble": str(folder / "ensemble.json"), **artifacts},
        "code_paths": [str(_PACKAGE_DIR)],
        "signature": signature(list(class_names)),
        "input_example": pd.DataFrame({"path": ["song.wav"]}),
        "pip_requirements": list(requirements.values()),
    }


def log_ensemble_audio_model(member_uris: dict[str, str], weights: dict[str, float], class_names: list[str]) -> str:
    """Download the weighted members' audio models and log their ensemble into the active run.

    Tags the run ``audio_model_uri`` (what ``promote`` registers) and returns the URI.
    """
    import tempfile

    import mlflow.artifacts
    import mlflow.pyfunc

    from benchmark.tracking import quiet_mlflow, set_tags

    with tempfile.TemporaryDirectory(prefix="benchmark-ensemble-model-") as folder, quiet_mlflow():
        downloaded = {name: Path(mlflow.artifacts.download_artifacts(artifact_uri=member_uris[name],
                                                                     dst_path=str(Path(folder) / "members" / name)))
                      for name in weights}
        bundle = Path(folder) / "bundle"
        bundle.mkdir()
        info = mlflow.pyfunc.log_model(name="audio_model",
                                       **ensemble_model_arguments(bundle, downloaded, weights, class_names))
    set_tags({"audio_model_uri": info.model_uri})
    return info.model_uri
