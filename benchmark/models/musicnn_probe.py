"""A small dense probe on pretrained musicnn embeddings (``features.representation = "musicnn"``).

The transfer-learning setup of the musicnn paper (Pons & Serra, "musicnn: pre-trained
convolutional neural networks for music audio tagging", ISMIR 2019 LBD): the pretrained network
is fixed and only a small classifier is trained on its averaged activations. The embedding is
standardised by a ``Normalization`` layer fitted on the training inputs (so the saved network
scales what it is given by itself), then ReLU dense layers with dropout and the softmax.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmark.models.blocks import classifier, dense_stack
from benchmark.models.network import KerasNetwork
from benchmark.models.registry import register_model

SCALE_LAYER = "embedding_scale"
#: The smallest variance the input scaling divides by (embedding values are of order 1).
VARIANCE_FLOOR = 1e-2


class ProbeNetwork(KerasNetwork):
    """A Keras network on one vector per clip (or segment), its input scaling fitted on training inputs."""

    @classmethod
    def missing_inputs(cls, features) -> str | None:
        from benchmark.config import FRAME_REPRESENTATIONS

        if getattr(features, "representation", "musicnn") in FRAME_REPRESENTATIONS:
            return ('a probe takes one embedding per clip or segment: set [model.<name>.features] '
                    'representation = "musicnn"')
        return None

    def adapt(self, model: Any, x_train) -> None:
        rows = np.asarray(x_train, dtype=np.float32).reshape(len(x_train), -1)
        scale = model.get_layer(SCALE_LAYER)
        scale.adapt(rows)
        # A ReLU activation silent on every training clip has no variance; dividing by Keras'
        # epsilon would blow the first non-zero value seen later up a million times.
        scale.adapt_variance.assign(np.maximum(np.var(rows, axis=0), VARIANCE_FLOOR))
        scale.finalize_state()


DEFAULTS = {"hidden_units": (256,), "dropout": 0.5}
SEARCH_SPACE = {
    "hidden_units": {"type": "categorical", "choices": [[], [128], [256], [512], [256, 128]]},
    "dropout": {"type": "float", "low": 0.0, "high": 0.7},
}


@register_model("musicnn-probe", DEFAULTS, SEARCH_SPACE, adapter=ProbeNetwork)
def build(input_shape, n_classes, *, hidden_units, dropout):
    """musicnn probe: standardised embedding, ReLU dense layers with dropout, softmax (Pons & Serra 2019)."""
    from keras import layers

    inputs = layers.Input(shape=tuple(input_shape), name="embedding")
    x = layers.Flatten(name="flat")(inputs) if len(input_shape) > 1 else inputs
    x = layers.Normalization(name=SCALE_LAYER)(x)
    if dropout:
        x = layers.Dropout(float(dropout), name="embedding_dropout")(x)
    return classifier(inputs, dense_stack(x, hidden_units, dropout=dropout, prefix="probe_dense"), n_classes,
                      name="musicnn_probe")
