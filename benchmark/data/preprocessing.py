"""How a decoded clip becomes a model's inputs and its outputs a label: ``preprocessing.json``.

Training writes it (every run's artifact, and the audio model's copy) and the audio model reads
it, so prediction repeats the training pipeline exactly: the feature parameters, the
normalisation (per clip, or the per-bin statistics fitted on the training split) and the
segmenting with its vote.

A representation computed by a pretrained network (``musicnn``) needs that network's weights:
:func:`bundled_files` names them, the audio model carries them as an artifact and hands them
back to :meth:`Preprocessing.from_config`, so a served model never fetches anything.

Format 1 (whole clips, per-clip scaling) and 2 (before MFCC, handcrafted vectors and the
second handcrafted input) are still read: models logged before keep working.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from benchmark.data.features import FeatureParams, clip_inputs
from benchmark.data.inputs import FRAMES, HANDCRAFTED
from benchmark.data.normalize import Standardizer
from benchmark.data.segments import Segmenting
from benchmark.errors import BenchmarkError

#: Version of ``preprocessing.json``; a model written by a later version fails to load clearly.
PREPROCESSING_FORMAT = 3
_READABLE_FORMATS = (1, 2, 3)


def preprocessing_config(
    params: FeatureParams, *, segmenting: Segmenting | None = None, normalisation: dict | None = None,
    vote: str = "mean", handcrafted_input: bool = False,
) -> dict:
    """What ``preprocessing.json`` holds; ``normalisation`` is ``Standardizer.to_dict()`` or per clip.

    ``handcrafted_input``: the model also takes each clip's (segment's) handcrafted vector.
    """
    return {
        "format": PREPROCESSING_FORMAT,
        "features": asdict(params),
        "normalisation": normalisation or {"mode": "per_clip"},
        "segmenting": {**segmenting.describe(), "vote": vote} if segmenting else {"mode": "none"},
        "handcrafted_input": handcrafted_input,
    }


#: The audio model's artifact holding a ``musicnn`` representation's network weights.
MUSICNN_WEIGHTS = "musicnn_weights"


def bundled_files(config: dict) -> dict[str, str]:
    """Files the audio model must carry for ``preprocessing.json`` ``config``: artifact name -> path.

    A ``musicnn`` representation needs its network's weights (fetched on first use, cached); others none.
    """
    features = config.get("features", {})
    if features.get("representation") != "musicnn":
        return {}
    from benchmark.pretrained.weights import weights_file

    return {MUSICNN_WEIGHTS: str(weights_file(features["musicnn_model"]))}


@dataclass(frozen=True)
class Preprocessing:
    """The parsed ``preprocessing.json``: turns audio into inputs, and segment outputs into one label."""

    params: FeatureParams
    segmenting: Segmenting | None = None
    standardizer: Standardizer | None = None
    vote: str = "mean"
    handcrafted_input: bool = False
    #: A pretrained network's weights file (``musicnn``), as the audio model bundles it.
    weights: str | None = None

    @classmethod
    def from_config(cls, config: dict, files: Mapping[str, str] | None = None) -> Preprocessing:
        """Parse a ``preprocessing.json``; an unknown format or mode is a clear error, never a guess.

        ``files``: the audio model's artifacts by name, where :func:`bundled_files` put the
        pretrained network's weights.
        """
        parsed = cls._parse(config)
        weights = (files or {}).get(MUSICNN_WEIGHTS)
        if parsed.params.representation == "musicnn" and weights is not None:
            from dataclasses import replace

            return replace(parsed, weights=str(Path(weights)))
        return parsed

    @classmethod
    def _parse(cls, config: dict) -> Preprocessing:
        if config.get("format") not in _READABLE_FORMATS:
            raise BenchmarkError(
                f"audio model preprocessing format {config.get('format')!r} is not supported "
                f"(this code reads formats {', '.join(map(str, _READABLE_FORMATS))})"
            )
        params = FeatureParams(**config["features"])
        normalisation, segmenting = config["normalisation"], config["segmenting"]
        if normalisation["mode"] == "per_clip":
            standardizer = None
        elif normalisation["mode"] == "standardize":
            standardizer = Standardizer.from_dict(normalisation)
        else:
            raise BenchmarkError(f"audio model normalisation {normalisation['mode']!r} is not supported")
        handcrafted = bool(config.get("handcrafted_input", False))
        if segmenting["mode"] == "none":
            return cls(params, None, standardizer, handcrafted_input=handcrafted)
        if segmenting["mode"] != "segments":
            raise BenchmarkError(f"audio model segmenting {segmenting['mode']!r} is not supported")
        cut = Segmenting(segmenting["frames"], segmenting["hop_frames"], segmenting["last"])
        return cls(params, cut, standardizer, segmenting["vote"], handcrafted)

    @property
    def normalize(self) -> str:
        return "standardize" if self.standardizer is not None else "per_clip"

    def inputs(self, audio: np.ndarray):
        """One clip's model inputs, float32: one row (or one per segment) of frames or a vector,
        and with ``handcrafted_input`` a dict of both parts (:mod:`benchmark.data.inputs`)."""
        clip = clip_inputs(audio, self.params, segmenting=self.segmenting, normalize=self.normalize,
                           weights=self.weights)
        if self.standardizer is not None:
            clip = self.standardizer.transform(clip)
        if not self.handcrafted_input:
            return clip
        vectors = clip_inputs(audio, self.params.as_handcrafted(), segmenting=self.segmenting)
        return {FRAMES: clip, HANDCRAFTED: vectors}
