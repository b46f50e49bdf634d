"""Fully connected network of Mhatre, "Music Genre Recognition" (Indiana University).

The spectrogram is flattened and passed through five ReLU Dense(512) layers. At the paper's
input (1025, 1320) the first layer alone holds 692.7 M of its 693.8 M parameters.
"""

from __future__ import annotations

from benchmark.models.blocks import classifier, dense_stack, spectrogram_input
from benchmark.models.registry import register_model

DEFAULTS = {"units": 512, "n_layers": 5, "dropout": 0.0}


# What `tune` searches unless the experiment file gives a [tuning.fcnn] table.
SEARCH_SPACE = {
    "units": {"type": "categorical", "choices": [128, 256, 512, 1024]},
    "n_layers": {"type": "int", "low": 1, "high": 5},
    "dropout": {"type": "float", "low": 0.0, "high": 0.5},
}


@register_model("fcnn", DEFAULTS, SEARCH_SPACE)
def build(input_shape, n_classes, *, units, n_layers, dropout):
    """Fully connected: Flatten, then n_layers x Dense(units, relu), softmax."""
    from keras import layers

    inputs = spectrogram_input(input_shape)
    x = layers.Flatten(name="flatten")(inputs)
    x = dense_stack(x, [units] * int(n_layers), dropout=dropout)
    return classifier(inputs, x, n_classes, name="fcnn")
