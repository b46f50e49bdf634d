"""1D convolutional network of Mhatre, "Music Genre Recognition" (Indiana University).

Three blocks of [Conv1D(f, 3, relu) x 2, MaxPool1D(2), Dropout(0.2)] with f = 16, 32, 64,
then Flatten and two ReLU Dense(512). On the paper's (1025, 1320) input the convolutions
slide along frequency with the 1320 frames as channels (see ``conv_axis``).
"""

from __future__ import annotations

from benchmark.models.blocks import (
    CONV1D_FRONT_DEFAULTS,
    CONV1D_FRONT_SPACE,
    classifier,
    conv1d_front,
    dense_stack,
    spectrogram_input,
)
from benchmark.models.registry import register_model

DEFAULTS = {**CONV1D_FRONT_DEFAULTS, "dense_units": (512, 512)}

# What `tune` searches unless the experiment file gives a [tuning.cnn1d] table.
SEARCH_SPACE = {
    **CONV1D_FRONT_SPACE,
    "kernel_size": {"type": "int", "low": 3, "high": 7, "step": 2},
    "dense_units": {"type": "categorical", "choices": [[256], [256, 256], [512, 512]]},
}


@register_model("cnn1d", DEFAULTS, SEARCH_SPACE)
def build(input_shape, n_classes, *, dense_units, **front):
    """1D-CNN: three Conv1D blocks with dropout, Flatten, Dense(512) x 2, softmax."""
    from keras import layers

    inputs = spectrogram_input(input_shape)
    x = conv1d_front(inputs, batch_norm=False, **front)
    x = layers.Flatten(name="flatten")(x)
    x = dense_stack(x, dense_units)
    return classifier(inputs, x, n_classes, name="cnn1d")
