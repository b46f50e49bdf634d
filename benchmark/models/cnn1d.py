"""1D convolutional network of Mhatre, "Music Genre Recognition" (Indiana University).

Three blocks of [Conv1D(f, 3, relu) x 2, MaxPool1D(2), Dropout(0.2)] with f = 16, 32, 64,
then Flatten and two ReLU Dense(512). On the paper's (1025, 1320) input the convolutions
slide along frequency with the 1320 frames as channels (see ``conv_axis``).
"""

from __future__ import annotations

from keras import layers

from benchmark.models.blocks import (
    classifier,
    conv1d_blocks,
    dense_stack,
    spectrogram_input,
    spectrogram_sequence,
)
from benchmark.models.registry import register_model

DEFAULTS = {
    "filters": (16, 32, 64),
    "kernel_size": 3,
    "convs_per_block": 2,
    "pool_size": 2,
    "dropout": 0.2,
    "dense_units": (512, 512),
    "conv_axis": "frequency",
}


@register_model("cnn1d", DEFAULTS)
def build(
    input_shape,
    n_classes,
    *,
    filters=(16, 32, 64),
    kernel_size=3,
    convs_per_block=2,
    pool_size=2,
    dropout=0.2,
    dense_units=(512, 512),
    conv_axis="frequency",
):
    """1D-CNN: three Conv1D blocks with dropout, Flatten, Dense(512) x 2, softmax."""
    inputs = spectrogram_input(input_shape)
    x = spectrogram_sequence(inputs, conv_axis)
    x = conv1d_blocks(
        x,
        filters=filters,
        kernel_size=kernel_size,
        convs_per_block=convs_per_block,
        pool_size=pool_size,
        dropout=dropout,
        batch_norm=False,
    )
    x = layers.Flatten(name="flatten")(x)
    x = dense_stack(x, dense_units)
    return classifier(inputs, x, n_classes, name="cnn1d")
