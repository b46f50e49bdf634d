"""A spectrogram network and handcrafted features in one model: the study's suggested combination.

The study's conclusion proposes "combining this spectrogram analysis method with feature
extraction". This network takes both inputs of a clip (or segment): the 2D-CNN's convolutional
front on its frames, and a dense branch on its handcrafted vector (standardised by a
``Normalization`` layer fitted on the training inputs, so the saved network scales what it is
given by itself), concatenated before the classifier. It declares the second input it needs
(:attr:`CombinedNetwork.required_features`): wherever it is named, its features get
``add_handcrafted = true`` unless its own ``[model.<name>.features]`` table says otherwise.
"""

from __future__ import annotations

from typing import Any, ClassVar

from benchmark.data.inputs import FRAMES, HANDCRAFTED
from benchmark.models.blocks import classifier, conv2d_front, dense_stack
from benchmark.models.network import KerasNetwork
from benchmark.models.registry import register_model

SCALE_LAYER = "handcrafted_scale"


class CombinedNetwork(KerasNetwork):
    """A Keras network of two inputs: frames and the handcrafted vector."""

    kind: ClassVar[str] = "combined"
    #: The handcrafted vector beside the frames: supplied wherever the model is named.
    required_features: ClassVar[dict[str, Any]] = {"add_handcrafted": True}

    @classmethod
    def missing_inputs(cls, features) -> str | None:
        if not getattr(features, "add_handcrafted", False):
            return ("the combined network needs the handcrafted vector beside the frames: "
                    "set [model.<name>.features] add_handcrafted = true")
        return None

    def adapt(self, model: Any, x_train) -> None:
        model.get_layer(SCALE_LAYER).adapt(x_train[HANDCRAFTED])


DEFAULTS = {
    "filters": (10, 10),
    "kernel_size": 5,
    "pool_size": 2,
    "dense_units": 128,
    "handcrafted_units": (64,),
    "dropout": 0.3,
}
SEARCH_SPACE = {
    "filters": {"type": "categorical", "choices": [[8, 8], [10, 10], [16, 16], [16, 32]]},
    "dense_units": {"type": "categorical", "choices": [64, 128, 256]},
    "handcrafted_units": {"type": "categorical", "choices": [[32], [64], [128], [64, 32]]},
    "dropout": {"type": "float", "low": 0.0, "high": 0.5},
}


@register_model("combined", DEFAULTS, SEARCH_SPACE, adapter=CombinedNetwork)
def build(input_shape, n_classes, *, filters, kernel_size, pool_size, dense_units, handcrafted_units, dropout):
    """Combined: 2D-CNN front on the frames + dense branch on handcrafted features, concatenated."""
    from keras import layers

    if not isinstance(input_shape, dict) or set(input_shape) != {FRAMES, HANDCRAFTED}:
        raise ValueError(f"the combined network takes {FRAMES!r} and {HANDCRAFTED!r} inputs, "
                         f"got input size {input_shape}")
    frames = layers.Input(shape=tuple(input_shape[FRAMES]), name=FRAMES)
    vector = layers.Input(shape=tuple(input_shape[HANDCRAFTED]), name=HANDCRAFTED)
    spectral = dense_stack(conv2d_front(frames, filters=filters, kernel_size=kernel_size, pool_size=pool_size),
                           [dense_units], prefix="frames_dense")
    statistics = dense_stack(layers.Normalization(name=SCALE_LAYER)(vector), handcrafted_units,
                             prefix="handcrafted_dense")
    joined = layers.Concatenate(name="joined")([spectral, statistics])
    if dropout:
        joined = layers.Dropout(float(dropout), name="joined_dropout")(joined)
    return classifier({FRAMES: frames, HANDCRAFTED: vector}, joined, n_classes, name="combined")
