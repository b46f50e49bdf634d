"""The pretrained musicnn network with a new genre head, fine-tuned on musicnn's own log-mel input.

Pons & Serra, "musicnn: pre-trained convolutional neural networks for music audio tagging"
(ISMIR 2019 LBD). The network of :mod:`benchmark.pretrained.musicnn` with the weights of
``pretrained`` (``MSD_musicnn`` or ``MTT_musicnn``, fetched on first use; ``none``: random
initialisation) up to its penultimate layer (200 units, batch-normalised), then dropout and a
softmax over the genres; the 50-tag output layer is left out. ``freeze`` keeps part of it fixed
(its batch norms then use their pretrained statistics): ``frontend`` (default: the timbral and
temporal filters and the input normalisation), ``frontend+midend``, or ``none`` (all trainable).

Its input is ``representation = "musicnn-mel"`` at ``data.sample_rate = 16000`` (``n_fft``
512, ``hop_length`` 256, ``n_mels`` 96): musicnn's log-mel, unscaled. Meant for a GPU: every
3 s window costs about 3 GFLOPs forward.
"""

from __future__ import annotations

from typing import ClassVar

from benchmark.errors import BenchmarkError
from benchmark.models.blocks import genre_head
from benchmark.models.network import KerasNetwork
from benchmark.models.registry import register_model

FREEZE = {"none": (), "frontend": ("frontend",), "frontend+midend": ("frontend", "midend")}


class PretrainedNetwork(KerasNetwork):
    """A Keras network starting from pretrained weights, on musicnn's own input."""

    kind: ClassVar[str] = "pretrained"

    @classmethod
    def missing_inputs(cls, features) -> str | None:
        if getattr(features, "representation", None) != "musicnn-mel":
            return ('musicnn-finetune takes musicnn\'s own log-mel: set [model.<name>.features] representation = '
                    '"musicnn-mel", n_fft = 512, hop_length = 256, n_mels = 96, and data.sample_rate = 16000')
        return None


DEFAULTS = {"pretrained": "MSD_musicnn", "freeze": "frontend", "dropout": 0.5}
SEARCH_SPACE = {
    "freeze": {"type": "categorical", "choices": list(FREEZE)},
    "dropout": {"type": "float", "low": 0.0, "high": 0.7},
}


@register_model("musicnn-finetune", DEFAULTS, SEARCH_SPACE, adapter=PretrainedNetwork)
def build(input_shape, n_classes, *, pretrained, freeze, dropout):
    """musicnn fine-tuned: pretrained musicnn up to its penultimate layer + a genre softmax (Pons & Serra 2019)."""
    from keras import layers, models

    from benchmark.pretrained.musicnn import FRONTEND_LAYERS, MIDEND_LAYERS, assign_checkpoint, musicnn_body
    from benchmark.pretrained.weights import MODELS, load_weights, weights_file

    if freeze not in FREEZE:
        raise BenchmarkError(f"musicnn-finetune: freeze must be one of {', '.join(FREEZE)}, got {freeze!r}")
    if pretrained not in (*MODELS, "none"):
        raise BenchmarkError(f"musicnn-finetune: pretrained must be one of {', '.join((*MODELS, 'none'))}, "
                             f"got {pretrained!r}")
    if len(input_shape) != 2 or input_shape[0] != 96:
        raise ValueError(f"musicnn takes 96 mel bands x frames, size {tuple(input_shape)}")
    inputs = layers.Input(shape=tuple(input_shape), name="mel_bands")
    mel = layers.Permute((2, 1), name="time_major")(inputs)  # (bins, frames) -> musicnn's (frames, bins)
    x = musicnn_body(mel)["penultimate"]
    if dropout:
        x = layers.Dropout(float(dropout), name="genre_dropout")(x)
    outputs = genre_head(x, n_classes)
    model = models.Model(inputs, outputs, name="musicnn_finetune")
    if pretrained != "none":
        assign_checkpoint(model, load_weights(weights_file(pretrained)), unused=("dense_1/",))
    frozen = {"frontend": FRONTEND_LAYERS, "midend": MIDEND_LAYERS}
    for part in FREEZE[freeze]:
        for name in frozen[part]:
            model.get_layer(name).trainable = False
    return model
