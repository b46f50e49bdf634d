"""How a decoded clip becomes a model's inputs and its outputs a label: ``preprocessing.json``.

Training writes it (every run's artifact, and the audio model's copy) and the audio model reads
it, so prediction repeats the training pipeline exactly: the feature parameters, the
normalisation (per clip, or the per-bin statistics fitted on the training split) and the
segmenting with its vote.

Format 1 (whole clips, per-clip scaling) and 2 (before MFCC, handcrafted vectors and the
second handcrafted input) are still read: models logged before keep working.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

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


@dataclass(frozen=True)
class Preprocessing:
    """The parsed ``preprocessing.json``: turns audio into inputs, and segment outputs into one label."""

    params: FeatureParams
    segmenting: Segmenting | None = None
    standardizer: Standardizer | None = None
    vote: str = "mean"
    handcrafted_input: bool = False

    @classmethod
    def from_config(cls, config: dict) -> Preprocessing:
        """Parse a ``preprocessing.json``; an unknown format or mode is a clear error, never a guess."""
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
        clip = clip_inputs(audio, self.params, segmenting=self.segmenting, normalize=self.normalize)
        if self.standardizer is not None:
            clip = self.standardizer.transform(clip)
        if not self.handcrafted_input:
            return clip
        vectors = clip_inputs(audio, self.params.as_handcrafted(), segmenting=self.segmenting)
        return {FRAMES: clip, HANDCRAFTED: vectors}
